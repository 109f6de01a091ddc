"""The validator's records: challenges, responses with verdicts, outcomes, miner states,
tier history, epochs and weight sets. The database holds every outcome (DESIGN.md)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class Challenge(Base):
    __tablename__ = "challenges"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # also the request_id sent to miners
    model: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    request: Mapped[dict] = mapped_column(JSON)  # the exact request every miner received
    block: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | trajectory | reproduced | failed
    reproduction_sha256: Mapped[str | None] = mapped_column(String(64))
    reproduction_path: Mapped[str | None] = mapped_column(Text)
    reproduction_frames_path: Mapped[str | None] = mapped_column(Text)  # video: the lossless frames
    reproduction_env: Mapped[dict | None] = mapped_column(JSON)
    reproduction_seconds: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class Response(Base):
    __tablename__ = "responses"
    __table_args__ = (UniqueConstraint("challenge_id", "hotkey", name="uq_responses_challenge_id_hotkey"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    challenge_id: Mapped[str] = mapped_column(ForeignKey("challenges.id"), index=True)
    hotkey: Mapped[str] = mapped_column(String(64), index=True)
    uid: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | answered | error | timeout
    http_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    latency_s: Mapped[float | None] = mapped_column(Float)
    media_type: Mapped[str | None] = mapped_column(String(32))
    artifact_path: Mapped[str | None] = mapped_column(Text)
    frames_path: Mapped[str | None] = mapped_column(Text)  # video: the lossless frames the miner returned
    claimed_sha256: Mapped[str | None] = mapped_column(String(64))
    environment: Mapped[dict | None] = mapped_column(JSON)
    pixel_sha256: Mapped[str | None] = mapped_column(String(64), index=True)  # computed by the validator
    trajectory_root: Mapped[str | None] = mapped_column(String(64))  # the miner's commitment (issue 14)
    verdict_rung: Mapped[str | None] = mapped_column(String(16))  # exact | tolerant | trajectory | failed
    verdict_similarity: Mapped[float | None] = mapped_column(Float)
    verdict_reason: Mapped[str | None] = mapped_column(Text)
    verdict_detail: Mapped[dict | None] = mapped_column(JSON)  # the trajectory path: {path, steps, distances, ...}
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the reply recorded
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Outcome(Base):
    """One counted result per response: the unique response_id makes recording idempotent."""

    __tablename__ = "outcomes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("responses.id"), unique=True)
    hotkey: Mapped[str] = mapped_column(String(64), index=True)
    model: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    request_success: Mapped[bool] = mapped_column(Boolean)
    verified: Mapped[bool] = mapped_column(Boolean)
    reward: Mapped[float] = mapped_column(Float)
    epoch: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MinerState(Base):
    """Everything rollover and weights need, kept current: no scan of outcomes is ever needed."""

    __tablename__ = "miner_states"

    hotkey: Mapped[str] = mapped_column(String(64), primary_key=True)
    uid: Mapped[int] = mapped_column(Integer, index=True)
    model: Mapped[str | None] = mapped_column(String(64), index=True)
    axon: Mapped[str | None] = mapped_column(String(255))
    reachable: Mapped[bool] = mapped_column(Boolean, default=False)
    total_volume: Mapped[int] = mapped_column(Integer, default=0)
    quota: Mapped[int] = mapped_column(Integer, default=0)  # this validator's quota at the miner
    limit_interval: Mapped[int] = mapped_column(Integer, default=600)  # the miner's quota window
    tier: Mapped[str] = mapped_column(String(32))
    challenger_return: Mapped[bool] = mapped_column(Boolean, default=False)
    score: Mapped[float] = mapped_column(Float, default=0.0)  # EMA of rewards
    total_successes: Mapped[int] = mapped_column(Integer, default=0)
    interval_attempts: Mapped[int] = mapped_column(Integer, default=0)
    interval_request_successes: Mapped[int] = mapped_column(Integer, default=0)
    interval_verified: Mapped[int] = mapped_column(Integer, default=0)
    interval_failed: Mapped[int] = mapped_column(Integer, default=0)
    last_weight: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class TierChange(Base):
    __tablename__ = "tier_history"
    __table_args__ = (UniqueConstraint("epoch", "hotkey", name="uq_tier_history_epoch_hotkey"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, index=True)
    hotkey: Mapped[str] = mapped_column(String(64))
    uid: Mapped[int] = mapped_column(Integer)
    from_tier: Mapped[str] = mapped_column(String(32))
    to_tier: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    score: Mapped[float] = mapped_column(Float)
    request_rate: Mapped[float | None] = mapped_column(Float)
    validation_rate: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Epoch(Base):
    """One row per rolled-over epoch (block // epoch_length): the key that makes rollover happen once."""

    __tablename__ = "epochs"

    epoch: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    block: Mapped[int] = mapped_column(Integer)
    miners: Mapped[int] = mapped_column(Integer)
    rolled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WeightSet(Base):
    __tablename__ = "weight_sets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, unique=True)  # one weight setting per epoch
    block: Mapped[int] = mapped_column(Integer)
    weights: Mapped[dict] = mapped_column(JSON)  # {uid: float}
    version_key: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # set | failed
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ProviderTask(Base):
    """An external provider's task id, claimed by the first response that is judged with it:
    the primary key makes a replayed id (an earlier answer's, or another miner's) fail."""

    __tablename__ = "provider_tasks"

    task_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    response_id: Mapped[int] = mapped_column(ForeignKey("responses.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
