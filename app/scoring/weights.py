"""Scores -> weights (SPEC.md: Weights)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from app.scoring.volume import reward_multiplier


@dataclass(frozen=True)
class MinerScore:
    uid: int
    model: str
    score: float  # the EMA
    total_volume: int  # from the miner's /v1/info


def compute_weights(scores: Iterable[MinerScore], shares: Mapping[str, float]) -> dict[int, float]:
    """Normalise positive scores within each model type, then multiply by the type's incentive
    share and the miner's volume multiplier (0.9 + 0.1 * volume_scale). Zero for the rest."""
    by_model: dict[str, list[MinerScore]] = {}
    for s in scores:
        by_model.setdefault(s.model, []).append(s)
    weights: dict[int, float] = {}
    for model, group in by_model.items():
        share = shares.get(model, 0.0)
        total = sum(max(0.0, s.score) for s in group)
        for s in group:
            w = max(0.0, s.score) / total * share * reward_multiplier(s.total_volume) if total > 0 else 0.0
            weights[s.uid] = weights.get(s.uid, 0.0) + w
    return weights
