"""Thin Celery tasks for generation: parse, call app.generation.service, return small JSON."""

from __future__ import annotations

import time

from celery.result import AsyncResult

from app.celery_app import GENERATE_TASK, Queue, celery_app, time_limits
from app.generation.request import GenerationRequest, parse_request
from app.generation.service import generate_and_record
from app.settings import get_settings


@celery_app.task(name=GENERATE_TASK, bind=True)
def generate(self, request: dict, enqueued_at: float | None = None) -> dict:
    """Generate one image or video; the artifact stays on disk, the result is its metadata."""
    return generate_and_record(
        request, settings=get_settings(), task_id=self.request.id, worker=self.request.hostname,
        enqueued_at=enqueued_at,
    )


def enqueue(request: GenerationRequest | dict, *, queue: str | None = None, priority: int | None = None) -> AsyncResult:
    """Validate at the sender and send to the model's GPU queue (or `queue`, e.g. a worker's own).

    priority: 0 (served first) to 9; the miner API sets it from the caller's stake.
    """
    req = request if isinstance(request, GenerationRequest) else parse_request(request)
    return generate.apply_async(
        kwargs={"request": req.to_dict(), "enqueued_at": time.time()},
        queue=queue or Queue.generate(req.model).value,
        priority=priority,
        **time_limits(req.model),
    )
