"""The one schedule: every periodic job, its cadence, and why.

Celery beat reads `BEAT_SCHEDULE` (app.celery_app sets beat_schedule from it). Rules:
short intervals or crontab entries with `expires`, never long intervals (a beat restart
resets interval countdowns), and every entry idempotent (two beats must not double-count).

The foundation has no periodic job yet: the metagraph sync, challenge rounds, the
360-block epoch tick, weight setting and artifact pruning arrive with the validator.
"""

from __future__ import annotations

BEAT_SCHEDULE: dict[str, dict] = {}
