"""`seedgrid doctor`: from any host, do the broker, the database, the artifact store and the chain
answer with the configured settings? One line each: what was reached, or what failed and what to set.

Each check runs with a deadline, so a firewalled port is a named failure within seconds, not a
hang. Nothing is changed, except one small probe object written to and deleted from the store.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from app.settings import Settings, redact_url

CHECK_TIMEOUT_S = 15.0
ONE_HOST = "one host only: "  # answers, but cannot be shared by roles on other hosts


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _within(fn: Callable[[], str], timeout: float) -> str:
    """fn() in a thread, or TimeoutError after `timeout` seconds."""
    box: dict = {}

    def run():
        try:
            box["ok"] = fn()
        except BaseException as exc:  # reported as the check's failure
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {timeout:g} s (a firewall, or the wrong host or port?)")
    if "error" in box:
        raise box["error"]
    return box["ok"]


def broker(settings: Settings) -> str:
    import redis

    if settings.uses_embedded_redis:
        return ONE_HOST + "the embedded Redis (set SEEDGRID_REDIS_URL to the broker every host shares)"
    client = redis.Redis.from_url(settings.broker_url, socket_connect_timeout=5, socket_timeout=5)
    try:
        client.ping()
        return f"{redact_url(settings.broker_url)} answers (Redis {client.info('server').get('redis_version')})"
    finally:
        client.close()


def database(settings: Settings) -> str:
    from app import migrations
    from app.bootstrap import DatabaseNotReady

    at, head = migrations.current(settings.sqlalchemy_url), migrations.head()
    if at != head:
        raise DatabaseNotReady(f"{redact_url(settings.sqlalchemy_url)} answers at migration {at or 'none'}, not {head}: run "
                               "`seedgrid db upgrade` once")
    shared = "" if settings.database_url else ONE_HOST + "SQLite in the state folder (set SEEDGRID_DATABASE_URL " \
                                                          "to the PostgreSQL every host shares): "
    return f"{shared}{redact_url(settings.sqlalchemy_url)} answers, migrated ({at})"


def store(settings: Settings) -> str:
    from app import storage

    probe = f"seedgrid doctor {time.time()}".encode()
    target = storage.store_for(settings, "validator")
    ref, _ = target.put(probe, "txt")
    if storage.load(settings, ref) != probe:
        raise RuntimeError(f"{ref} read back other bytes")
    if settings.artifact_store == "local":
        Path(ref).unlink()
        return ONE_HOST + f"the folder {target.root} (set SEEDGRID_ARTIFACT_STORE=s3://bucket and SEEDGRID_S3_* " \
                          "for roles on separate hosts): wrote, read and deleted a probe"
    target.client.delete_object(Bucket=target.bucket, Key=target.key_of(ref))  # the probe is not an artifact
    return f"{settings.artifact_store} at {settings.s3_endpoint_url or 'AWS S3'}: wrote, read and deleted a probe"


def chain(settings: Settings) -> str:
    from app.chain import open_chain

    return f"{settings.chain}, subnet {settings.netuid}: block {open_chain(settings).block()}"


HINTS = {"broker": "check SEEDGRID_REDIS_URL (host, port, password) and that this host may reach it",
         "database": "check SEEDGRID_DATABASE_URL (host, port, user, password, database)",
         "store": "check SEEDGRID_ARTIFACT_STORE and SEEDGRID_S3_*",
         "chain": "check SEEDGRID_CHAIN and SEEDGRID_NETUID (a local chain: `seedgrid chain init`)"}
CHECKS: dict[str, Callable[[Settings], str]] = {"broker": broker, "database": database, "store": store,
                                                 "chain": chain}


def run_checks(settings: Settings, only: list[str] | None = None, timeout: float = CHECK_TIMEOUT_S) -> list[Check]:
    out = []
    for name, fn in CHECKS.items():
        if only and name not in only:
            continue
        try:
            out.append(Check(name, True, _within(lambda fn=fn: fn(settings), timeout)))
        except Exception as exc:
            from app.explain import explain, first_line

            detail = (explain(exc) or f"{type(exc).__name__}: {first_line(exc)}")[:400]
            if "SEEDGRID_" not in detail and "`seedgrid " not in detail:  # no advice yet: the check's own
                detail += f"; {HINTS[name]}"
            out.append(Check(name, False, detail))
    return out
