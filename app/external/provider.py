"""The provider interface: submit a prompt in a mode, get a task id; fetch a task; download its image.

A miner submits with its own key and polls within the model's timeout; a validator
fetches the same task to check a miner's claim. The provider is trusted: what it says
about a task (finished, prompt, mode, image) is the ground truth (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

TASK_STATES = ("pending", "processing", "finished", "failed")
MAX_IMAGE_BYTES = 16 * 1024 * 1024  # a provider's image, downloaded by a miner or a validator


class ProviderError(RuntimeError):
    """The provider refused or did not answer; `status` is its HTTP status when it sent one."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ProviderTask:
    task_id: str
    status: str  # TASK_STATES
    prompt: str
    mode: str
    image_url: str | None
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.status == "finished"


class Provider(Protocol):
    def submit(self, prompt: str, mode: str) -> str: ...

    def fetch(self, task_id: str) -> ProviderTask | None: ...  # None: the provider knows no such task

    def download(self, url: str, max_bytes: int) -> bytes: ...


def wait_finished(provider: Provider, task_id: str, *, deadline: float, poll_s: float = 0.25) -> ProviderTask:
    """Poll until the task finishes or fails, or until `deadline` (time.monotonic()); ProviderError then."""
    while True:
        task = provider.fetch(task_id)
        if task is None:
            raise ProviderError(f"the provider lost task {task_id}")
        if task.status in ("finished", "failed"):
            return task
        if time.monotonic() + poll_s > deadline:
            raise ProviderError(f"task {task_id} still {task.status} at the deadline")
        time.sleep(poll_s)
