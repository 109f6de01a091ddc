"""Test equipment: dishonest external image miners (`seedgrid miner serve --model GoJourney --cheat STRATEGY`).

Each strategy answers with a real provider task (its own key, as an honest miner) but
claims something the task does not back:
- other_task: the challenge's own image with the id of another task (one it ran for
  another prompt);
- other_prompt: a cheaper task for another prompt (its image and id);
- foreign_image: the right task id with an image that is not the task's (made here);
- replay: the first task it ever ran, answered again to every later request;
- failed_task: the id of a task that failed at the provider, with a blank image.
"""

from __future__ import annotations

import io
import threading
import time

from app.external.provider import MAX_IMAGE_BYTES, ProviderError, wait_finished
from app.miner.external import provider_for, reply
from app.protocol.external import ExternalRequest
from app.settings import Settings
from app.web import Refused

STRATEGIES = ("other_task", "other_prompt", "foreign_image", "replay", "failed_task")
OTHER_PROMPT = "a plain grey square"


def _png(color: tuple[int, int, int]) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(out, format="PNG")
    return out.getvalue()


def external_cheat_answer(strategy: str, settings: Settings, model: str):
    """The miner API's `answer` for an external image cheater."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown external strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    provider = provider_for(settings, model, key=settings.gojourney_api_key)
    mode = settings.gojourney_mode
    first: dict = {}
    lock = threading.Lock()

    def run(prompt: str, deadline: float) -> tuple[str, bytes | None]:
        task_id = provider.submit(prompt, mode)
        task = wait_finished(provider, task_id, deadline=deadline)
        data = provider.download(task.image_url, MAX_IMAGE_BYTES) if task.finished and task.image_url else None
        return task_id, data

    def answer(req: ExternalRequest, priority: int, timeout: float, started: float) -> dict:
        t0 = time.perf_counter()
        deadline = time.monotonic() + timeout - 0.5
        try:
            if strategy == "replay":
                with lock:
                    if not first:
                        first["task_id"], first["data"] = run(req.prompt, deadline)
                return reply(req, first["data"], first["task_id"], mode, started, t0)
            if strategy == "other_task":
                _, data = run(req.prompt, deadline)
                other_id, _ = run(OTHER_PROMPT, deadline)
                return reply(req, data, other_id, mode, started, t0)
            if strategy == "other_prompt":
                task_id, data = run(OTHER_PROMPT, deadline)
                return reply(req, data, task_id, mode, started, t0)
            if strategy == "foreign_image":
                task_id, _ = run(req.prompt, deadline)
                return reply(req, _png((req.seed % 256, 90, 200)), task_id, mode, started, t0)
            task_id, _ = run(req.prompt + " --fail", deadline)  # failed_task
            return reply(req, _png((0, 0, 0)), task_id, mode, started, t0)
        except ProviderError as exc:
            raise Refused(503, "provider_failed", str(exc)) from None

    return answer
