"""Miner API throughput and the latency it adds over a direct queue call, in one run.

Sets up the LocalChain (a miner and a 1M-stake validator), one real GPU worker and one
`seedgrid miner serve` process, then for the same tiny request measures, alternating:
- direct: enqueue -> GPU worker -> result (what the API does inside), and
- API: signed POST /v1/generate -> auth, blacklist, quota, slot -> the same queue -> base64 reply.
Then both again with several concurrent callers, for requests per second.
Run: .venv/bin/python bench/miner_api.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.setdefault("SEEDGRID_TOTAL_VOLUME", "1000000")  # the bench measures speed, not quotas
os.environ.setdefault("SEEDGRID_MAX_CONCURRENT_REQUESTS", "64")
os.environ.setdefault("SEEDGRID_NETUID", "91")  # its own subnet: `seedgrid up` owns the default one

from app.bootstrap import prepare_database, prepare_redis  # noqa: E402
from app.chain.local import LocalChain  # noqa: E402
from app.chain.wallets import create_wallet  # noqa: E402
from app.local_network import free_port  # noqa: E402
from app.settings import get_settings  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--burst", type=int, default=40, help="requests per throughput run")
    args = parser.parse_args()

    settings = get_settings()
    redis = prepare_redis(settings)
    prepare_database(settings)
    chain = LocalChain(settings.sqlalchemy_url, settings.netuid)
    chain.init(block_time=settings.local_block_time)
    miner, _ = create_wallet(settings.wallets_dir, "bench", "miner")
    validator, _ = create_wallet(settings.wallets_dir, "bench", "validator")
    for w, stake in ((miner, 0.0), (validator, 1_000_000.0)):
        chain.register(w.hotkey.ss58_address, w.coldkeypub.ss58_address)
        chain.set_stake(w.hotkey.ss58_address, stake)

    from app.celery_app import celery_app
    from app.net.client import MinerClient
    from app.tasks.generation import enqueue

    port = free_port()
    seedgrid = str(Path(sys.executable).parent / "seedgrid")
    procs = [
        subprocess.Popen([seedgrid, "worker", "gpu", "--model", "RealisticVision", "--name", "bench-gpu",
                          "--loglevel", "WARNING"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([seedgrid, "miner", "serve", "--model", "RealisticVision", "--wallet", "bench", "--hotkey",
                          "miner", "--port", str(port), "--no-announce"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL),
    ]
    url, hotkey = f"http://127.0.0.1:{port}", miner.hotkey.ss58_address
    client = MinerClient(validator, timeout=60)
    try:
        deadline = time.monotonic() + 120
        while not celery_app.control.ping(timeout=0.5):
            if time.monotonic() > deadline:
                print("the bench GPU worker did not start")
                return 1
        while True:
            try:
                client.request("GET", url, "/healthz", hotkey)
                break
            except Exception:
                if time.monotonic() > deadline:
                    print("the bench miner API did not start")
                    return 1
                time.sleep(0.1)

        def request(i: int) -> dict:
            return {"model": "RealisticVision", "prompt": "a lighthouse at dusk", "seed": i,
                    "params": {"steps": 1, "width": 256, "height": 256}}

        def direct(i: int) -> None:
            enqueue(request(i)).get(timeout=60)

        def api(i: int) -> None:
            client.generate(url, hotkey, request(i))

        direct_ms, api_ms = [], []
        for i in range(args.rounds + 3):  # three warm-up rounds
            t0 = time.perf_counter()
            direct(i)
            t1 = time.perf_counter()
            api(i)
            t2 = time.perf_counter()
            if i >= 3:
                direct_ms.append((t1 - t0) * 1000)
                api_ms.append((t2 - t1) * 1000)

        def burst(fn) -> float:
            t0 = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                list(pool.map(fn, range(1000, 1000 + args.burst)))
            return args.burst / (time.perf_counter() - t0)

        direct_rps, api_rps = burst(direct), burst(api)
        d, a = statistics.median(direct_ms), statistics.median(api_ms)
        print(f"RealisticVision dev checkpoint, 256x256, 1 step; {args.rounds} sequential rounds; "
              f"{args.burst} requests at concurrency {args.concurrency}; one GPU worker; broker {redis.url}")
        print(f"latency   direct queue median {d:7.1f} ms | API median {a:7.1f} ms | "
              f"added {a - d:6.1f} ms (ratio {a / d:.2f})")
        print(f"throughput direct queue {direct_rps:6.1f} req/s | API {api_rps:6.1f} req/s | "
              f"ratio {api_rps / direct_rps:.2f}")
        return 0
    finally:
        client.close()
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
        redis.stop()


if __name__ == "__main__":
    sys.exit(main())
