"""The local network's throughput and the grid's overhead over bare generation, in one run.

Runs `seedgrid up` (honest miners for an SD1.5, an SDXL and the video type, the tiny dev
checkpoints, a fresh state folder) for --duration seconds, then, in the same run, times
the bare in-process generation of each model type's local challenge. Prints challenges
verified per minute and, per model type, the end-to-end time of a challenge (created ->
every answer verified: queueing, signed HTTP, the miner's generation, the validator's
reproduction and verification) against one bare generation.
Run: .venv/bin/python bench/network.py [--duration 120]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=120)
    args = parser.parse_args()
    from app.backends.registry import SERVED_MODELS
    from app.local_network import free_port
    from app.local_plan import LOCAL_CHALLENGES

    state = Path(tempfile.mkdtemp(prefix="seedgrid-bench-network-"))
    dev = ROOT / ".seedgrid" / "checkpoints" / "dev"
    env = {**os.environ, "SEEDGRID_STATE_DIR": str(state), "SEEDGRID_EMBEDDED_REDIS_PORT": str(free_port()),
           # the same torch thread count as the network's processes, so the bare generation compares
           "SEEDGRID_THREADS": os.environ.get("SEEDGRID_THREADS", "1"),
           "SEEDGRID_MODEL_PATHS": json.dumps({m: str(dev / m) for m in SERVED_MODELS})}
    env.pop("SEEDGRID_REDIS_URL", None)
    env.pop("SEEDGRID_DATABASE_URL", None)
    cmd = [str(Path(sys.executable).parent / "seedgrid"), "up", "--duration", str(args.duration), "--cheaters", "",
           "--dashboard-port", str(free_port()), "--flower-port", str(free_port()), "--gateway-port", str(free_port()), "--miner-port", str(free_port())]
    from app.progress import steps

    with steps(1, f"the local network ran for {args.duration:.0f} s in {state}") as step:
        step(f"running the local network for {args.duration:.0f} s in {state}")
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:])
        return 1

    os.environ.update({k: v for k, v in env.items() if k.startswith("SEEDGRID_")})
    from sqlalchemy import select

    from app.config import get_settings
    from app.db import session_scope
    from app.generation.service import get_engine
    from app.models import Challenge, Response
    from app.protocol.request import parse_request

    settings = get_settings()
    per_model: dict[str, list[float]] = {}
    verified = []
    with session_scope(settings.sqlalchemy_url) as s:
        for c in s.scalars(select(Challenge).where(Challenge.status == "reproduced")):
            rs = list(s.scalars(select(Response).where(Response.challenge_id == c.id)))
            done = [r.verified_at for r in rs if r.verdict_rung in ("exact", "tolerant")]
            if done and len(done) == len(rs):
                per_model.setdefault(c.model, []).append((max(done) - c.created_at).total_seconds())
                verified.extend(done)
    if not verified:
        print("no challenge was verified; see the logs in", state / "logs")
        return 1
    span = (max(verified) - min(verified)).total_seconds() or 1.0
    print(f"challenges verified: {len(verified)} responses over {span:.0f} s = {len(verified) / span * 60:.1f} per minute "
          f"({len(per_model)} model types, {settings.threads} torch thread(s) per process, 2-core CPU)")
    print(f"{'model':16} {'challenges':>10} {'end-to-end median':>18} {'bare generation':>16} {'overhead':>10} {'ratio':>7}")
    for model, times in sorted(per_model.items()):  # a few seconds each
        req = parse_request({"model": model, "prompt": "a lighthouse at dusk", "seed": 1,
                             "params": LOCAL_CHALLENGES[model]})
        engine = get_engine(model, settings)
        engine.generate(req)  # warm-up
        bare = statistics.median([_timed(engine.generate, req) for _ in range(5)])
        e2e = statistics.median(times)
        print(f"{model:16} {len(times):>10} {e2e * 1000:>15.0f} ms {bare * 1000:>13.0f} ms "
              f"{(e2e - bare) * 1000:>7.0f} ms {e2e / bare:>7.1f}")
    return 0


def _timed(fn, *a) -> float:
    t0 = time.perf_counter()
    fn(*a)
    return time.perf_counter() - t0


if __name__ == "__main__":
    sys.exit(main())
