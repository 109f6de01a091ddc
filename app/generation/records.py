"""Recording generate jobs in the database: keyword-only functions taking a session.

Rows are keyed by task id, so a redelivered task finds its own row: a finished one is
returned as it is (no second generation), an interrupted one is taken over.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Generation, GenerationStatus
from app.models.base import utcnow
from app.protocol.request import GenerationRequest


def get(session: Session, *, task_id: str) -> Generation | None:
    return session.scalar(select(Generation).where(Generation.task_id == task_id))


def begin(session: Session, *, task_id: str, request: GenerationRequest, worker: str | None) -> Generation:
    """Mark the job running; return its row (already succeeded if this is a redelivery)."""
    row = get(session, task_id=task_id)
    if row is None:
        row = Generation(
            task_id=task_id, request_id=request.request_id, kind=request.kind, model=request.model,
            prompt=request.prompt, negative_prompt=request.negative_prompt, seed=request.seed,
            params=request.to_dict()["params"], status=GenerationStatus.RUNNING.value, attempts=1, worker=worker,
        )
        session.add(row)
    elif row.status != GenerationStatus.SUCCEEDED.value:
        row.attempts += 1
        row.status = GenerationStatus.RUNNING.value
        row.worker = worker
        row.error = None
    session.flush()
    return row


def finish(
    session: Session, *, task_id: str, media_type: str, pixel_sha256: str, artifact_sha256: str,
    artifact_path: str, timings: dict, environment: dict, frames_path: str | None = None,
) -> Generation:
    row = get(session, task_id=task_id)
    if row is None:
        raise LookupError(f"no generation row for task {task_id}; begin() must run first")
    row.status = GenerationStatus.SUCCEEDED.value
    row.media_type = media_type
    row.pixel_sha256 = pixel_sha256
    row.artifact_sha256 = artifact_sha256
    row.artifact_path = artifact_path
    row.frames_path = frames_path
    row.timings = timings
    row.environment = environment
    row.finished_at = utcnow()
    session.flush()
    return row


def fail(session: Session, *, task_id: str, error: str) -> None:
    row = get(session, task_id=task_id)
    if row is not None and row.status != GenerationStatus.SUCCEEDED.value:
        row.status = GenerationStatus.FAILED.value
        row.error = error[:4000]
        row.finished_at = utcnow()
        session.flush()


def as_result(row: Generation) -> dict:
    """The small JSON a generate job returns: metadata and a path, never the bytes."""
    return {
        "task_id": row.task_id,
        "request_id": row.request_id,
        "model": row.model,
        "status": row.status,
        "media_type": row.media_type,
        "pixel_sha256": row.pixel_sha256,
        "artifact_sha256": row.artifact_sha256,
        "artifact_path": row.artifact_path,
        "frames_path": row.frames_path,
        "timings": row.timings,
        "environment": row.environment,
        "worker": row.worker,
        "attempts": row.attempts,
    }


ABANDONED = "abandoned: the worker stopped before finishing (killed or restarted); a redelivery, if any, retried it"


def settle_abandoned(session: Session, *, worker: str | None = None, started_before=None) -> int:
    """Mark running rows that no process is working on as failed; returns how many.

    `worker`: rows this very worker left running (it is starting again, so they are not
    running). `started_before`: rows of any worker older than any live task can be.
    """
    if worker is None and started_before is None:
        raise ValueError("name a worker or a cut-off time")
    query = select(Generation).where(Generation.status == GenerationStatus.RUNNING.value)
    if worker is not None:
        query = query.where(Generation.worker == worker)
    if started_before is not None:
        query = query.where(Generation.created_at < started_before)
    rows = list(session.scalars(query))
    for row in rows:
        row.status, row.error, row.finished_at = GenerationStatus.FAILED.value, ABANDONED, utcnow()
    session.flush()
    return len(rows)
