"""LocalChain's state: subnets, neurons and every weight set, shared by all local processes."""

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
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class ChainSubnet(Base):
    __tablename__ = "chain_subnets"

    netuid: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    genesis_unix: Mapped[float] = mapped_column(Float)  # block 0 starts here; block = elapsed // block_time
    block_time: Mapped[float] = mapped_column(Float)
    max_uids: Mapped[int] = mapped_column(Integer, default=256)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ChainNeuron(Base):
    __tablename__ = "chain_neurons"
    __table_args__ = (
        UniqueConstraint("netuid", "uid", name="uq_chain_neurons_netuid_uid"),
        UniqueConstraint("netuid", "hotkey", name="uq_chain_neurons_netuid_hotkey"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    netuid: Mapped[int] = mapped_column(ForeignKey("chain_subnets.netuid"))
    uid: Mapped[int] = mapped_column(Integer)
    hotkey: Mapped[str] = mapped_column(String(64))
    coldkey: Mapped[str] = mapped_column(String(64))
    stake: Mapped[float] = mapped_column(Float, default=0.0)
    axon_host: Mapped[str | None] = mapped_column(String(255))
    axon_port: Mapped[int | None] = mapped_column(Integer)
    registered_block: Mapped[int] = mapped_column(Integer)
    last_update: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ChainWeightSet(Base):
    __tablename__ = "chain_weight_sets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    netuid: Mapped[int] = mapped_column(ForeignKey("chain_subnets.netuid"), index=True)
    hotkey: Mapped[str] = mapped_column(String(64), index=True)
    block: Mapped[int] = mapped_column(Integer)
    weights: Mapped[dict] = mapped_column(JSON)  # {uid: u16 weight}, as the chain stores them
    version_key: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
