"""An in-memory fake of bittensor 11's `Substrate` protocol (the chain RPC), for tests only.

The live chain cannot be reached from here, so BittensorChain's tests pass this object as
`substrate=` and the real SDK (its reads, intents, conforming and quantizing, executor)
runs against it. It implements the calls those paths make, answers with the shapes the
runtime would, and records every submitted extrinsic for the tests to inspect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass
class FakeNeuron:
    hotkey: str
    coldkey: str
    stake_rao: int = 0
    permit: bool = False
    axon: tuple[int, int, int] | None = None  # (ip as int, port, ip_type)
    last_update: int = 0


@dataclass
class Submitted:
    module: str
    function: str
    params: dict
    signer: str
    block: int


@dataclass
class FakeSubstrate:
    netuid: int = 1
    block: int = 1000
    neurons: list[FakeNeuron] = field(default_factory=list)
    hyperparams: dict = field(default_factory=lambda: {
        "CommitRevealWeightsEnabled": False, "WeightsSetRateLimit": 100, "MinAllowedWeights": 1,
        "MaxWeightsLimit": 65535, "SubnetEpochConsensus": "Yuma", "Tempo": 360,
    })
    submitted: list[Submitted] = field(default_factory=list)
    token_symbols: dict = field(default_factory=dict)
    calls_seen: list[str] = field(default_factory=list)

    # -- display / lifecycle -----------------------------------------------------------
    def balance(self, rao: int, netuid: int = 0):
        from bittensor import Balance

        return Balance.from_rao(int(rao), netuid)

    async def connect(self) -> None:
        self.calls_seen.append("connect")

    async def close(self) -> None:
        self.calls_seen.append("close")

    # -- blocks ---------------------------------------------------------------------------
    async def block_hash(self, block: Optional[int] = None) -> str:
        return "0x%064x" % (self.block if block is None else block)

    async def block_number(self) -> int:
        return self.block

    async def finalized_block_number(self) -> int:
        return self.block

    async def block_time(self) -> float:
        return 12.0

    async def spec_version(self) -> int:
        return 400

    # -- reads ----------------------------------------------------------------------------
    def _uid(self, hotkey: str) -> Optional[int]:
        return next((i for i, n in enumerate(self.neurons) if n.hotkey == hotkey), None)

    async def query(self, module: str, storage: str, params: Optional[list] = None, block_hash=None, **kw) -> Any:
        self.calls_seen.append(f"query {module}.{storage}")
        params = params or []
        if storage == "Uids":
            return self._uid(params[1])
        if storage == "LastUpdate":
            return [n.last_update for n in self.neurons]
        if storage == "ValidatorPermit":
            return [n.permit for n in self.neurons]
        if storage in self.hyperparams:
            return self.hyperparams[storage]
        return None

    async def query_map(self, module: str, storage: str, params: Optional[list] = None, block_hash=None, **kw):
        self.calls_seen.append(f"query_map {module}.{storage}")
        return []

    async def runtime_call(self, api: str, method: str, params: Optional[list] = None, block_hash=None, **kw) -> Any:
        self.calls_seen.append(f"runtime {api}.{method}")
        if method == "get_metagraph":
            if params and int(params[0]) != self.netuid:
                return None
            n = self.neurons
            return {
                "netuid": self.netuid, "name": "seedgrid", "symbol": "s", "block": self.block, "tempo": 360,
                "last_step": self.block - 10, "blocks_since_last_step": 10, "owner_hotkey": n[0].hotkey if n else "",
                "owner_coldkey": n[0].coldkey if n else "", "network_registered_at": 1, "num_uids": len(n),
                "max_uids": 256, "hotkeys": [x.hotkey for x in n], "coldkeys": [x.coldkey for x in n],
                "active": [True] * len(n), "validator_permit": [x.permit for x in n],
                "last_update": [x.last_update for x in n], "block_at_registration": [1] * len(n),
                "axons": [{"ip": x.axon[0], "port": x.axon[1], "ip_type": x.axon[2]} if x.axon else
                          {"ip": 0, "port": 0, "ip_type": 0} for x in n],
                "total_stake": [x.stake_rao for x in n], "alpha_stake": [x.stake_rao for x in n],
                "tao_stake": [0] * len(n),
            }
        return None

    async def constant(self, module: str, name: str) -> Any:
        return None

    # -- writes ---------------------------------------------------------------------------
    async def compose(self, call) -> Any:
        return call

    async def estimate_fee(self, call, keypair):
        from bittensor import Balance

        return Balance.from_rao(1000)

    async def account_next_index(self, address: str) -> int:
        return len(self.submitted)

    async def mev_next_key(self):
        return None

    async def submit(self, call, keypair, **kw):
        from bittensor import ExtrinsicResult

        module, function, params = _call_parts(call)
        signer = keypair.ss58_address
        self.submitted.append(Submitted(module, function, dict(params), signer, self.block))
        uid = self._uid(signer)
        if function == "serve_axon" and uid is not None:
            self.neurons[uid].axon = (params["ip"], params["port"], params["ip_type"])
        if function in ("set_weights", "set_mechanism_weights") and uid is not None:
            self.neurons[uid].last_update = self.block
        return ExtrinsicResult(success=True, message="included", block_hash=await self.block_hash(),
                               extrinsic_id=f"{self.block}-{len(self.submitted)}")


def _call_parts(call) -> tuple[str, str, dict]:
    """(module, function, params) of a generated call, whatever its container shape."""
    for names in (("call_module", "call_function", "call_args"), ("module", "function", "params")):
        if all(hasattr(call, n) for n in names):
            return tuple(getattr(call, n) for n in names)  # type: ignore[return-value]
    if isinstance(call, (tuple, list)) and len(call) == 3:
        return call[0], call[1], call[2]
    if isinstance(call, dict):
        return call.get("call_module"), call.get("call_function"), call.get("call_args", {})
    raise TypeError(f"unrecognised call shape {type(call).__name__}: {call!r}")
