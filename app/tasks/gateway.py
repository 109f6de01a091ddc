"""Thin Celery tasks for the gateway: a job's attempts on the I/O queue, and the sweep that resumes lost jobs.

A delivered job drawn for verification is judged by the validator's own tasks: its
organic challenge goes to `reproduce` on the GPU queue, which verifies the delivered
answer like any challenge's; a text or external answer goes straight to `verify_response`.
"""

from __future__ import annotations

from app.celery_app import celery_app
from app.gateway import jobs, runner
from app.queues import Queue
from app.tasks.validator import reproduce, validator, verify_response

# A job whose hand-over to the I/O queue was lost (the gateway died between storing and
# sending it) is resumed after this long queued; well above a busy queue's normal delay.
QUEUED_FOR_S = 60.0


# No result stored (nor its STARTED state): the job row is the outcome, and two fewer
# backend writes per job shorten the hand-over. Flower still sees the task's events.
@celery_app.task(name="seedgrid.gateway.run_job", queue=Queue.IO.value, ignore_result=True)
def run_job(job_id: str) -> str:
    run = runner.run_job(validator(), job_id)
    if run.judge_response is not None:
        verify_response.delay(run.judge_response)
    elif run.sampled:
        reproduce.delay(job_id)
    return run.status


@celery_app.task(name="seedgrid.gateway.resume_jobs", queue=Queue.DEFAULT.value)
def resume_jobs() -> int:
    """Hand over again the jobs nobody works on (a lost enqueue, a dead I/O worker)."""
    with validator().sessions() as s:
        ids = jobs.resumable(s, queued_for_s=QUEUED_FOR_S)
    for job_id in ids:
        run_job.delay(job_id)
    return len(ids)


def enqueue(job_id: str) -> None:
    """How the gateway hands a stored job to the I/O workers."""
    run_job.delay(job_id)
