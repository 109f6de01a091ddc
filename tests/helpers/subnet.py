"""A test's own subnet on the LocalChain: wallets made, registered and staked."""

from app.chain.local import LocalChain
from app.chain.wallets import create_wallet


def new_subnet(settings, database, netuid: int, wallet: str, stakes: dict[str, int]) -> dict:
    """Create the subnet (0.5 s blocks) and one hotkey per name under `wallet`, registered with its
    stake; the bittensor wallets by name."""
    chain = LocalChain(database, netuid)
    chain.init(block_time=0.5)
    wallets = {}
    for name, stake in stakes.items():
        w, _ = create_wallet(settings.wallets_dir, wallet, name)
        wallets[name] = w
        chain.register(w.hotkey.ss58_address, w.coldkeypub.ss58_address)
        chain.set_stake(w.hotkey.ss58_address, stake)
    return wallets
