"""Wallets: bittensor 11's own Wallet class and keyfile layout, created offline."""

from __future__ import annotations

from pathlib import Path

from app.chain.base import ChainError


def load_wallet(path: Path, name: str, hotkey: str):
    """An existing wallet whose hotkey can sign; a clear error when its files are missing."""
    import bittensor as bt

    wallet = bt.Wallet(name, hotkey, path=str(path))
    if not Path(wallet.hotkey_file.path).exists():
        raise ChainError(f"no hotkey {hotkey!r} in wallet {name!r} under {path}; "
                         f"create it with `seedgrid wallet create --name {name} --hotkey {hotkey}`")
    return wallet


def create_wallet(path: Path, name: str, hotkey: str):
    """Create the coldkey (if the wallet has none) and the hotkey, unencrypted: for local networks.

    Returns (wallet, created) where created says whether a new hotkey was written.
    """
    import bittensor as bt

    for label, value in (("name", name), ("hotkey", hotkey)):
        if not value or "/" in value or value.startswith("."):
            raise ChainError(f"wallet {label} {value!r} must be a plain name (no '/', not starting with '.')")
    wallet = bt.Wallet(name, hotkey, path=str(path))
    if not Path(wallet.coldkeypub_file.path).exists():
        wallet.create_new_coldkey(use_password=False, suppress=True)
    if Path(wallet.hotkey_file.path).exists():
        return wallet, False
    wallet.create_new_hotkey(use_password=False, suppress=True)
    return wallet, True


def addresses(wallet) -> tuple[str, str]:
    """(hotkey ss58, coldkey ss58) without unlocking the coldkey."""
    return wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address
