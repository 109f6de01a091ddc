"""The gateway's records: API keys (hashed) and organic jobs. The job row is the source of truth.

A job's attempts are the `responses` of its organic challenge (app/models/validator.py):
one row per miner tried, with its status, latency and error, judged by the same ladder
when the job is sampled. Redis only holds the keys' rate counters.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the key; the key is shown once
    prefix: Mapped[str] = mapped_column(String(16))  # the key's first characters, to tell keys apart in a list
    rate_per_minute: Mapped[int] = mapped_column(Integer)
    daily_quota: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("key_id", "idempotency_key", name="uq_jobs_key_id_idempotency_key"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # also its organic challenge's id
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    model: Mapped[str] = mapped_column(String(64), index=True)
    request: Mapped[dict] = mapped_column(JSON)  # the request as the miners receive it (seed drawn if absent)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)  # JOB_STATUSES
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # a running attempt's deadline
    response_id: Mapped[int | None] = mapped_column(Integer)  # the delivered attempt
    media_type: Mapped[str | None] = mapped_column(String(32))
    result_path: Mapped[str | None] = mapped_column(Text)
    pixel_sha256: Mapped[str | None] = mapped_column(String(64))
    sampled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


JOB_STATUSES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
