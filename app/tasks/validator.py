"""Thin Celery tasks for the validator: each calls one function of app/validator/{rounds,judging,epochs}.py.

Each task states its queue once, in its decorator; callers and beat never name it.
The process's `Validator` (wallet, chain, Redis, client) is built once, on first use.
"""

from __future__ import annotations

from functools import lru_cache

from app.celery_app import celery_app
from app.config import get_settings
from app.queues import Queue
from app.validator import epochs, judging, rounds
from app.validator.context import Validator, open_validator

# HTTP on the I/O workers, torch on the GPU worker, the rest default.
IO, GPU, DEFAULT = Queue.IO.value, Queue.VALIDATOR_GPU.value, Queue.DEFAULT.value


@lru_cache(maxsize=1)
def validator() -> Validator:
    return open_validator(get_settings())


@celery_app.task(name="seedgrid.validator.sync_miners", queue=IO)
def sync_miners() -> dict:
    return rounds.sync_miners(validator())


@celery_app.task(name="seedgrid.validator.challenge_round", queue=DEFAULT)
def challenge_round() -> list[dict]:
    """Build this round's challenges, then fan out: queries on the I/O queue and, for a challenge not
    checked by its answers' trajectories, one reproduction on the GPU."""
    plans = rounds.start_round(validator())
    for plan in plans:
        if plan.reproduce:
            reproduce.delay(plan.challenge_id)
        for response_id in plan.response_ids:
            query_miner.delay(response_id)
    return [{"challenge": p.challenge_id, "model": p.model, "miners": len(p.response_ids)} for p in plans]


@celery_app.task(name="seedgrid.validator.query_miner", queue=IO)
def query_miner(response_id: int) -> str:
    status = rounds.query_miner(validator(), response_id)
    if status == "verify":  # the reproduction was ready first
        verify_response.delay(response_id)
    return status


@celery_app.task(name="seedgrid.validator.reproduce", queue=GPU, bind=True)
def reproduce(self, challenge_id: str) -> int:
    pending = judging.reproduce(validator(), challenge_id, task_id=self.request.id)
    for response_id in pending:
        verify_response.delay(response_id)
    return len(pending)


@celery_app.task(name="seedgrid.validator.verify_response", queue=GPU)
def verify_response(response_id: int) -> str | None:
    result = judging.verify_response(validator(), response_id)
    if isinstance(result, judging.Dispute):  # its challenge reproduced in full; that verifies the rest
        reproduce.delay(result.challenge_id)
        return "disputed"
    return result


@celery_app.task(name="seedgrid.validator.epoch_tick", queue=DEFAULT)
def epoch_tick() -> dict:
    return epochs.epoch_tick(validator())


@celery_app.task(name="seedgrid.validator.set_weights", queue=DEFAULT)
def set_weights() -> dict:
    result = epochs.set_weights(validator())
    result["weights"] = {str(k): v for k, v in (result.get("weights") or {}).items()}
    return result


@celery_app.task(name="seedgrid.validator.settle_stale", queue=DEFAULT)
def settle_stale() -> dict:
    """Settle lost queries and reproductions; verify again what was answered but never judged."""
    result = judging.settle_stale(validator())
    for response_id in result["reverify"]:
        verify_response.delay(response_id)
    settled = judging.settle_abandoned_generations(validator())
    return {**result, "reverify": len(result["reverify"]), "abandoned_generations": settled}


@celery_app.task(name="seedgrid.validator.prune_artifacts", queue=DEFAULT)
def prune_artifacts() -> int:
    return epochs.prune_artifacts(validator())


@celery_app.task(name="seedgrid.validator.log_wandb", queue=DEFAULT)
def log_wandb() -> int:
    from app.validator.wandb_log import log_round

    settings = get_settings()
    return log_round(settings) if settings.wandb else 0
