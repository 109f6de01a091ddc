"""Chains: the interface (base.py), LocalChain (local.py), BittensorChain (bittensor_chain.py)."""

from __future__ import annotations

from app.chain.base import Chain, ChainError, Neuron, WeightsResult


def open_chain(settings, *, wallet=None, hotkey: str | None = None) -> Chain:
    """The chain the settings name, bound to `wallet` (or, for LocalChain, a bare hotkey address)."""
    if settings.chain == "local":
        from app.chain.local import LocalChain

        if hotkey is None and wallet is not None:
            hotkey = wallet.hotkey.ss58_address
        return LocalChain(settings.sqlalchemy_url, settings.netuid, hotkey=hotkey)
    from app.chain.bittensor_chain import BittensorChain

    return BittensorChain(settings.chain, settings.netuid, wallet=wallet)


__all__ = ["Chain", "ChainError", "Neuron", "WeightsResult", "open_chain"]
