"""Per-outcome rewards and the per-miner EMA (SPEC.md: Validator, Rewards)."""

from __future__ import annotations

EMA_ALPHA = 0.05  # SPEC.md: a miner's score moves 5% of the way to each new reward
MAX_LATENCY_PENALTY = 0.4  # NicheImage: a slow but correct answer keeps at least 60% of its factor
FAILED_CHALLENGE = -0.01
FAILED_INFERENCE = -0.05  # an organic request failing costs 5x a failed challenge


def latency_penalty(latency_s: float, timeout_s: float) -> float:
    """min(0.4, 0.4 * t^3 / F^3): negligible when fast, the full 0.4 at the timeout."""
    if timeout_s <= 0:
        raise ValueError(f"timeout must be positive, got {timeout_s}")
    t = max(0.0, latency_s)
    return min(MAX_LATENCY_PENALTY, MAX_LATENCY_PENALTY * t**3 / timeout_s**3)


def reward(*, verified: bool, kind: str, latency_s: float, timeout_s: float, tier_factor: float,
           scale: float = 1.0) -> float:
    """Verified: the tier's reward factor minus the latency penalty, times `scale` (an external
    provider's mode: turbo 1.0, fast 0.5, relax 0.1). Failed (including timeouts and errors):
    -0.01 for a challenge, -0.05 for an inference request."""
    if verified:
        return (tier_factor - latency_penalty(latency_s, timeout_s)) * scale
    return FAILED_INFERENCE if kind == "inference" else FAILED_CHALLENGE


def ema(previous, value, alpha: float = EMA_ALPHA):
    """One EMA step. Works on floats and on SQL column expressions alike, so the database
    update (app/validator/records.record_outcome) and any Python check use this one formula."""
    return (1 - alpha) * previous + alpha * value
