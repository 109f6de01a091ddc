"""The `seedgrid` command (the console script `seedgrid = app.cli:main`).

core.py: set-up, models, generation, GPU workers, Redis, the demo.
network.py: wallets, the local chain, the miner API, the validator's roles, `seedgrid up`.
gateway.py: the organic job API, its keys, and `seedgrid submit`.
llm.py: the development text server and its dev models.
"""

from app.cli import gateway, llm, network  # noqa: F401  (register their commands on main)
from app.cli.core import main

__all__ = ["main"]
