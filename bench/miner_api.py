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
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.setdefault("SEEDGRID_TOTAL_VOLUME", "1000000")  # the bench measures speed, not quotas
os.environ.setdefault("SEEDGRID_MAX_CONCURRENT_REQUESTS", "64")
os.environ.setdefault("SEEDGRID_NETUID", "91")  # its own subnet: `seedgrid up` owns the default one

from bench._miner import miner_under_test  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--burst", type=int, default=40, help="requests per throughput run")
    args = parser.parse_args()

    from app.progress import steps
    from app.protocol.client import MinerClient
    from app.tasks.generation import enqueue

    with miner_under_test("bench") as m:
        url, hotkey, client = m.url, m.hotkey, MinerClient(m.validator, timeout=60)

        def request(i: int) -> dict:
            return {"model": "RealisticVision", "prompt": "a lighthouse at dusk", "seed": i,
                    "params": {"steps": 1, "width": 256, "height": 256}}

        def direct(i: int) -> None:
            enqueue(request(i)).get(timeout=60)

        def api(i: int) -> None:
            client.generate(url, hotkey, request(i))

        with steps(args.rounds + 5, f"{args.rounds + 3} rounds and 2 bursts timed") as step:
            direct_ms, api_ms = [], []
            for i in range(args.rounds + 3):  # three warm-up rounds
                step(f"round {i - 2} of {args.rounds}" if i >= 3 else "warm-up")
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

            step(f"{args.burst} requests straight to the queue")
            direct_rps = burst(direct)
            step(f"{args.burst} requests through the API")
            api_rps = burst(api)
        d, a = statistics.median(direct_ms), statistics.median(api_ms)
        print(f"RealisticVision dev checkpoint, 256x256, 1 step; {args.rounds} sequential rounds; "
              f"{args.burst} requests at concurrency {args.concurrency}; one GPU worker; broker {m.broker}")
        print(f"latency   direct queue median {d:7.1f} ms | API median {a:7.1f} ms | "
              f"added {a - d:6.1f} ms (ratio {a / d:.2f})")
        print(f"throughput direct queue {direct_rps:6.1f} req/s | API {api_rps:6.1f} req/s | "
              f"ratio {api_rps / direct_rps:.2f}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
