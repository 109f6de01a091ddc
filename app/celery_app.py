"""The Celery app: broker and backend from settings, JSON only, the queue enum, routes.

Reliability settings and why:
- acks_late + reject_on_worker_lost: a task is acknowledged only when it finishes, so a
  worker killed mid-task (OOM, GPU fault, SIGKILL) leaves it to be redelivered.
- prefetch 1: a GPU worker holds one task at a time; a second would wait behind the
  first instead of going to an idle replica.
- visibility timeout above the longest hard time limit (Settings): a task still running
  is never delivered to a second worker.
- worker_direct: every worker also consumes its own queue, so a job can be sent to one
  named worker (the reproduction check sends the same request to a second process).
"""

from __future__ import annotations

from enum import Enum

from celery import Celery
from kombu import Queue as KombuQueue

from app.generation.catalogue import get_spec
from beat_schedule import BEAT_SCHEDULE
from app.settings import get_settings

GENERATE_TASK = "seedgrid.generate"


class Queue(str, Enum):
    """Every queue Seedgrid uses. GPU queues carry one model type each."""

    DEFAULT = "default"  # bookkeeping and scoring (validator)
    IO = "io"  # many concurrent HTTP calls to miners (validator)
    VALIDATOR_GPU = "validator.gpu"  # reproduction and verification on the validator's GPU
    GENERATE_REALISTIC_VISION = "generate.RealisticVision"
    GENERATE_DREAMSHAPER = "generate.DreamShaper"
    GENERATE_ANIME_V3 = "generate.AnimeV3"
    GENERATE_REALITIES_EDGE_XL = "generate.RealitiesEdgeXL"
    GENERATE_TEXT_TO_VIDEO = "generate.TextToVideo"

    @classmethod
    def generate(cls, model: str) -> "Queue":
        return cls(f"generate.{get_spec(model).name}")

    @property
    def is_gpu(self) -> bool:
        return self is Queue.VALIDATOR_GPU or self.value.startswith("generate.")


# Validator tasks by queue: HTTP on the I/O workers, torch on the GPU worker, the rest default.
VALIDATOR_ROUTES = {
    "seedgrid.validator.sync_miners": Queue.IO,
    "seedgrid.validator.query_miner": Queue.IO,
    "seedgrid.validator.reproduce": Queue.VALIDATOR_GPU,
    "seedgrid.validator.verify_response": Queue.VALIDATOR_GPU,
}


def route_task(name, args, kwargs, options, task=None, **kw):
    """Send each generate task to its model type's queue, validator tasks to theirs."""
    if name == GENERATE_TASK:
        request = (kwargs or {}).get("request") or (args[0] if args else {})
        return {"queue": Queue.generate(request["model"]).value}
    if name in VALIDATOR_ROUTES:
        return {"queue": VALIDATOR_ROUTES[name].value}
    return None


def time_limits(model: str) -> dict[str, float]:
    soft, hard = get_settings().time_limits(model)
    return {"soft_time_limit": soft, "time_limit": hard}


def create_app() -> Celery:
    settings = get_settings()
    app = Celery("seedgrid", broker=settings.broker_url, backend=settings.broker_url)
    transport = {
        "visibility_timeout": settings.broker_visibility_timeout,
        "unacked_restore_interval": settings.unacked_restore_interval,
        "unacked_restore_throttle": 1,
        # Ten priority levels, 0 first: the miner API orders queued requests by caller stake.
        "priority_steps": list(range(10)),
        "sep": ":",
        "queue_order_strategy": "priority",
    }
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_accept_content=["json"],
        event_serializer="json",
        task_queues=[KombuQueue(q.value, routing_key=q.value) for q in Queue],
        task_default_queue=Queue.DEFAULT.value,
        task_routes=(route_task,),
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_direct=True,
        task_track_started=True,
        task_send_sent_event=True,
        worker_send_task_events=True,
        result_extended=True,
        result_expires=settings.result_expires,
        broker_transport_options=transport,
        result_backend_transport_options={"visibility_timeout": settings.broker_visibility_timeout},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        imports=("app.tasks.generation", "app.tasks.validator"),
        beat_schedule=BEAT_SCHEDULE,
    )
    return app


celery_app = create_app()
