"""LocalChain: a Bittensor-like chain kept in the database, for local networks and tests.

Every process sharing the database sees the same subnet, neurons, stakes and weights.
Blocks come from a clock: block = (now - genesis) // block_time, with genesis and block
time stored at `init`, so all processes agree without a coordinator.
"""

from __future__ import annotations

import time
from typing import Mapping, Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.chain.base import ChainError, Neuron, WeightsResult, permits, quantize_u16
from app.db import session_scope
from app.models import ChainNeuron, ChainSubnet, ChainWeightSet

MAX_UIDS = 256  # Bittensor's per-subnet neuron limit


class LocalChain:
    def __init__(self, database_url: str, netuid: int = 1, hotkey: str | None = None):
        self.url = database_url
        self.netuid = netuid
        self.hotkey = hotkey  # the identity that sets weights and serves an axon

    # -- administration (LocalChain only) -------------------------------------------
    def init(self, *, block_time: float = 12.0, max_uids: int = MAX_UIDS) -> bool:
        """Create the subnet; False when it exists already (its clock is kept)."""
        if not 0 < block_time <= 3600:
            raise ChainError(f"block_time must be between 0 and 3600 seconds, got {block_time}")
        with session_scope(self.url) as s:
            if s.get(ChainSubnet, self.netuid):
                return False
            s.add(ChainSubnet(netuid=self.netuid, genesis_unix=time.time(), block_time=block_time, max_uids=max_uids))
        return True

    def _subnet(self, s) -> ChainSubnet:
        subnet = s.get(ChainSubnet, self.netuid)
        if subnet is None:
            raise ChainError(f"local subnet {self.netuid} does not exist; run `SEEDGRID_NETUID={self.netuid} seedgrid chain init`")
        return subnet

    def register(self, hotkey: str, coldkey: str) -> int:
        """Register a hotkey; return its uid (the same uid if it is registered already)."""
        for _ in range(5):  # two processes may race for the same free uid
            try:
                with session_scope(self.url) as s:
                    subnet = self._subnet(s)
                    existing = s.scalar(select(ChainNeuron).where(ChainNeuron.netuid == self.netuid,
                                                                 ChainNeuron.hotkey == hotkey))
                    if existing:
                        return existing.uid
                    used = set(s.scalars(select(ChainNeuron.uid).where(ChainNeuron.netuid == self.netuid)))
                    free = next((u for u in range(subnet.max_uids) if u not in used), None)
                    if free is None:
                        raise ChainError(f"subnet {self.netuid} is full ({subnet.max_uids} uids)")
                    block = self._block_of(subnet)
                    s.add(ChainNeuron(netuid=self.netuid, uid=free, hotkey=hotkey, coldkey=coldkey, stake=0.0,
                                      registered_block=block, last_update=block))
                    return free
            except IntegrityError:
                continue
        raise ChainError(f"could not register {hotkey}: uids kept being taken concurrently; try again")

    def set_stake(self, hotkey: str, stake: float) -> None:
        if stake < 0:
            raise ChainError(f"stake must be >= 0, got {stake}")
        with session_scope(self.url) as s:
            self._neuron(s, hotkey).stake = float(stake)

    def withdraw_axon(self, hotkey: str) -> None:
        """Clear a hotkey's announced address (its server stopped): nobody is sent to a dead port."""
        with session_scope(self.url) as s:
            n = self._neuron(s, hotkey)
            n.axon_host, n.axon_port = None, None

    def _neuron(self, s, hotkey: str) -> ChainNeuron:
        neuron = s.scalar(select(ChainNeuron).where(ChainNeuron.netuid == self.netuid, ChainNeuron.hotkey == hotkey))
        if neuron is None:
            raise ChainError(f"hotkey {hotkey} is not registered on local subnet {self.netuid}; "
                             f"run `seedgrid chain register`")
        return neuron

    def weight_sets(self, hotkey: str | None = None) -> list[WeightsResult]:
        with session_scope(self.url, read_only=True) as s:
            q = select(ChainWeightSet).where(ChainWeightSet.netuid == self.netuid).order_by(ChainWeightSet.id)
            if hotkey:
                q = q.where(ChainWeightSet.hotkey == hotkey)
            return [WeightsResult(r.block, {int(k): v for k, v in r.weights.items()}, r.version_key) for r in s.scalars(q)]

    # -- the Chain interface --------------------------------------------------------
    @staticmethod
    def _block_of(subnet: ChainSubnet) -> int:
        return int(max(0.0, time.time() - subnet.genesis_unix) // subnet.block_time)

    def block(self) -> int:
        with session_scope(self.url, read_only=True) as s:
            return self._block_of(self._subnet(s))

    def block_time(self) -> float:
        with session_scope(self.url, read_only=True) as s:
            return self._subnet(s).block_time

    def metagraph(self) -> Sequence[Neuron]:
        with session_scope(self.url, read_only=True) as s:
            self._subnet(s)
            rows = list(s.scalars(select(ChainNeuron).where(ChainNeuron.netuid == self.netuid,
                                                            ChainNeuron.active.is_(True)).order_by(ChainNeuron.uid)))
            permitted = permits([(r.uid, r.stake) for r in rows])
            return [Neuron(uid=r.uid, hotkey=r.hotkey, coldkey=r.coldkey, stake=r.stake,
                           validator_permit=r.uid in permitted,
                           axon=f"{r.axon_host}:{r.axon_port}" if r.axon_host and r.axon_port else None,
                           last_update=r.last_update) for r in rows]

    def _identity(self) -> str:
        if not self.hotkey:
            raise ChainError("this LocalChain has no hotkey bound; construct it with hotkey=")
        return self.hotkey

    def set_weights(self, weights: Mapping[int, float], *, version_key: int) -> WeightsResult:
        hotkey = self._identity()
        with session_scope(self.url) as s:
            subnet = self._subnet(s)
            me = self._neuron(s, hotkey)
            known = set(s.scalars(select(ChainNeuron.uid).where(ChainNeuron.netuid == self.netuid)))
            unknown = sorted(set(int(u) for u in weights) - known)
            if unknown:
                raise ChainError(f"weights name uids that are not registered: {unknown}")
            block = self._block_of(subnet)
            stored = quantize_u16(weights)
            s.add(ChainWeightSet(netuid=self.netuid, hotkey=hotkey, block=block,
                                 weights={str(k): v for k, v in stored.items()}, version_key=version_key))
            me.last_update = block
        return WeightsResult(block, stored, version_key)

    def serve_axon(self, host: str, port: int) -> None:
        if not 0 < port < 65536:
            raise ChainError(f"port must be between 1 and 65535, got {port}")
        with session_scope(self.url) as s:
            n = self._neuron(s, self._identity())
            n.axon_host, n.axon_port = host, port

    def count(self) -> int:
        with session_scope(self.url, read_only=True) as s:
            return s.scalar(select(func.count()).select_from(ChainNeuron).where(ChainNeuron.netuid == self.netuid)) or 0
