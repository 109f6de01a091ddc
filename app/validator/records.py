"""The validator's database operations: keyword-only functions taking an explicit session.

Also the database half of the epoch jobs: `rollover` inserts the epoch's row first (its
primary key makes a second rollover of the same epoch fail and roll back, whatever beat
or a worker does), then applies each miner's tier transition (app/scoring/tiers.py, pure)
from its interval counters and resets them. It reads miner_states only, never outcomes,
so its cost depends on the number of miners, not on history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Mapping

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.models import (
    Challenge,
    Epoch,
    MinerState,
    Outcome,
    ProviderTask,
    Response,
    TierChange,
    WeightSet,
)
from app.models.base import aware, utcnow
from app.protocol.client import printable
from app.protocol.request import GenerationRequest
from app.scoring.rewards import ema, reward
from app.scoring.tiers import IntervalStats, TierTable
from app.scoring.weights import MinerScore, compute_weights
from app.verification.verdict import Verdict


def create_challenge(session: Session, *, request: GenerationRequest, block: int) -> Challenge:
    challenge = Challenge(id=request.request_id, model=request.model, kind=request.kind, request=request.to_dict(),
                          block=block, status="open")
    session.add(challenge)
    session.flush()
    return challenge


def recent_organic_params(session: Session, *, model: str, limit: int = 50) -> list[dict]:
    """The params of the model type's latest delivered organic jobs (challenges copy them)."""
    rows = session.scalars(select(Challenge.request).where(Challenge.model == model, Challenge.kind == "inference",
                                                           Challenge.status != "attempting")
                           .order_by(Challenge.created_at.desc()).limit(limit))
    return [r["params"] for r in rows if isinstance(r, dict) and isinstance(r.get("params"), dict)]


def challenge_count(session: Session, *, model: str, kind: str) -> int:
    """How many challenges of this kind the model type has had (the rounds' pipeline turn)."""
    return session.scalar(select(func.count()).select_from(Challenge).where(Challenge.model == model,
                                                                            Challenge.kind == kind)) or 0


def recent_reproductions(session: Session, *, model: str, limit: int = 16) -> list[Path]:
    """The model type's latest reproduced images (conditioning images for new challenges start from them)."""
    rows = session.scalars(select(Challenge.reproduction_path).where(Challenge.model == model,
                                                                     Challenge.reproduction_path.is_not(None))
                           .order_by(Challenge.created_at.desc()).limit(limit))
    return [Path(p) for p in rows if p]


def add_response(session: Session, *, challenge_id: str, miner: MinerState, status: str = "pending") -> Response:
    response = Response(challenge_id=challenge_id, hotkey=miner.hotkey, uid=miner.uid, status=status)
    session.add(response)
    session.flush()
    return response


def record_answer(session: Session, *, response_id: int, status: str, latency_s: float | None,
                  http_status: int | None = None, error: str | None = None, media_type: str | None = None,
                  artifact_path: str | None = None, claimed_sha256: str | None = None,
                  environment: dict | None = None, frames_path: str | None = None,
                  trajectory_root: str | None = None, pixel_sha256: str | None = None) -> Response:
    response = session.get(Response, response_id)
    if response is None:
        raise LookupError(f"no response {response_id}")
    if error is not None:  # a miner's words: escaped, so any bytes it sent can be stored
        error = printable(error, 2000)
    response.status, response.latency_s, response.http_status, response.error = status, latency_s, http_status, error
    response.answered_at = utcnow()
    response.media_type, response.artifact_path, response.frames_path = media_type, artifact_path, frames_path
    response.trajectory_root, response.pixel_sha256 = trajectory_root, pixel_sha256  # (the verdict's, known early)
    response.claimed_sha256, response.environment = claimed_sha256, environment
    session.flush()
    return response


def record_reproduction(session: Session, *, challenge_id: str, pixel_sha256: str | None, path: str | None,
                        environment: dict | None, seconds: float | None, error: str | None = None,
                        frames_path: str | None = None) -> Challenge:
    challenge = session.get(Challenge, challenge_id)
    challenge.reproduction_sha256, challenge.reproduction_path = pixel_sha256, path
    challenge.reproduction_frames_path = frames_path
    challenge.reproduction_env, challenge.reproduction_seconds = environment, seconds
    challenge.status, challenge.error = ("failed", error) if error else ("reproduced", None)
    session.flush()
    return challenge


def duplicate_of(session: Session, *, pixel_sha256: str, challenge_id: str, response_id: int) -> str | None:
    """Another challenge whose reproduction had exactly these pixels, or whose response
    answered with them before this one was (`answered_at`, set when a reply is recorded).

    Only an earlier answer counts: verdicts land in any order, and a cheater's copy of an
    honest answer, sent to another challenge and judged first, must not make the original
    look like the copy. Neither the order of judging nor of the response rows tells which
    came first (a copier asked in an earlier round may answer later, with a newer output):
    the network test saw honest answers flagged both ways. Pixels that also answered or
    reproduced a challenge asking the same thing (a client sending one job twice) belong to
    this ask, and are never a duplicate."""
    this = session.get(Response, response_id)
    asked = same_ask_key(session.get(Challenge, challenge_id).request)
    answers = list(session.execute(select(Response, Challenge.request).join(
        Challenge, Challenge.id == Response.challenge_id).where(Response.pixel_sha256 == pixel_sha256,
                                                                Response.challenge_id != challenge_id)))
    truths = list(session.execute(select(Challenge.id, Challenge.request).where(
        Challenge.reproduction_sha256 == pixel_sha256, Challenge.id != challenge_id)))
    if any(same_ask_key(request) == asked for _, request in [*answers, *truths]):
        return None  # these pixels answered or reproduced this very ask too: they are its own
    earlier = [(other.challenge_id, r) for other, r in answers if answered_at(other) < answered_at(this)]
    found = truths or earlier
    return f"challenge {found[0][0]}" if found else None


