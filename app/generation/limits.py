"""How long generation may take: model timeouts, task time limits, the broker's redelivery window.

Each number comes from the catalogue's timeout for the model type, scaled by
SEEDGRID_TIMEOUT_SCALE (slow hardware), so a worker, the miner API and the validator
agree on every deadline.
"""

from __future__ import annotations

from app.backends.registry import SERVED_MODELS
from app.protocol.catalogue import get_spec
from app.settings import Settings

# Hard limit = soft limit + this grace: time for the task to notice the soft limit,
# free the GPU and record the failure before the worker process is killed.
HARD_LIMIT_GRACE_S = 5.0
# Visibility timeout = longest hard limit + this: a worker's ack reaches Redis well within it.
REDELIVERY_MARGIN_S = 15.0


def model_timeout(settings: Settings, model: str) -> float:
    """How long a validator waits for this model's answer, and a worker may generate it."""
    return get_spec(model).timeout_s * settings.timeout_scale


def time_limits(settings: Settings, model: str) -> tuple[float, float]:
    """(soft, hard) task time limits for a model's generate task."""
    soft = model_timeout(settings, model)
    return soft, soft + HARD_LIMIT_GRACE_S


def longest_hard_limit(settings: Settings) -> float:
    return max(time_limits(settings, m)[1] for m in SERVED_MODELS)


def broker_visibility_timeout(settings: Settings) -> float:
    """SEEDGRID_VISIBILITY_TIMEOUT, else just above the longest hard limit.

    No task runs past it (the engine stops at the soft limit between steps), so a
    running task is never handed to a second worker, and a killed worker's task comes
    back within that bound, not twice it.
    """
    return settings.visibility_timeout or longest_hard_limit(settings) + REDELIVERY_MARGIN_S
