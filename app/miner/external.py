"""An external image type's answers (GoJourney): the prompt submitted to the provider with the miner's
own key and mode, polled within the model's timeout, and the image downloaded.

No GPU worker of ours runs here: the provider is the engine, and the miner API is its
admission (signature, blacklist, quota, slots, body cap) as for every other type. The
answer carries the image, the provider's task id and the mode, which the validator
checks against the provider itself (app/verification/external.py).
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Callable

from app.external.goapi import GoApiProvider
from app.external.provider import MAX_IMAGE_BYTES, ProviderError, wait_finished
from app.protocol.external import ExternalRequest
from app.settings import Settings
from app.web import Refused

ExternalAnswerFn = Callable[[ExternalRequest, int, float, float], dict]


def provider_for(settings: Settings, model: str, *, key: str | None = None) -> GoApiProvider:
    if not settings.gojourney_url:
        raise ValueError(f"{model} is an external image type: set SEEDGRID_GOJOURNEY_URL to the provider's base URL "
                         "(and a miner's SEEDGRID_GOJOURNEY_API_KEY to its own key)")
    return GoApiProvider(settings.gojourney_url, key)


def external_answer(settings: Settings, model: str) -> ExternalAnswerFn:
    """The honest answer: the challenge's prompt as asked, in the configured mode."""
    if not settings.gojourney_api_key:
        raise ValueError(f"a {model} miner submits with its own provider key: set SEEDGRID_GOJOURNEY_API_KEY")
    provider = provider_for(settings, model, key=settings.gojourney_api_key)

    def answer(req: ExternalRequest, priority: int, timeout: float, started: float) -> dict:
        t0 = time.perf_counter()
        deadline = time.monotonic() + timeout - 0.5  # leave the reply its time on the wire
        try:
            task_id = provider.submit(req.prompt, settings.gojourney_mode)
            task = wait_finished(provider, task_id, deadline=deadline)
            if not task.finished or not task.image_url:
                raise ProviderError(f"task {task_id} failed at the provider: {task.error or task.status}")
            data = provider.download(task.image_url, MAX_IMAGE_BYTES)
        except ProviderError as exc:
            raise Refused(503, "provider_failed", str(exc)) from None
        return reply(req, data, task_id, task.mode, started, t0)

    return answer


def reply(req: ExternalRequest, data: bytes, task_id: str, mode: str, started: float, submitted_at: float) -> dict:
    now = time.perf_counter()
    return {"request_id": req.request_id, "model": req.model, "media_type": "image/png",
            "data": base64.b64encode(data).decode(), "pixel_sha256": hashlib.sha256(data).hexdigest(),
            "task_id": task_id, "mode": mode, "environment": {"provider": "goapi", "mode": mode},
            "timings": {"generate_ms": round((now - submitted_at) * 1000, 1),
                        "total_ms": round((now - started) * 1000, 1)}}
