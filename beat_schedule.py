"""The one schedule: every periodic job, its cadence, and why.

The beat process (workers/validator.py, role beat) installs `build_schedule(settings)`. Rules:
short intervals with `expires` (a beat restart resets interval countdowns, and a job
that waited longer than its own period is stale: the next one is coming), never long
intervals; every job idempotent, keyed in the database, so two beats or a restarted
one never double-count.
"""

from __future__ import annotations

from celery.schedules import crontab

from app.settings import Settings
from app.tasks import gateway as gateway_tasks
from app.tasks import validator as tasks


def build_schedule(settings: Settings) -> dict[str, dict]:
    """Each entry names its task by the task object, so a renamed task cannot be missed here.

    The queue is the one the task declares (app/tasks/validator.py); beat sends through
    the same router as every other caller.
    """

    def every(seconds: float, task) -> dict:
        return {"task": task.name, "schedule": seconds, "options": {"expires": seconds}}

    schedule = {
        # Who serves what, their volumes and our quotas: miners come and go between rounds.
        "sync-miners": every(settings.sync_interval, tasks.sync_miners),
        # One challenge per model type; the cadence bounds validator GPU cost per miner.
        "challenge-round": every(settings.challenge_interval, tasks.challenge_round),
        # Cheap: reads the block and rolls tiers over only when block // epoch_length advanced
        # (keyed on the epoch in the database, so frequent ticks never roll over twice).
        "epoch-tick": every(settings.tick_interval, tasks.epoch_tick),
        # Also keyed on the epoch: sets weights once per epoch, retried on the next tick if it failed.
        "set-weights": every(settings.tick_interval, tasks.set_weights),
        # A lost task (a killed worker, a broker outage) must not leave a response pending
        # for ever; every half minute bounds how long one waits past its deadline.
        "settle-stale": every(30.0, tasks.settle_stale),
        # Organic jobs nobody works on (a lost hand-over, a dead I/O worker) are handed over
        # again: every 15 s bounds how long a client's job waits past its lease.
        "resume-jobs": every(15.0, gateway_tasks.resume_jobs),
        # Hourly is plenty for a retention measured in days.
        "prune-artifacts": {"task": tasks.prune_artifacts.name, "schedule": crontab(minute=17),
                            "options": {"expires": 3600}},
    }
    if settings.wandb:
        # Samples and the leaderboard, at the pace of the rounds that produce them.
        schedule["log-wandb"] = every(settings.challenge_interval, tasks.log_wandb)
    return schedule
