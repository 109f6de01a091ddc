"""BittensorChain: the Chain interface on the bittensor 11 SDK.

Reads go through `SyncClient.subnets.metagraph`; writes through the SDK's intents
(`SetWeights`, which clips, u16-quantizes and picks plaintext or commit-reveal itself,
and `ServeAxon`), executed with the bound wallet. `substrate=` lets tests drive the real
SDK path against an in-memory chain.
"""

from __future__ import annotations

import logging
from typing import Mapping, Sequence

from app.chain.base import ChainError, Neuron, WeightsResult, quantize_u16

log = logging.getLogger(__name__)


class BittensorChain:
    def __init__(self, network: str, netuid: int, *, wallet=None, substrate=None):
        import bittensor as bt

        self.network = network
        self.netuid = netuid
        self.wallet = wallet
        self.client = bt.SyncClient(network, substrate=substrate)

    def close(self) -> None:
        self.client.close()

    def _wallet(self):
        if self.wallet is None:
            raise ChainError("this BittensorChain has no wallet bound; pass wallet= (SEEDGRID wallet settings)")
        return self.wallet

    def block(self) -> int:
        try:
            return int(self.client.block)
        except Exception as exc:
            raise ChainError(f"could not read the block from {self.network}: {exc}") from exc

    def metagraph(self) -> Sequence[Neuron]:
        try:
            graph = self.client.subnets.metagraph(self.netuid, commitments=False)
        except Exception as exc:
            raise ChainError(f"could not read subnet {self.netuid}'s metagraph from {self.network}: {exc}") from exc
        if graph is None:
            raise ChainError(f"subnet {self.netuid} does not exist on {self.network}")
        return [
            Neuron(uid=n.uid, hotkey=n.hotkey, coldkey=n.coldkey, stake=float(n.total_stake.alpha),
                   validator_permit=n.validator_permit, axon=n.axon, last_update=n.last_update)
            for n in graph.neurons
        ]

    def _execute(self, intent, what: str):
        import bittensor as bt

        try:
            result = self.client.execute(intent, self._wallet())
        except bt.BittensorError as exc:
            raise ChainError(f"{what} on {self.network} failed: {exc}") from exc
        if not result.success:
            raise ChainError(f"{what} on {self.network} was not included: {result.message or result.error}")
        return result

    def set_weights(self, weights: Mapping[int, float], *, version_key: int) -> WeightsResult:
        import bittensor as bt

        positive = {int(u): float(w) for u, w in weights.items() if w > 0}
        if not positive:
            raise ChainError("all weights are zero; nothing to set")
        self._execute(bt.SetWeights(netuid=self.netuid, weights=positive, version_key=version_key), "set_weights")
        return WeightsResult(block=self.block(), weights=quantize_u16(positive), version_key=version_key)

    def serve_axon(self, host: str, port: int) -> None:
        import bittensor as bt

        self._execute(bt.ServeAxon(netuid=self.netuid, ip=host, port=port), "serve_axon")