def same_ask_key(request: dict) -> dict:
    """What a request asks for, whoever asked and however it is named: two requests with the
    same key have the same honest pixels."""
    return {k: v for k, v in (request or {}).items() if k not in ("request_id", "kind")}


def answered_at(response: Response) -> datetime:
    """When the miner's answer was recorded (a row from before 0007: its query opened plus the call's latency)."""
    if response.answered_at is not None:
        return aware(response.answered_at)
    return aware(response.created_at) + timedelta(seconds=response.latency_s or 0.0)


def record_verdict(session: Session, *, response_id: int, verdict: Verdict) -> Response:
    response = session.get(Response, response_id)
    response.pixel_sha256 = verdict.pixel_sha256
    response.verdict_rung, response.verdict_similarity = verdict.rung, verdict.similarity
    response.verdict_reason, response.verified_at = verdict.reason, utcnow()
    response.verdict_detail = verdict.detail
    session.flush()
    return response


def record_outcome(session: Session, *, response: Response, kind: str, model: str, request_success: bool,
                   verified: bool, timeout_s: float, tiers: TierTable, epoch: int, scale: float = 1.0) -> Outcome | None:
    """Count a response once: the outcome row, the interval counters, the EMA.

    None if it was already counted, or if its miner has left the subnet.
    """
    if session.scalar(select(Outcome.id).where(Outcome.response_id == response.id)) is not None:
        return None
    miner = session.scalar(select(MinerState).where(MinerState.hotkey == response.hotkey).with_for_update())
    if miner is None:  # it left the subnet while the response was in flight: nobody to count it against
        return None
    value = reward(verified=verified, kind=kind, latency_s=response.latency_s or timeout_s, timeout_s=timeout_s,
                   tier_factor=tiers.factor(miner.tier), scale=scale)
    outcome = Outcome(response_id=response.id, hotkey=response.hotkey, model=model, kind=kind,
                      request_success=request_success, verified=verified, reward=value, epoch=epoch)
    session.add(outcome)
    session.flush()  # the unique response_id: a concurrent second recording fails here and rolls back
    failed_check = request_success and not verified
    session.execute(update(MinerState).where(MinerState.hotkey == response.hotkey).values(
        interval_attempts=MinerState.interval_attempts + 1,
        interval_request_successes=MinerState.interval_request_successes + int(request_success),
        interval_verified=MinerState.interval_verified + int(verified),
        interval_failed=MinerState.interval_failed + int(failed_check),
        total_successes=MinerState.total_successes + int(verified),
        score=ema(MinerState.score, value),  # one EMA: the same function on a column as on floats
    ))
    return outcome


def record_delivery(session: Session, *, hotkey: str) -> None:
    """An organic answer delivered and not sampled: a successful request, with no verdict and no reward.

    It counts in the request success rate (so failed attempts are not all that rate sees),
    and not in the validation rate or the score, which only verdicts move.
    """
    session.execute(update(MinerState).where(MinerState.hotkey == hotkey).values(
        interval_attempts=MinerState.interval_attempts + 1,
        interval_request_successes=MinerState.interval_request_successes + 1))


def forget_deregistered(session: Session, registered: set[str]) -> list[str]:
    """Drop the state of hotkeys that left the subnet: no challenge, weight or leaderboard row names them.

    Their responses and outcomes stay, for history; a hotkey that registers again starts fresh.
    """
    gone = [m for m in session.scalars(select(MinerState)) if m.hotkey not in registered]
    for miner in gone:
        session.delete(miner)
    session.flush()
    return [m.hotkey for m in gone]


def upsert_miner(session: Session, *, hotkey: str, uid: int, default_tier: str, **fields) -> MinerState:
    miner = session.get(MinerState, hotkey)
    if miner is None:
        miner = MinerState(hotkey=hotkey, uid=uid, tier=default_tier, score=0.0, total_successes=0,
                           interval_attempts=0, interval_request_successes=0, interval_verified=0, interval_failed=0,
                           challenger_return=False, last_weight=0.0, total_volume=0, quota=0, limit_interval=600)
        session.add(miner)
    elif miner.uid != uid:  # the uid was re-registered to this hotkey: a new miner, a fresh start
        miner.uid, miner.tier, miner.score, miner.total_successes = uid, default_tier, 0.0, 0
    for key, value in fields.items():
        setattr(miner, key, value)
    session.flush()
    return miner


# -- epochs ----------------------------------------------------------------------------
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


def claim_provider_task(session: Session, *, task_id: str, model: str, response_id: int) -> int | None:
    """Claim an external task id for this response; the response that had it first when it was
    claimed before (a replay), else None."""
    earlier = session.get(ProviderTask, task_id)
    if earlier is not None:
        return earlier.response_id if earlier.response_id != response_id else None
    session.add(ProviderTask(task_id=task_id, model=model, response_id=response_id))
    session.flush()
    return None
