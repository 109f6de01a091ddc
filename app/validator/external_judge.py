"""Judge an external image answer (GoJourney) against the provider's own record of its task.

`fetch_claim` reads what the verdict needs from outside the database (the miner's bytes,
the provider's task and image; ProviderError when the provider fails: the validator's
failure, never counted against the miner); `judge_claim` claims the task id in the
verdict's transaction (a replay fails) and runs app/verification/external.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from app import storage
from app.external.goapi import GoApiProvider
from app.external.provider import MAX_IMAGE_BYTES, ProviderError, ProviderTask
from app.validator import records
from app.verification.external import verify_external
from app.verification.verdict import Verdict, failed


@dataclass(frozen=True)
class Claim:
    prompt: str
    task_id: str | None
    data: bytes
    task: ProviderTask | None = None
    served: bytes | None = None


def fetch_claim(settings, request: dict, artifact_path: str | None, environment: dict | None) -> Claim:
    task_id = (environment or {}).get("task_id")
    data = storage.load(settings, artifact_path) if artifact_path else b""
    if not isinstance(task_id, str) or not task_id:
        return Claim(request["prompt"], None, data)
    if not settings.gojourney_url:
        raise ProviderError("SEEDGRID_GOJOURNEY_URL is not set: this validator cannot fetch provider tasks")
    provider = GoApiProvider(settings.gojourney_url, settings.gojourney_api_key)
    try:
        task = provider.fetch(task_id)
        served = None
        if task is not None and task.finished and task.image_url:
            try:
                served = provider.download(task.image_url, MAX_IMAGE_BYTES)
            except ProviderError as exc:
                if exc.status != 404:  # a finished task without its image is the miner's problem, not ours
                    raise
    finally:
        provider.close()
    return Claim(request["prompt"], task_id, data, task, served)


def judge_claim(session: Session, claim: Claim, *, response_id: int, model: str) -> tuple[Verdict, float]:
    if claim.task_id is None:
        return failed("the answer names no provider task", well_formed=False), 1.0
    replay_of = records.claim_provider_task(session, task_id=claim.task_id, model=model, response_id=response_id)
    return verify_external(prompt=claim.prompt, task_id=claim.task_id, data=claim.data, task=claim.task,
                           served=claim.served, replay_of=replay_of)
