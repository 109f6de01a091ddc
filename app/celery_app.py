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

from celery import Celery
from kombu import Queue as KombuQueue

from app.config import get_settings
from app.generation.limits import broker_visibility_timeout
from app.queues import Queue


def route_task(name, args, kwargs, options, task=None, **kw):
    """A generate task goes to its model type's queue; any other task to the queue it declares.

    Each task states its queue once, in its decorator (`@celery_app.task(queue=...)`);
    a caller never names it, so moving a task to another queue is a one-line change.
    """
    if name == GENERATE_TASK:
        request = (kwargs or {}).get("request") or (args[0] if args else {})
        return {"queue": Queue.generate(request["model"]).value}
    if task is not None and getattr(task, "queue", None):
        return {"queue": task.queue}
    return None


GENERATE_TASK = "seedgrid.generate"


def create_app() -> Celery:
    settings = get_settings()
    app = Celery("seedgrid", broker=settings.broker_url, backend=settings.broker_url)
    transport = {
        "visibility_timeout": broker_visibility_timeout(settings),
        "unacked_restore_interval": settings.unacked_restore_interval,
        "unacked_restore_throttle": 1,
        # Ten priority levels, 0 first: the miner API orders queued requests by caller stake.
        # They order messages within one queue. Between the queues of a multi-model
        # worker kombu's default round robin stays: its "priority" strategy always
        # reads the first queue named, so a busy image queue starved the video queue.
        "priority_steps": list(range(10)),
        "sep": ":",
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
        result_backend_transport_options={"visibility_timeout": broker_visibility_timeout(settings)},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        imports=("app.tasks.generation", "app.tasks.validator", "app.tasks.gateway"),
    )
    return app


celery_app = create_app()
