"""A job's records: create (idempotent), claim for an attempt, deliver, fail, cancel, and its view.

Keyword-only functions over an explicit session, like app/validator/records.py. A job is
the client's view; its organic challenge (kind `inference`, the same id) holds the exact
request the miners got, and each attempt is one of that challenge's responses, so the
ladder that judges challenges judges a sampled job unchanged.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.keys import gateway_job_changed
from app.models import ApiKey, Challenge, Job, MinerState, Response
from app.models.base import aware, utcnow
from app.models.gateway import FINISHED
from app.protocol.conditioning import without_images
from app.protocol.request import GenerationRequest
from app.validator.records import same_ask_key

ATTEMPT_FAILURES = ("error", "timeout")  # an attempt the miner failed (counted against it); `lost` is ours


class JobConflict(ValueError):
    """An Idempotency-Key reused with another request body."""


def create_job(session: Session, *, key: ApiKey, request: GenerationRequest, idempotency_key: str | None = None,
               seed_given: bool = True) -> tuple[Job, bool]:
    """(the job, True) for a new one; (the earlier job, False) for an Idempotency-Key seen before."""
    earlier = earlier_job(session, key=key, request=request, idempotency_key=idempotency_key, seed_given=seed_given)
    if earlier is not None:
        return earlier, False
    job = Job(id=request.request_id, key_id=key.id, idempotency_key=idempotency_key, model=request.model,
              request=request.to_dict(), status="queued", attempts=0, sampled=False)
    session.add(job)
    session.flush()
    return job, True


def earlier_job(session: Session, *, key: ApiKey, request: GenerationRequest, idempotency_key: str | None,
                seed_given: bool = True) -> Job | None:
    """The key's job of this Idempotency-Key, if any. It must have been asked for the same thing
    (its seed too, when this call gives one): JobConflict otherwise."""
    if idempotency_key is None:
        return None
    earlier = session.scalar(select(Job).where(Job.key_id == key.id, Job.idempotency_key == idempotency_key))
    if earlier is not None and _comparable(earlier.request, seed_given) != _comparable(request.to_dict(), seed_given):
        raise JobConflict("this Idempotency-Key was used for another request: use a new key for a new job")
    return earlier


def _comparable(request: dict, seed_given: bool) -> dict:
    asked = same_ask_key(request)
    if not seed_given:  # a seed the gateway drew differs every time
        asked.pop("seed", None)
    return asked


def notify(r, job_id: str, status: str, view: dict | None = None) -> None:
    """Wake the calls waiting on this job (?wait=, /events) with its new status and, when given, its
    view as just committed (links relative: `rebased`): a hint; the row stays the truth."""
    try:
        r.publish(gateway_job_changed(job_id), status if view is None else f"{status} {json.dumps(view)}")
    except Exception:  # a lost hint costs a waiting call at most one poll interval
        pass


def new_job_id() -> str:
    """A uuid4 in hex, the form of a challenge's id: the request_id tells a miner nothing."""
    return uuid.uuid4().hex


def claim(session: Session, job_id: str, *, lease_s: Callable[[str], float], block: Callable[[], int]) -> Job | None:
    """Take the job for attempts: a queued one, or a running one whose last holder died (lease over).

    lease_s(model): how long this worker holds it. The organic challenge is created on the
    first claim (block() stamps its outcomes' epoch). An attempt the dead holder left in
    flight is `lost`: the validator's failure, not the miner's. None when the job is
    finished or held by a live worker.
    """
    job = session.scalar(select(Job).where(Job.id == job_id).with_for_update())
    if job is None or job.status in FINISHED:
        return None
    now = utcnow()
    if job.status == "running" and aware(job.lease_until) and aware(job.lease_until) > now:
        return None
    if job.status == "queued":  # never claimed: its challenge is made now (claims make it with the status change)
        session.add(Challenge(id=job.id, model=job.model, kind="inference", request=dict(job.request), block=block(),
                              status="attempting"))
    else:
        for stale in session.scalars(select(Response).where(Response.challenge_id == job.id,
                                                            Response.status.in_(("pending", "sent")))):
            stale.status = "lost"
            stale.error = "the gateway's worker stopped during this attempt; not the miner's failure"
    job.status, job.started_at = "running", job.started_at or now
    job.lease_until = now + timedelta(seconds=lease_s(job.model))
    return job


def serving_miners(session: Session, model: str | None = None) -> list[MinerState]:
    """The reachable miners (of `model` only, when given: the routing of one job reads no others)."""
    query = select(MinerState).where(MinerState.reachable.is_(True))
    return list(session.scalars(query if model is None else query.where(MinerState.model == model)))


