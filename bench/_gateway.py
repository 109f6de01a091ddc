"""A gateway under test for the benches: the miner of bench/_miner.py (plus `extra_miners` more
miner APIs on its GPU worker), the validator's I/O worker, `seedgrid gateway serve`, an API key,
and the miners known to the validator (as a sync would record them).

    with gateway_under_test("bench", extra_miners=2) as g:   # g.url, g.key, g.miner, g.miners
        ...
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The benches send thousands of jobs: a tier whose request limit does not run out within a
# run (or every job after it would get the documented 503 no_capacity). Set before any
# settings are read.
os.environ.setdefault("SEEDGRID_TIER_TABLE", json.dumps([
    {"name": "Bronze", "request_success": 0, "validation_success": 0, "min_successes": 0, "reward_factor": 0.45,
     "request_limit": 1_000_000}]))

from bench._miner import MinerUnderTest, miner_under_test, pinned_process, wait_healthy  # noqa: E402


@dataclass
class GatewayUnderTest:
    url: str
    key: str
    miner: MinerUnderTest
    miners: list[dict]  # {"url", "hotkey", "process" (None for the first)} of every miner API
    services: dict[str, subprocess.Popen]  # the validator's side: "io" (its I/O worker) and "gateway"


@contextmanager
def gateway_under_test(name: str, extra_miners: int = 0, miner_cpus: set[int] | None = None,
                       validator_cpus: set[int] | None = None) -> Iterator[GatewayUnderTest]:
    """`miner_cpus`, `validator_cpus`: the cores every miner process, and the I/O worker and the gateway,
    run on, as on hosts of their own (see miner_process); this machine's, shared, when None."""
    import redis as redis_lib
    from sqlalchemy import select

    from app.chain.local import LocalChain
    from app.chain.wallets import create_wallet
    from app.config import get_settings
    from app.db import session_scope
    from app.gateway.keys import create_key
    from app.local_network import free_port
    from app.models import ApiKey
    from app.validator import records

    settings = get_settings()
    with miner_under_test(name, cpus=miner_cpus) as m:
        env = {**os.environ, "SEEDGRID_VALIDATOR_WALLET": name, "SEEDGRID_VALIDATOR_HOTKEY": "validator",
               "SEEDGRID_REDIS_URL": m.broker}
        seedgrid = str(Path(sys.executable).parent / "seedgrid")
        miners = [{"url": m.url, "hotkey": m.hotkey, "process": None}]
        chain = LocalChain(settings.sqlalchemy_url, settings.netuid)
        for i in range(extra_miners):
            w, _ = create_wallet(settings.wallets_dir, name, f"miner{i + 2}")
            chain.register(w.hotkey.ss58_address, w.coldkeypub.ss58_address)
            port = free_port()
            proc = pinned_process([seedgrid, "miner", "serve", "--model", "RealisticVision", "--wallet", name,
                                  "--hotkey", f"miner{i + 2}", "--port", str(port), "--no-announce"], miner_cpus)
            miners.append({"url": f"http://127.0.0.1:{port}", "hotkey": w.hotkey.ss58_address, "process": proc})
        with session_scope(settings.sqlalchemy_url) as s:
            for i, miner in enumerate(miners):
                records.upsert_miner(s, hotkey=miner["hotkey"], uid=i, default_tier="Bronze", model="RealisticVision",
                                     axon=miner["url"].split("//", 1)[1], reachable=True, quota=1_000_000,
                                     score=0.3, total_successes=10)
            records.forget_deregistered(s, {miner["hotkey"] for miner in miners})  # an earlier run's miners
            for key in s.scalars(select(ApiKey).where(ApiKey.name == f"{name}-bench")):
                key.name = f"{name}-bench-{key.id}"
            s.flush()
            _, key = create_key(s, name=f"{name}-bench", rate_per_minute=1_000_000, daily_quota=100_000_000)
        for k in redis_lib.Redis.from_url(m.broker).scan_iter("seedgrid:validator:sent:*"):
            redis_lib.Redis.from_url(m.broker).delete(k)
        port = free_port()
        services = {
            "io": pinned_process([seedgrid, "worker", "io", "--name", f"{name}-io", "--loglevel", "WARNING"],
                                validator_cpus, env=env),
            "gateway": pinned_process([seedgrid, "gateway", "serve", "--port", str(port)], validator_cpus, env=env)}
        procs = [m["process"] for m in miners[1:]] + list(services.values())
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            for target in [url] + [mm["url"] for mm in miners[1:]]:
                wait_healthy(target, deadline, "the bench gateway or a miner API")
            yield GatewayUnderTest(url, key, m, miners, services)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:  # a worker still in a long attempt
                    p.kill()
                    p.wait()
