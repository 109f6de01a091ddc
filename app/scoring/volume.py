"""Miner capacity: per-validator quotas and the volume reward multiplier (SPEC.md: Miner)."""

from __future__ import annotations

import math
from typing import Mapping

# NicheImage's split: stake raised slightly above 1, so larger validators get a little
# more than their linear share; every eligible validator keeps a floor of MIN_QUOTA.
STAKE_EXPONENT = 1.03
MIN_QUOTA = 3


def validator_quotas(stakes: Mapping[str, float], *, total_volume: int, min_stake: float) -> dict[str, int]:
    """Requests per window for each validator at or above min_stake (floor, minimum 3).

    Example (SPEC.md): volume 100, stakes 15K/600K/1M -> 3/36/62.
    """
    eligible = {hk: float(s) for hk, s in stakes.items() if s >= min_stake and s > 0}
    total = sum(s**STAKE_EXPONENT for s in eligible.values())
    if total <= 0:
        return {}
    return {hk: max(MIN_QUOTA, math.floor(total_volume * s**STAKE_EXPONENT / total)) for hk, s in eligible.items()}


def volume_scale(total_volume: int) -> float:
    """clamp(sqrt(volume) / sqrt(1000), 0, 1): a miner serving 1000 requests per window scores in full."""
    return min(1.0, max(0.0, math.sqrt(max(0, total_volume)) / math.sqrt(1000)))


def reward_multiplier(total_volume: int) -> float:
    """0.9 + 0.1 * volume_scale: 1000 -> 1.0, 500 -> 0.971, 300 -> 0.955."""
    return 0.9 + 0.1 * volume_scale(total_volume)
