"""What the validator's service functions work with, passed to them explicitly.

`Validator` bundles the collaborators (settings, a session factory, the chain, Redis,
the miner client): the functions in rounds.py, judging.py and epochs.py take one and
reach nothing through module globals, so a test builds one on a scratch database and
calls them directly. `open_validator` builds the real one, once per process (the
tasks module keeps it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial

import redis

from app.chain import open_chain
from app.chain.base import Chain, ChainError
from app.chain.wallets import load_wallet
from app.db import Sessions, session_scope
from app.protocol.client import MinerClient
from app.scoring.tiers import TierTable, tier_table
from app.settings import Settings

RECENT_BLOCK_S = 6.0  # half a block: how stale Validator.recent_block may be


@dataclass
class Validator:
    settings: Settings
    sessions: Sessions  # one transaction per call; sessions(read_only=True) when it only reads
    chain: Chain
    redis: redis.Redis
    client: MinerClient
    hotkey: str  # this validator's ss58 address
    _block: tuple[float, int] | None = field(default=None, init=False, repr=False)  # (read at, block)

    @property
    def tiers(self) -> TierTable:
        return tier_table(self.settings.tier_table)

    def epoch_of(self, block: int) -> int:
        return block // self.settings.epoch_length

    def recent_block(self) -> int:
        """The chain's block, read again once RECENT_BLOCK_S have passed: organic jobs stamp their
        outcomes' epoch with it, and on a real chain each read is an RPC (a block is 12 s; an epoch,
        360 blocks, may see a job's outcome counted in the one before at its very edge)."""
        now = time.monotonic()
        if self._block is None or now - self._block[0] > RECENT_BLOCK_S:
            self._block = (now, self.chain.block())
        return self._block[1]



def validator_wallet(settings: Settings):
    """The validator's wallet; a ChainError that names the settings choosing it when it is not there."""
    try:
        return load_wallet(settings.wallets_dir, settings.validator_wallet, settings.validator_hotkey)
    except ChainError as exc:
        raise ChainError(f"{exc} (SEEDGRID_VALIDATOR_WALLET / SEEDGRID_VALIDATOR_HOTKEY)") from None


def open_validator(settings: Settings) -> Validator:
    """The validator's wallet, chain, Redis and client, from the settings."""
    wallet = validator_wallet(settings)
    return Validator(settings=settings, sessions=partial(session_scope, settings.sqlalchemy_url),
                     chain=open_chain(settings, wallet=wallet), redis=redis.Redis.from_url(settings.broker_url),
                     client=MinerClient(wallet), hotkey=wallet.hotkey.ss58_address)
