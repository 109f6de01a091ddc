"""The epoch rollover and weight setting, keyed on the epoch number in the database.

`rollover` runs when block // epoch_length has advanced: it inserts the epoch's row
first (its primary key makes a second rollover of the same epoch fail and roll back,
whatever beat or a worker does), then applies each miner's tier transition from its
interval counters and resets them. It reads miner_states only, never outcomes, so its
cost depends on the number of miners, not on history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Epoch, MinerState, TierChange, WeightSet
from app.scoring.tiers import IntervalStats, TierTable
from app.scoring.weights import MinerScore, compute_weights


def last_epoch(session: Session) -> int | None:
    return session.scalar(select(Epoch.epoch).order_by(Epoch.epoch.desc()).limit(1))


def rollover(session: Session, *, epoch: int, block: int, tiers: TierTable) -> list[TierChange] | None:
    """Roll the tiers over for `epoch`; None when that epoch was rolled over already.

    A concurrent rollover of the same epoch makes this transaction fail on the epoch's
    primary key (IntegrityError): the caller rolls back and does nothing.
    """
    if session.get(Epoch, epoch) is not None:
        return None
    row = Epoch(epoch=epoch, block=block, miners=0)
    session.add(row)
    session.flush()
    changes = []
    for m in session.scalars(select(MinerState).order_by(MinerState.uid).with_for_update()):
        stats = IntervalStats(m.interval_attempts, m.interval_request_successes, m.interval_verified, m.interval_failed)
        t = tiers.transition(m.tier, stats, m.total_successes, m.challenger_return)
        change = TierChange(epoch=epoch, hotkey=m.hotkey, uid=m.uid, from_tier=m.tier, to_tier=t.tier,
                            reason=t.reason, score=m.score, request_rate=stats.request_rate,
                            validation_rate=stats.validation_rate)
        session.add(change)
        changes.append(change)
        m.tier, m.challenger_return = t.tier, t.challenger_return
        m.interval_attempts = m.interval_request_successes = m.interval_verified = m.interval_failed = 0
    row.miners = len(changes)
    session.flush()
    return changes


@dataclass(frozen=True)
class PlannedWeights:
    epoch: int
    weights: dict[int, float]


def plan_weights(session: Session, *, epoch: int, block: int, shares: Mapping[str, float],
                 version_key: int) -> PlannedWeights | None:
    """Claim this epoch's weight setting and compute the weights; None if claimed already.

    A failed setting (status 'failed') may be claimed again."""
    existing = session.scalar(select(WeightSet).where(WeightSet.epoch == epoch).with_for_update())
    if existing is not None and existing.status != "failed":
        return None
    scores = [MinerScore(m.uid, m.model, m.score, m.total_volume)
              for m in session.scalars(select(MinerState).where(MinerState.model.is_not(None)))]
    weights = compute_weights(scores, shares)
    if existing is None:
        existing = WeightSet(epoch=epoch, block=block, weights={}, version_key=version_key, status="pending")
        session.add(existing)
    existing.block, existing.weights, existing.status, existing.error = block, \
        {str(k): v for k, v in weights.items()}, "pending", None
    session.flush()
    return PlannedWeights(epoch, weights)


def finish_weights(session: Session, *, epoch: int, error: str | None = None) -> None:
    ws = session.scalar(select(WeightSet).where(WeightSet.epoch == epoch))
    ws.status, ws.error = ("failed", error) if error else ("set", None)
    if not error:
        for m in session.scalars(select(MinerState)):
            m.last_weight = float(ws.weights.get(str(m.uid), 0.0))
    session.flush()