def attempts(session: Session, job_id: str) -> list[Response]:
    return list(session.scalars(select(Response).where(Response.challenge_id == job_id).order_by(Response.id)))


def deliver(session: Session, *, job: Job, response: Response, pixel_sha256: str, sampled: bool,
            ready: str | None = None) -> None:
    """The job is done with this attempt's bytes; when sampled, its challenge waits for the GPU queue's
    reproduction, or is judged at once with the status `ready` (`reproduced`: a text or external
    answer, nothing to reproduce; `trajectory`: checked by opening its trajectory)."""
    job.status, job.finished_at, job.lease_until = "done", utcnow(), None
    job.response_id, job.media_type, job.result_path = response.id, response.media_type, response.artifact_path
    job.pixel_sha256, job.sampled = pixel_sha256, sampled
    # the reproduction's clock (settle_stale) starts when it is handed to the GPU queue
    changes = {"status": ready or "open", "created_at": utcnow()} if sampled \
        else {"status": "unsampled"}
    session.execute(update(Challenge).where(Challenge.id == job.id).values(**changes))
    session.flush()


def fail(session: Session, *, job: Job, error: str) -> None:
    job.status, job.error, job.finished_at, job.lease_until = "failed", error, utcnow(), None
    _unsampled(session, job.id)


def cancel(session: Session, job: Job) -> bool:
    """Cancel a job that has not finished; False when it had (its result stands)."""
    if job.status in FINISHED:
        return False
    job.status, job.finished_at, job.lease_until, job.error = "cancelled", utcnow(), None, "cancelled by the client"
    _unsampled(session, job.id)
    return True


def _unsampled(session: Session, job_id: str) -> None:
    """A job that ends undelivered: its organic challenge will never be reproduced."""
    challenge = session.get(Challenge, job_id)
    if challenge is not None and challenge.status == "attempting":
        challenge.status = "unsampled"
    session.flush()


def resumable(session: Session, *, queued_for_s: float) -> list[str]:
    """Jobs nobody is working on: queued for a while (a lost enqueue) or running past their lease (a dead worker)."""
    now = utcnow()
    out = []
    for job in session.scalars(select(Job).where(Job.status.in_(("queued", "running")))):
        lease = aware(job.lease_until)
        if job.status == "queued" and (now - aware(job.created_at)).total_seconds() > queued_for_s:
            out.append(job.id)
        elif job.status == "running" and (lease is None or lease < now):
            out.append(job.id)
    return out


def view(session: Session, job: Job, *, base_url: str = "") -> dict:
    """What GET /v1/jobs/{id} answers: status, every attempt, the result and the verification."""
    tries = attempts(session, job.id)
    delivered = next((r for r in tries if r.id == job.response_id), None)
    links = {"self": f"{base_url}/v1/jobs/{job.id}", "result": f"{base_url}/v1/jobs/{job.id}/result",
             "events": f"{base_url}/v1/jobs/{job.id}/events"}
    verification = {"sampled": job.sampled, "verdict": None, "reason": None, "detail": None}
    if job.sampled and delivered is not None:
        challenge = session.get(Challenge, job.id)
        if delivered.verdict_rung:
            verification.update(verdict=delivered.verdict_rung, reason=delivered.verdict_reason,
                                detail=delivered.verdict_detail)
        elif challenge is not None and challenge.status == "failed":
            verification.update(verdict="not judged", reason=f"the validator's reproduction failed: {challenge.error}")
        else:
            verification.update(verdict="pending")
    return {
        "id": job.id, "status": job.status, "model": job.model, "error": job.error, "attempt_count": job.attempts,
        "request": without_images({k: v for k, v in job.request.items() if k not in ("kind", "request_id")}),
        "created_at": _iso(job.created_at), "started_at": _iso(job.started_at), "finished_at": _iso(job.finished_at),
        "attempts": [{"miner_uid": r.uid, "status": r.status, "started_at": _iso(r.created_at),
                      "latency_s": r.latency_s, "error": r.error} for r in tries],
        "result": None if job.status != "done" else {"media_type": job.media_type, "pixel_sha256": job.pixel_sha256,
                                                      "url": links["result"]},
        "verification": verification,
        "links": links,
    }


def rebased(view: dict, base_url: str) -> dict:
    """A view made with relative links (a hint's), its links on `base_url`."""
    links = {name: base_url + link for name, link in view["links"].items()}
    result = view["result"] and {**view["result"], "url": links["result"]}
    return {**view, "links": links, "result": result}


def _iso(value: datetime | None) -> str | None:
    return aware(value).isoformat() if value else None
