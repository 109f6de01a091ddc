"""One miner under test for the benches: LocalChain keys, a real GPU worker and `seedgrid miner serve`.

    with miner_under_test("bench") as m:   # m.url, m.hotkey, m.validator (a 1M-stake wallet)
        ...
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The benches keep a database of their own in the state folder: the validator tables they
# fill (bench miners, keys, jobs) are not the local network's (`seedgrid up`).
BENCH_DATABASE = "sqlite:///" + str((Path(os.environ.get("SEEDGRID_STATE_DIR", ROOT / ".seedgrid")) / "bench.db").resolve())
os.environ.setdefault("SEEDGRID_DATABASE_URL", BENCH_DATABASE)


@dataclass
class MinerUnderTest:
    url: str
    hotkey: str
    validator: Any  # a wallet registered with 1M stake
    broker: str


@contextmanager
def miner_under_test(name: str, extra_callers: dict[str, float] | None = None,
                     cpus: set[int] | None = None) -> Iterator[MinerUnderTest]:
    """`cpus`: the cores the miner's processes run on (its GPU worker with as many torch threads), as on
    a host of its own; this machine's cores, shared with the caller, when None."""
    from app.celery_app import celery_app
    from app.local_network import free_port

    redis, miner, validator = subnet(name)
    port = free_port()
    seedgrid = str(Path(sys.executable).parent / "seedgrid")
    procs = [
        pinned_process([seedgrid, "worker", "gpu", "--model", "RealisticVision", "--name", f"{name}-gpu",
                       "--loglevel", "WARNING"], cpus),
        pinned_process([seedgrid, "miner", "serve", "--model", "RealisticVision", "--wallet", name, "--hotkey",
                       "miner", "--port", str(port), "--no-announce"], cpus),
    ]
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not celery_app.control.ping(timeout=0.5):
            if time.monotonic() > deadline:
                raise SystemExit("the bench GPU worker did not start")
        wait_healthy(url, deadline, "the bench miner API")
        yield MinerUnderTest(url, miner.hotkey.ss58_address, validator, redis.url)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
        redis.stop()


def subnet(name: str):
    """Redis, the bench database migrated, the local chain, and a miner and a 1M-stake validator
    registered under wallet `name`: (the Redis handle, the miner's wallet, the validator's)."""
    from app.bootstrap import prepare_database, prepare_redis
    from app.chain.local import LocalChain
    from app.chain.wallets import create_wallet
    from app.config import get_settings

    settings = get_settings()
    redis = prepare_redis(settings)
    if settings.database_url == BENCH_DATABASE:  # ours: migrate it as `seedgrid db upgrade` would
        from app import migrations

        migrations.upgrade(settings.sqlalchemy_url)
    prepare_database(settings)
    chain = LocalChain(settings.sqlalchemy_url, settings.netuid)
    chain.init(block_time=settings.local_block_time)
    miner, _ = create_wallet(settings.wallets_dir, name, "miner")
    validator, _ = create_wallet(settings.wallets_dir, name, "validator")
    for w, stake in ((miner, 0.0), (validator, 1_000_000.0)):
        chain.register(w.hotkey.ss58_address, w.coldkeypub.ss58_address)
        chain.set_stake(w.hotkey.ss58_address, stake)
    return redis, miner, validator


def pinned_process(argv: list[str], cpus: set[int] | None, env: dict | None = None) -> subprocess.Popen:
    """A service of the bench, on `cpus` only when given (its threads and children inherit them; a
    GPU worker then runs as many torch threads: more would wait on each other on too few cores)."""
    env = dict(os.environ if env is None else env)
    if cpus is None:
        return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return subprocess.Popen(argv, env={**env, "SEEDGRID_THREADS": str(len(cpus))}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=lambda: os.sched_setaffinity(0, cpus))


def wait_healthy(url: str, deadline: float, what: str) -> None:
    """Until `url`/healthz answers 200; SystemExit naming `what` once time.monotonic() passes `deadline`."""
    import httpx

    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} at {url} did not start")
        time.sleep(0.1)
