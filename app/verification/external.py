"""An external image answer checked against the provider's own record of the task (no reproduction).

The provider is trusted (docs/ARCHITECTURE.md): what it says about the task is the truth.
The checks, in order, each failing with a reason that names it:
1. the task id was not used before (replay): by the caller, from the validator's records;
2. the provider knows the task and it finished (a failed or unfinished task fails);
3. its prompt is the challenge's: the text before any `--` flag, and the challenge's
   `--ar` when it set one (stricter than NicheImage, which compared the text only);
4. the image bytes the miner sent hash the same as the bytes the provider serves.
A passing answer is `exact`; its reward factor follows the provider's mode (turbo 1.0,
fast 0.5, relax 0.1), not the mode the miner claimed.
"""

from __future__ import annotations

import hashlib

from app.external.provider import ProviderTask
from app.protocol.external import MODE_FACTORS, base_prompt, flags
from app.verification.verdict import Verdict, failed


def verify_external(*, prompt: str, task_id: str, data: bytes, task: ProviderTask | None,
                    served: bytes | None, replay_of: int | None) -> tuple[Verdict, float]:
    """(verdict, reward factor); `served`: the provider's image bytes (None when it served none)."""
    sha = hashlib.sha256(data).hexdigest()
    if replay_of is not None:
        return failed(f"task {task_id} was already used by response {replay_of}: a replayed task id",
                      pixel_sha256=sha), 1.0
    if task is None:
        return failed(f"the provider knows no task {task_id}", pixel_sha256=sha), 1.0
    if not task.finished:
        return failed(f"task {task_id} is {task.status} at the provider"
                      + (f" ({task.error})" if task.error else ""), pixel_sha256=sha), 1.0
    if base_prompt(task.prompt) != base_prompt(prompt):
        return failed(f"task {task_id} was asked {base_prompt(task.prompt)[:80]!r}, not the challenge's prompt",
                      pixel_sha256=sha), 1.0
    wanted_ar = flags(prompt).get("ar")
    if wanted_ar and flags(task.prompt).get("ar") != wanted_ar:
        return failed(f"task {task_id} was not asked the challenge's --ar {wanted_ar}", pixel_sha256=sha), 1.0
    if served is None or hashlib.sha256(served).hexdigest() != sha:
        return failed(f"the image is not task {task_id}'s image at the provider", 0.0, pixel_sha256=sha), 1.0
    factor = MODE_FACTORS[task.mode]
    return Verdict("exact", 1.0, f"task {task_id} finished at the provider in {task.mode} mode "
                                 f"(reward x{factor:g})", pixel_sha256=sha), factor
