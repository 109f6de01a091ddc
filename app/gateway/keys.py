"""API keys: printed once at creation, stored as their sha256, limited per minute and per day.

A key is `sg_` and 32 random URL-safe characters; its first 10 characters are kept in
clear (`prefix`) so an operator can tell keys apart in `keys list`. The rate and daily
counters live in Redis (they may be lost; a lost counter only forgives some calls).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.keys import gateway_daily, gateway_rate
from app.models import ApiKey
from app.models.base import utcnow

KEY_PREFIX = "sg_"
NAME_MAX = 64


class ApiKeyError(ValueError):
    """A key operation that cannot be done, with what to do instead."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def create_key(session: Session, *, name: str, rate_per_minute: int, daily_quota: int) -> tuple[ApiKey, str]:
    """A new key: (its row, the key itself, which is never stored)."""
    name = name.strip()
    if not name or len(name) > NAME_MAX or not name.isprintable():
        raise ApiKeyError(f"--name must be 1 to {NAME_MAX} printable characters, got {name!r}")
    if rate_per_minute < 1 or daily_quota < 1:
        raise ApiKeyError(f"--rate and --daily must be at least 1, got {rate_per_minute} and {daily_quota}")
    if session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
        raise ApiKeyError(f"a key named {name!r} exists already (names stay taken after a revoke): pick another --name")
    key = KEY_PREFIX + secrets.token_urlsafe(24)
    row = ApiKey(name=name, key_hash=hash_key(key), prefix=key[:10], rate_per_minute=rate_per_minute,
                 daily_quota=daily_quota)
    session.add(row)
    session.flush()
    return row, key


def revoke_key(session: Session, name: str) -> ApiKey:
    row = session.scalar(select(ApiKey).where(ApiKey.name == name))
    if row is None:
        raise ApiKeyError(f"no key named {name!r}: `seedgrid gateway keys list` shows them")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


def authenticate(session: Session, key: str) -> ApiKey | None:
    """The live key this bearer token is, or None (unknown or revoked)."""
    if not key.startswith(KEY_PREFIX) or len(key) > 128:
        return None
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    return row if row is not None and row.revoked_at is None else None


@dataclass(frozen=True)
class Limited:
    """A call refused by a key's limit: why, and when to try again."""

    reason: str
    retry_after_s: int


def take_call(r, key: ApiKey, *, now: float | None = None) -> Limited | None:
    """Count one job against the key's per-minute rate and daily quota; None when within both."""
    now = time.time() if now is None else now
    minute, day = int(now // 60), int(now // 86400)
    rate_key, daily_key = gateway_rate(key.id, minute), gateway_daily(key.id, day)
    pipe = r.pipeline()
    pipe.incr(rate_key)
    pipe.expire(rate_key, 120)
    pipe.incr(daily_key)
    pipe.expire(daily_key, 2 * 86400)
    rate_used, _, daily_used, _ = pipe.execute()
    if rate_used > key.rate_per_minute or daily_used > key.daily_quota:
        pipe = r.pipeline()
        pipe.decr(rate_key)
        pipe.decr(daily_key)
        pipe.execute()
        if daily_used > key.daily_quota:
            return Limited(f"the key's daily quota of {key.daily_quota} jobs is used up",
                           int((day + 1) * 86400 - now) + 1)
        return Limited(f"the key's rate of {key.rate_per_minute} jobs a minute is used up", int((minute + 1) * 60 - now) + 1)
    return None
