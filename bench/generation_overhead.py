"""Per-request overhead of the queue path over the in-process call, measured side by side.

Starts one real GPU worker process for a tiny model, then alternates the same small
request in-process (generate_and_record: the work a task does) and through the broker
and that worker (enqueue -> worker -> result), so both see the same machine load.
Prints medians, the overhead in ms and the ratio. Run: .venv/bin/python bench/generation_overhead.py
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.bootstrap import prepare_database, prepare_redis  # noqa: E402
from app.config import get_settings  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="RealisticVision")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()

    settings = get_settings()
    redis = prepare_redis(settings)
    prepare_database(settings)
    from app.celery_app import celery_app
    from app.generation.service import generate_and_record, get_engine
    from app.progress import steps
    from app.tasks.generation import enqueue

    worker = subprocess.Popen([sys.executable, "-m", "workers.gpu", "--model", args.model, "--name", "bench",
                               "--loglevel", "WARNING"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with steps(args.rounds + 3, f"{args.rounds + 2} rounds timed, in process and through the queue") as step:
            step("starting the bench's GPU worker")
            deadline = time.monotonic() + 120
            while not celery_app.control.ping(timeout=0.5):
                if worker.poll() is not None or time.monotonic() > deadline:
                    print("the bench worker did not start; run `seedgrid worker gpu --model X` to see why")
                    return 1
            get_engine(args.model, settings)  # load here too: neither path pays for loading
            direct, queued = [], []
            for i in range(args.rounds + 2):  # two warm-up rounds, not counted
                step(f"round {i - 1} of {args.rounds}" if i >= 2 else "warm-up")
                raw = {"model": args.model, "prompt": "a lighthouse at dusk", "seed": i,
                       "params": {"steps": args.steps, "width": args.size, "height": args.size}}
                t0 = time.perf_counter()
                generate_and_record(raw, settings=settings)
                t1 = time.perf_counter()
                enqueue(raw).get(timeout=120)
                t2 = time.perf_counter()
                if i >= 2:
                    direct.append((t1 - t0) * 1000)
                    queued.append((t2 - t1) * 1000)
        d, q = statistics.median(direct), statistics.median(queued)
        print(f"model {args.model}, {args.size}x{args.size}, {args.steps} steps, {args.rounds} rounds, "
              f"{settings.threads} threads, broker {redis.url}")
        print(f"in-process  median {d:8.1f} ms  (min {min(direct):.1f})")
        print(f"queue path  median {q:8.1f} ms  (min {min(queued):.1f})")
        print(f"overhead    {q - d:8.1f} ms per request; queue/in-process ratio {q / d:.3f}")
        return 0
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        redis.stop()


if __name__ == "__main__":
    sys.exit(main())
