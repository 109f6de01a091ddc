"""Thin Celery tasks for generation: parse, call app.generation.service, return small JSON."""

from __future__ import annotations

import time

from celery.result import AsyncResult

from app.celery_app import GENERATE_TASK, celery_app
from app.config import get_settings
from app.generation.limits import time_limits
from app.generation.service import generate_and_record
from app.protocol.request import GenerationRequest, parse_request
from app.queues import Queue


@celery_app.task(name=GENERATE_TASK, bind=True)
def generate(self, request: dict, enqueued_at: float | None = None, expires_at: float | None = None) -> dict:
    """Generate one image or video; the artifact stays on disk, the result is its metadata.

    The solo pool cannot enforce Celery's time limits, so the soft limit is passed down
    as a deadline the engine checks after every denoising step.
    """
    return generate_and_record(
        request, settings=get_settings(), task_id=self.request.id, worker=self.request.hostname,
        enqueued_at=enqueued_at, expires_at=expires_at, keep_trajectory=True,
    )


def enqueue(request: GenerationRequest | dict, *, queue: str | None = None, priority: int | None = None,
            expires: float | None = None) -> AsyncResult:
    """Validate at the sender and send to the model's GPU queue (or `queue`, e.g. a worker's own).

    priority: 0 (served first) to 9; the miner API sets it from the caller's stake.
    expires: seconds the sender will wait. A task not started by then is discarded by the
    worker (Celery's expires), and one running then stops at its next step.
    """
    req = request if isinstance(request, GenerationRequest) else parse_request(request)
    now = time.time()
    soft, hard = time_limits(get_settings(), req.model)
    return generate.apply_async(
        kwargs={"request": req.to_dict(), "enqueued_at": now,
                "expires_at": now + expires if expires is not None else None},
        queue=queue or Queue.generate(req.model).value,
        priority=priority,
        expires=expires,
        soft_time_limit=soft,
        time_limit=hard,
    )
