"""The one schedule: every periodic job, its cadence, and why.

Celery beat reads `BEAT_SCHEDULE` (app.celery_app sets beat_schedule from it). Rules:
short intervals with `expires` (a beat restart resets interval countdowns, and a job
that waited longer than its own period is stale: the next one is coming), never long
intervals; every job idempotent, keyed in the database, so two beats or a restarted
one never double-count.
"""

from __future__ import annotations

from celery.schedules import crontab

from app.settings import Settings, get_settings


def build_schedule(settings: Settings) -> dict[str, dict]:
    def every(seconds: float, task: str, queue: str) -> dict:
        return {"task": task, "schedule": seconds, "options": {"expires": seconds, "queue": queue}}

    schedule = {
        # Who serves what, their volumes and our quotas: miners come and go between rounds.
        "sync-miners": every(settings.sync_interval, "seedgrid.validator.sync_miners", "io"),
        # One challenge per model type; the cadence bounds validator GPU cost per miner.
        "challenge-round": every(settings.challenge_interval, "seedgrid.validator.challenge_round", "default"),
        # Cheap: reads the block and rolls tiers over only when block // epoch_length advanced
        # (keyed on the epoch in the database, so frequent ticks never roll over twice).
        "epoch-tick": every(settings.tick_interval, "seedgrid.validator.epoch_tick", "default"),
        # Also keyed on the epoch: sets weights once per epoch, retried on the next tick if it failed.
        "set-weights": every(settings.tick_interval, "seedgrid.validator.set_weights", "default"),
        # A lost task (a killed worker, a broker outage) must not leave a response pending
        # for ever; every half minute bounds how long one waits past its deadline.
        "settle-stale": every(30.0, "seedgrid.validator.settle_stale", "default"),
        # Hourly is plenty for a retention measured in days.
        "prune-artifacts": {"task": "seedgrid.validator.prune_artifacts", "schedule": crontab(minute=17),
                            "options": {"expires": 3600, "queue": "default"}},
    }
    if settings.wandb:
        # Samples and the leaderboard, at the pace of the rounds that produce them.
        schedule["log-wandb"] = every(settings.challenge_interval, "seedgrid.validator.log_wandb", "default")
    return schedule


BEAT_SCHEDULE: dict[str, dict] = build_schedule(get_settings())
