"""A chain whose block the test sets: stands in for a live chain's RPC in unit tests.

It records every read of the block and every weight set, so a test can check how often
a service function reads the chain and what it submits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from app.chain.base import Neuron, WeightsResult, quantize_u16


@dataclass
class ScriptedChain:
    netuid: int = 1
    current_block: int = 0
    neurons: list[Neuron] = field(default_factory=list)
    block_reads: int = 0
    weight_sets: list[WeightsResult] = field(default_factory=list)

    def block(self) -> int:
        self.block_reads += 1
        return self.current_block

    def metagraph(self) -> Sequence[Neuron]:
        return list(self.neurons)

    def set_weights(self, weights: Mapping[int, float], *, version_key: int) -> WeightsResult:
        result = WeightsResult(block=self.current_block, weights=quantize_u16(weights), version_key=version_key)
        self.weight_sets.append(result)
        return result

    def serve_axon(self, host: str, port: int) -> None:
        raise NotImplementedError("a validator never serves an axon")
