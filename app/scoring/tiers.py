"""Fractal's tiers: the table, success rates, promotion and relegation at each rollover.

Every 360 blocks (app/validator/records.rollover applies this to the database once per epoch):
- a miner is promoted to the highest tier whose rates hold and whose minimum total
  successes it has;
- a miner whose current tier's rates fail is relegated one tier;
- a Challenger relegated that way may return at once, without the minimum count, as
  soon as its rates hold Challenger's again;
- a miner with no requests in the interval stays where it is (no evidence either way).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence


@dataclass(frozen=True)
class Tier:
    name: str
    request_success: float  # minimum rate, 0 for none
    validation_success: float
    min_successes: int
    reward_factor: float
    request_limit: int  # requests a validator may send this miner per interval

    def __post_init__(self):
        """Types and ranges checked here, so a bad table fails at load, never in a round."""
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"tier name must be a non-empty string, got {self.name!r}")
        for field in ("request_success", "validation_success"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"tier {self.name}: {field} must be a number from 0 to 1, got {value!r}")
        value = self.reward_factor
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 10:
            raise ValueError(f"tier {self.name}: reward_factor must be a number from 0 to 10, got {value!r}")
        for field in ("min_successes", "request_limit"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"tier {self.name}: {field} must be a whole number >= 0, got {value!r}")


DEFAULT_TIERS: tuple[Tier, ...] = (  # lowest first
    Tier("Bronze", 0.0, 0.0, 0, 0.45, 500),
    Tier("Silver", 0.949, 0.949, 3_500, 0.55, 3_500),
    Tier("Gold", 0.949, 0.949, 14_000, 0.72, 14_000),
    Tier("Grandmaster", 0.999, 0.999, 700_000, 0.85, 25_000),
    Tier("Challenger", 0.999, 0.999, 2_000_000, 1.00, 100_000),
)
CHALLENGER = "Challenger"


@dataclass(frozen=True)
class IntervalStats:
    attempts: int  # requests sent this interval
    request_successes: int  # answered in time with a well-formed output
    verified: int  # passed verification
    failed_verification: int  # well-formed but failed verification

    @property
    def request_rate(self) -> float | None:
        return self.request_successes / self.attempts if self.attempts else None

    @property
    def validation_rate(self) -> float | None:
        checked = self.verified + self.failed_verification
        return self.verified / checked if checked else None


@dataclass(frozen=True)
class Transition:
    tier: str
    challenger_return: bool  # may return to Challenger without the minimum count
    reason: str


class TierTable:
    def __init__(self, tiers: Sequence[Tier] = DEFAULT_TIERS):
        if not tiers:
            raise ValueError("a tier table needs at least one tier")
        self.tiers = tuple(tiers)
        self.by_name = {t.name: t for t in self.tiers}
        if len(self.by_name) != len(self.tiers):
            raise ValueError("tier names must be unique")

    @classmethod
    def from_json(cls, text: str) -> "TierTable":
        """[{"name": .., "request_success": .., ...}, ...], lowest tier first."""
        try:
            rows = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"not JSON ({exc})") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError("must be a JSON list of objects, lowest tier first")
        fields = set(Tier.__dataclass_fields__)
        for row in rows:
            if set(row) != fields:
                missing, extra = sorted(fields - set(row)), sorted(set(row) - fields)
                raise ValueError(f"tier {row.get('name', '?')!r}: " + "; ".join(
                    ([f"missing {', '.join(missing)}"] if missing else []) + ([f"unknown {', '.join(extra)}"] if extra else [])))
        return cls([Tier(**row) for row in rows])

    @property
    def lowest(self) -> Tier:
        return self.tiers[0]

    def index(self, name: str) -> int:
        try:
            return self.tiers.index(self.by_name[name])
        except KeyError:
            raise ValueError(f"unknown tier {name!r}; tiers: {', '.join(self.by_name)}") from None

    def factor(self, name: str) -> float:
        return self.by_name[name].reward_factor

    def request_limit(self, name: str) -> int:
        return self.by_name[name].request_limit

    @staticmethod
    def rates_hold(tier: Tier, stats: IntervalStats) -> bool:
        req, val = stats.request_rate, stats.validation_rate
        return (req is None or req >= tier.request_success) and (val is None or val >= tier.validation_success)

    def transition(self, current: str, stats: IntervalStats, total_successes: int,
                   challenger_return: bool) -> Transition:
        """The tier after this interval, with the reason."""
        here = self.index(current)
        if stats.attempts == 0:
            return Transition(current, challenger_return, "no requests this interval")
        if self.tiers[-1].name == CHALLENGER and challenger_return and self.rates_hold(self.tiers[-1], stats):
            return Transition(CHALLENGER, False, "returned to Challenger: rates hold again")
        if not self.rates_hold(self.tiers[here], stats):
            lower = self.tiers[max(0, here - 1)]
            returning = challenger_return or current == CHALLENGER
            return Transition(lower.name, returning, f"relegated: rates below {current}'s "
                              f"(requests {_pct(stats.request_rate)}, validation {_pct(stats.validation_rate)})")
        for tier in reversed(self.tiers[here + 1:]):
            if self.rates_hold(tier, stats) and total_successes >= tier.min_successes:
                return Transition(tier.name, False, f"promoted: rates and {total_successes} successes meet {tier.name}")
        return Transition(current, challenger_return, "kept")


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.1%}"


@lru_cache(maxsize=8)
def tier_table(text: str | None) -> TierTable:
    """SEEDGRID_TIER_TABLE parsed once per process (SPEC.md's table when unset)."""
    return TierTable.from_json(text) if text else TierTable()
