"""The validator's database operations: keyword-only functions taking an explicit session."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.generation.request import GenerationRequest
from app.models import Challenge, MinerState, Outcome, Response
from app.models.base import utcnow
from app.scoring.rewards import EMA_ALPHA, reward
from app.scoring.tiers import TierTable
from app.verification.verdict import Verdict


def create_challenge(session: Session, *, request: GenerationRequest, block: int) -> Challenge:
    challenge = Challenge(id=request.request_id, model=request.model, kind=request.kind, request=request.to_dict(),
                          block=block, status="open")
    session.add(challenge)
    session.flush()
    return challenge


def add_response(session: Session, *, challenge_id: str, miner: MinerState) -> Response:
    response = Response(challenge_id=challenge_id, hotkey=miner.hotkey, uid=miner.uid, status="pending")
    session.add(response)
    session.flush()
    return response


def record_answer(session: Session, *, response_id: int, status: str, latency_s: float | None,
                  http_status: int | None = None, error: str | None = None, media_type: str | None = None,
                  artifact_path: str | None = None, claimed_sha256: str | None = None,
                  environment: dict | None = None) -> Response:
    response = session.get(Response, response_id)
    if response is None:
        raise LookupError(f"no response {response_id}")
    if error is not None:  # a miner's words: escaped, so any bytes it sent can be stored
        from app.net.client import printable

        error = printable(error, 2000)
    response.status, response.latency_s, response.http_status, response.error = status, latency_s, http_status, error
    response.media_type, response.artifact_path = media_type, artifact_path
    response.claimed_sha256, response.environment = claimed_sha256, environment
    session.flush()
    return response


def record_reproduction(session: Session, *, challenge_id: str, pixel_sha256: str | None, path: str | None,
                        environment: dict | None, seconds: float | None, error: str | None = None) -> Challenge:
    challenge = session.get(Challenge, challenge_id)
    challenge.reproduction_sha256, challenge.reproduction_path = pixel_sha256, path
    challenge.reproduction_env, challenge.reproduction_seconds = environment, seconds
    challenge.status, challenge.error = ("failed", error) if error else ("reproduced", None)
    session.flush()
    return challenge


def duplicate_of(session: Session, *, pixel_sha256: str, challenge_id: str) -> str | None:
    """Another challenge whose response or reproduction had exactly these pixels."""
    other = session.scalar(select(Response.challenge_id).where(Response.pixel_sha256 == pixel_sha256,
                                                               Response.challenge_id != challenge_id).limit(1))
    if other is None:
        other = session.scalar(select(Challenge.id).where(Challenge.reproduction_sha256 == pixel_sha256,
                                                          Challenge.id != challenge_id).limit(1))
    return f"challenge {other}" if other else None


def record_verdict(session: Session, *, response_id: int, verdict: Verdict) -> Response:
    response = session.get(Response, response_id)
    response.pixel_sha256 = verdict.pixel_sha256
    response.verdict_path, response.verdict_similarity = verdict.path, verdict.similarity
    response.verdict_reason, response.verified_at = verdict.reason, utcnow()
    session.flush()
    return response


def record_outcome(session: Session, *, response: Response, kind: str, model: str, request_success: bool,
                   verified: bool, timeout_s: float, tiers: TierTable, epoch: int) -> Outcome | None:
    """Count a response once: the outcome row, the interval counters, the EMA.

    None if it was already counted, or if its miner has left the subnet.
    """
    if session.scalar(select(Outcome.id).where(Outcome.response_id == response.id)) is not None:
        return None
    miner = session.scalar(select(MinerState).where(MinerState.hotkey == response.hotkey).with_for_update())
    if miner is None:  # it left the subnet while the response was in flight: nobody to count it against
        return None
    value = reward(verified=verified, kind=kind, latency_s=response.latency_s or timeout_s, timeout_s=timeout_s,
                   tier_factor=tiers.factor(miner.tier))
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
        score=MinerState.score * (1 - EMA_ALPHA) + EMA_ALPHA * value,
    ))
    return outcome


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
