"""Thin Celery tasks for the validator: each calls one function of app.validator.service."""

from __future__ import annotations

from app.celery_app import Queue, celery_app
from app.settings import get_settings
from app.validator import service

IO, GPU, DEFAULT = Queue.IO.value, Queue.VALIDATOR_GPU.value, Queue.DEFAULT.value


@celery_app.task(name="seedgrid.validator.sync_miners")
def sync_miners() -> dict:
    return service.sync_miners(get_settings())


@celery_app.task(name="seedgrid.validator.challenge_round")
def challenge_round() -> list[dict]:
    """Build this round's challenges, then fan out: queries on the I/O queue, one reproduction each on the GPU."""
    plans = service.start_round(get_settings())
    for plan in plans:
        reproduce.apply_async((plan.challenge_id,), queue=GPU)
        for response_id in plan.response_ids:
            query_miner.apply_async((response_id,), queue=IO)
    return [{"challenge": p.challenge_id, "model": p.model, "miners": len(p.response_ids)} for p in plans]


@celery_app.task(name="seedgrid.validator.query_miner")
def query_miner(response_id: int) -> str:
    status = service.query_miner(get_settings(), response_id)
    if status == "verify":  # the reproduction was ready first
        verify_response.apply_async((response_id,), queue=GPU)
    return status


@celery_app.task(name="seedgrid.validator.reproduce", bind=True)
def reproduce(self, challenge_id: str) -> int:
    pending = service.reproduce(get_settings(), challenge_id, task_id=self.request.id)
    for response_id in pending:
        verify_response.apply_async((response_id,), queue=GPU)
    return len(pending)


@celery_app.task(name="seedgrid.validator.verify_response")
def verify_response(response_id: int) -> str | None:
    return service.verify_response(get_settings(), response_id)


@celery_app.task(name="seedgrid.validator.epoch_tick")
def epoch_tick() -> dict:
    return service.epoch_tick(get_settings())


@celery_app.task(name="seedgrid.validator.set_weights")
def set_weights() -> dict:
    result = service.set_weights(get_settings())
    result["weights"] = {str(k): v for k, v in (result.get("weights") or {}).items()}
    return result


@celery_app.task(name="seedgrid.validator.settle_stale")
def settle_stale() -> dict:
    """Settle lost queries and reproductions; verify again what was answered but never judged."""
    result = service.settle_stale(get_settings())
    for response_id in result["reverify"]:
        verify_response.apply_async((response_id,), queue=GPU)
    settled = service.settle_abandoned_generations(get_settings())
    return {**result, "reverify": len(result["reverify"]), "abandoned_generations": settled}


@celery_app.task(name="seedgrid.validator.prune_artifacts")
def prune_artifacts() -> int:
    return service.prune_artifacts(get_settings())


@celery_app.task(name="seedgrid.validator.log_wandb")
def log_wandb() -> int:
    from app.validator.wandb_log import log_round

    settings = get_settings()
    return log_round(settings) if settings.wandb else 0
