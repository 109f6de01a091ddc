"""Which miner gets an organic job: better miners get more, failing ones none, new ones a little.

Pure over MinerState rows (no Celery, no HTTP). A miner is eligible when it serves the
job's model, is reachable, is under its tier's request limit and was not tried for this
job already. Among the eligible:
- ranked miners (score at or above the floor, NicheImage's `miner_score_threshold`) are
  drawn at random, weighted by score x tier reward factor;
- new miners below the floor (fewer than NEW_MINER_SUCCESSES verified answers, and a score
  no failure has pushed below 0) get the exploration share: with probability `exploration`
  (or when no ranked miner is left) one of them is drawn uniformly, so a fresh honest miner
  can earn its first organic traffic;
- established miners below the floor get none, nor does a miner whose failures outweigh its
  successes (a cheater never has a verified answer: counting only successes kept it "new"
  and offered it organic jobs for ever; a local run sent it two of three).
Each drawn miner must take one unit of our quota there (`take`, shared with the
challenge rounds, which leave the organic share free); one that cannot is set aside and
the draw repeats.
"""

from __future__ import annotations

import random
from typing import Callable, Iterable

from app.models import MinerState
from app.scoring.tiers import TierTable
from app.validator.rounds import eligible

NEW_MINER_SUCCESSES = 5  # verified answers after which a miner is judged by its score alone
MIN_WEIGHT = 1e-6  # a ranked miner at exactly the floor (0) still gets a draw


def split(candidates: list[MinerState], floor: float) -> tuple[list[MinerState], list[MinerState]]:
    """(ranked, explorers): at or above the floor; new, not yet penalised, and below it. The rest get none."""
    ranked = [m for m in candidates if m.score >= floor]
    explorers = [m for m in candidates
                 if 0 <= m.score < floor and m.total_successes < NEW_MINER_SUCCESSES]
    return ranked, explorers


def pick_miner(miners: Iterable[MinerState], model: str, *, tiers: TierTable, rng: random.Random, floor: float,
               exploration: float, exclude: set[str] = frozenset(),
               take: Callable[[MinerState], bool]) -> MinerState | None:
    """One miner for the next attempt of a job, holding a unit of our quota there; None when none can take it."""
    ranked, explorers = split(eligible(miners, model, tiers=tiers, exclude=set(exclude)), floor)
    while ranked or explorers:
        if explorers and (not ranked or rng.random() < exploration):
            miner = explorers.pop(rng.randrange(len(explorers)))
        else:
            weights = [max(m.score, MIN_WEIGHT) * tiers.factor(m.tier) for m in ranked]
            miner = ranked.pop(rng.choices(range(len(ranked)), weights=weights)[0])
        if take(miner):
            return miner
    return None


def capacity(miners: Iterable[MinerState], model: str, *, tiers: TierTable, floor: float) -> dict:
    """What /v1/models shows per model type: miners that may get organic jobs now, and their tiers."""
    ranked, explorers = split(eligible(miners, model, tiers=tiers, exclude=set()), floor)
    by_tier: dict[str, int] = {}
    for m in ranked + explorers:
        by_tier[m.tier] = by_tier.get(m.tier, 0) + 1
    return {"miners": len(ranked) + len(explorers), "ranked": len(ranked), "new": len(explorers), "tiers": by_tier}
