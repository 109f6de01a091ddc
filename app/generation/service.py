"""Generate-and-record: what a generate task does, as a plain function.

Engines are loaded once per process and kept (`get_engine`); a worker preloads its
model types at start, so no task ever pays for loading.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any, Iterable

from app import storage
from app.backends.base import Engine
from app.backends.registry import load_engine
from app.db import session_scope
from app.generation import records
from app.generation.limits import (
    broker_visibility_timeout,
    longest_hard_limit,
    time_limits,
)
from app.models import GenerationStatus
from app.protocol import media
from app.protocol.request import parse_request
from app.settings import Settings

log = logging.getLogger(__name__)

_engines: dict[str, Engine] = {}


def get_engine(model: str, settings: Settings) -> Engine:
    """The process's engine for a model type, loaded through the backend registry on first use."""
    engine = _engines.get(model)
    if engine is None:
        engine = load_engine(settings, model)
        log.info("loaded %s from %s in %.2f s (%s)", model, engine.checkpoint, engine.load_seconds,
                 engine.environment.get("device"))
        _engines[model] = engine
    return engine


def preload(models: Iterable[str], settings: Settings) -> list[Engine]:
    return [get_engine(m, settings) for m in models]


_last_prune: dict[str, float] = {}
PRUNE_EVERY_S = {"trajectories": 60.0, "artifacts": 3600.0}  # a prune lists the whole area (S3: 1,000 a call)


def prune_kept(settings: Settings, *, now: float | None = None) -> int:
    """What a GPU worker keeps, pruned per process: trajectories older than trajectory_ttl_s (and a
    minute's margin; a validator may open one only that long) at most once a minute, and outputs
    older than artifact_retention (days; a miner on its own host has no validator beat to prune
    them) at most once an hour."""
    now = now or time.time()
    dropped = 0
    for area, cutoff in (("trajectories", now - settings.trajectory_ttl_s - 60),
                         ("artifacts", now - settings.artifact_retention)):
        if abs(now - _last_prune.get(area, float("-inf"))) < PRUNE_EVERY_S[area]:
            continue
        _last_prune[area] = now
        try:
            dropped += storage.store_for(settings, area).prune(cutoff)
        except storage.StoreError as exc:
            log.warning("kept %s not pruned now: %s", area, exc)
    return dropped


def generate_and_record(
    raw_request: Any, *, settings: Settings, task_id: str | None = None, worker: str | None = None,
    enqueued_at: float | None = None, expires_at: float | None = None, time_limit: float | None = None,
    keep_trajectory: bool = False,
) -> dict:
    """Validate, generate, store the artifact content-addressed, record the row; return small JSON.

    The generation stops between steps (GenerationTimeout) at `time_limit` seconds from
    its start (the model's soft limit by default: Celery's solo pool does not enforce
    it), or at `expires_at` (wall clock: the caller stopped waiting), if sooner.
    keep_trajectory (a miner's generation, where the pipeline has a replay): the run's
    trajectory is stored too, its root and ref in the result (`trajectory_root`,
    `trajectory_ref`), for the validator to open (app/backends/diffusers/trajectory.py).
    """
    started = time.time()
    request = parse_request(raw_request)
    task_id = task_id or f"local-{uuid.uuid4().hex}"
    url = settings.sqlalchemy_url
    with session_scope(url) as session:
        row = records.begin(session, task_id=task_id, request=request, worker=worker)
        if row.status == GenerationStatus.SUCCEEDED.value and row.artifact_path and \
                storage.exists(settings, row.artifact_path):
            log.info("task %s was already done (redelivered); returning the recorded result", task_id)
            return records.as_result(row)
    try:
        engine = get_engine(request.model, settings)  # loading (once per process) is not generation time
        limit = time_limit if time_limit is not None else time_limits(settings, request.model)[0]
        if expires_at is not None:
            limit = min(limit, expires_at - time.time())
        from app.backends.diffusers import trajectory

        trajectory_out = {}
        if keep_trajectory and trajectory.supports(engine, request):  # a miner's, for the validator to open
            out, kept = trajectory.record(engine, request, deadline=time.monotonic() + limit)
            trajectory_out = {"trajectory_root": kept.root}
        else:
            out, kept = engine.generate(request, deadline=time.monotonic() + limit), None
        store = storage.store_for(settings, "artifacts")
        if kept is not None:
            trajectory_out["trajectory_ref"] = storage.store_for(settings, "trajectories").put(kept.to_bytes(), "npz")[0]
        prune_kept(settings)
        path, digest = store.put(out.data, media.extension(out.media_type))
        frames = store.put(out.frames, media.FRAMES_EXTENSION)[0] if out.frames else None
        timings = {"queued_ms": round(max(0.0, started - enqueued_at) * 1000, 1) if enqueued_at else 0.0, **out.timings}
        with session_scope(url) as session:
            row = records.finish(
                session, task_id=task_id, media_type=out.media_type, pixel_sha256=out.pixel_sha256,
                artifact_sha256=digest, artifact_path=str(path), timings=timings, environment=out.environment,
                frames_path=str(frames) if frames else None,
            )
            return {**records.as_result(row), **trajectory_out}
    except Exception as exc:
        with session_scope(url) as session:
            records.fail(session, task_id=task_id, error=f"{type(exc).__name__}: {exc}")
        raise


def settle_abandoned(settings: Settings, *, worker: str | None = None) -> int:
    """Settle generation rows left `running` by a killed worker (see records.settle_abandoned).

    Without `worker`, rows older than any live attempt can be: a redelivery comes within
    the visibility timeout and runs at most the hard limit.
    """
    from datetime import datetime, timedelta, timezone

    horizon = 2 * broker_visibility_timeout(settings) + longest_hard_limit(settings)
    cutoff = None if worker else datetime.now(timezone.utc) - timedelta(seconds=horizon)
    with session_scope(settings.sqlalchemy_url) as session:
        return records.settle_abandoned(session, worker=worker, started_before=cutoff)
