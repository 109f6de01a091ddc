"""The Chain interface every part of Seedgrid talks to, and its plain data types.

Two implementations: LocalChain (app/chain/local.py, state in the database, shared by
all local processes) and BittensorChain (app/chain/bittensor_chain.py, the bittensor 11
SDK). A chain is bound to one netuid and one identity (the hotkey that sets weights or
serves an axon).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Mapping, Protocol, Sequence

from app import __version__

U16_MAX = 65535
VALIDATOR_PERMITS = 64  # Bittensor grants validator permits to the top 64 neurons by stake


class ChainError(RuntimeError):
    """A chain operation failed; the message says why and what to do."""


@dataclass(frozen=True)
class Neuron:
    uid: int
    hotkey: str
    coldkey: str
    stake: float  # in TAO (alpha) units
    validator_permit: bool
    axon: str | None  # "host:port", or None when not served
    last_update: int

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def url(self) -> str | None:
        return f"http://{self.axon}" if self.axon else None


@dataclass(frozen=True)
class WeightsResult:
    block: int
    weights: dict[int, int]  # uid -> u16, as stored on chain
    version_key: int


class Chain(Protocol):
    netuid: int

    def block(self) -> int: ...

    def metagraph(self) -> Sequence[Neuron]: ...

    def set_weights(self, weights: Mapping[int, float], *, version_key: int) -> WeightsResult: ...

    def serve_axon(self, host: str, port: int) -> None: ...


def quantize_u16(weights: Mapping[int, float]) -> dict[int, int]:
    """Normalise to a max of 65535, as the chain stores weights; zero and negative weights drop."""
    positive = {int(uid): float(w) for uid, w in weights.items() if w > 0}
    if not positive:
        return {}
    top = max(positive.values())
    return {uid: round(w / top * U16_MAX) for uid, w in sorted(positive.items()) if round(w / top * U16_MAX) > 0}


def permits(neurons: Sequence[tuple[int, float]], slots: int = VALIDATOR_PERMITS) -> set[int]:
    """uids holding a validator permit: the top `slots` by stake (ties by lower uid), stake > 0."""
    ranked = sorted((n for n in neurons if n[1] > 0), key=lambda n: (-n[1], n[0]))
    return {uid for uid, _ in ranked[:slots]}


def version_key(version: str = __version__) -> int:
    """'1.2.3' -> 1002003: the weights version key validators publish (monotonic in the version)."""
    parts = [int(m.group()) if (m := re.match(r"\d+", p)) else 0 for p in version.split(".")[:3]]
    major, minor, patch = (parts + [0, 0, 0])[:3]
    return major * 1_000_000 + minor * 1_000 + patch
