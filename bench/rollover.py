"""Rollover and weight computation for 256 miners with 1,000,000 recorded outcomes.

Both read miner_states only (interval counters and EMA kept current as outcomes are
recorded), so their cost does not grow with history. The baseline, measured in the same
run, is what a scan of the outcomes would cost: the same per-miner interval statistics
computed with a GROUP BY over the outcomes table.
Run: .venv/bin/python bench/rollover.py [--miners 256] [--outcomes 1000000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import case, func, insert, select  # noqa: E402

from app import migrations  # noqa: E402
from app.backends.registry import SERVED_MODELS  # noqa: E402
from app.db import make_engine, session_scope  # noqa: E402
from app.models import Challenge, MinerState, Outcome, Response  # noqa: E402
from app.protocol.catalogue import CATALOGUE  # noqa: E402
from app.scoring.tiers import TierTable  # noqa: E402
from app.validator.records import plan_weights, rollover  # noqa: E402

BATCH = 50_000  # outcomes written per insert


def populate(url: str, miners: int, outcomes: int, step=lambda what: None) -> None:
    rng = random.Random(7)
    engine = make_engine(url)
    hotkeys = [f"5Miner{i:04d}" for i in range(miners)]
    with engine.begin() as conn:
        conn.execute(insert(MinerState), [dict(
            hotkey=hk, uid=i, model=SERVED_MODELS[i % len(SERVED_MODELS)], axon=f"10.0.0.{i % 250}:8091",
            reachable=True, total_volume=rng.choice([40, 300, 1000]), quota=10, limit_interval=600, tier="Bronze",
            challenger_return=False, score=rng.random(), total_successes=rng.randrange(10_000),
            interval_attempts=100, interval_request_successes=rng.randrange(90, 101),
            interval_verified=rng.randrange(85, 95), interval_failed=rng.randrange(0, 5), last_weight=0.0,
        ) for i, hk in enumerate(hotkeys)])
        # one challenge per round of all miners (a response is unique per challenge and miner)
        conn.execute(insert(Challenge), [dict(id=f"c{k}", model="RealisticVision", kind="challenge", request={},
                                              block=k, status="reproduced")
                                         for k in range((outcomes + miners - 1) // miners)])
        for start in range(0, outcomes, BATCH):
            step(f"outcomes {start + 1:,} to {min(start + BATCH, outcomes):,}")
            n = min(BATCH, outcomes - start)
            conn.execute(insert(Response), [dict(id=start + j + 1, challenge_id=f"c{(start + j) // miners}",
                                                 hotkey=hotkeys[(start + j) % miners],
                                                 uid=(start + j) % miners, status="answered")
                                            for j in range(n)])
            conn.execute(insert(Outcome), [dict(response_id=start + j + 1, hotkey=hotkeys[(start + j) % miners],
                                                model="RealisticVision", kind="challenge", request_success=True,
                                                verified=rng.random() < 0.95, reward=0.4, epoch=1)
                                           for j in range(n)])
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--miners", type=int, default=256)
    parser.add_argument("--outcomes", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=None, help="an empty database (default: SQLite in a temp folder)")
    args = parser.parse_args()
    from app.progress import steps

    tmp = tempfile.TemporaryDirectory()
    url = args.database_url or f"sqlite:///{tmp.name}/bench.db"
    migrations.upgrade(url)
    t0 = time.perf_counter()
    with steps(max(1, -(-args.outcomes // BATCH)), f"{args.outcomes:,} outcomes written") as step:
        populate(url, args.miners, args.outcomes, step)
    print(f"populated {args.miners} miners and {args.outcomes:,} outcomes in {time.perf_counter() - t0:.1f} s ({url.split(':')[0]})")

    with session_scope(url) as s:  # baseline: interval statistics from a scan of the outcomes
        t0 = time.perf_counter()
        rows = s.execute(select(Outcome.hotkey, func.count(), func.sum(case((Outcome.verified, 1), else_=0)))
                         .where(Outcome.epoch == 1).group_by(Outcome.hotkey)).all()
        scan = time.perf_counter() - t0
    assert len(rows) == args.miners
    with session_scope(url) as s:
        t0 = time.perf_counter()
        changes = rollover(s, epoch=2, block=720, tiers=TierTable())
        roll = time.perf_counter() - t0
    with session_scope(url) as s:
        t0 = time.perf_counter()
        planned = plan_weights(s, epoch=2, block=720, shares={n: c.incentive_share for n, c in CATALOGUE.items()},
                               version_key=1)
        weights = time.perf_counter() - t0
    assert changes is not None and len(changes) == args.miners and planned is not None
    print(f"rollover (tiers for {args.miners} miners)   {roll * 1000:8.1f} ms")
    print(f"weights (scores -> {len(planned.weights)} weights)     {weights * 1000:8.1f} ms")
    print(f"baseline: scanning {args.outcomes:,} outcomes {scan * 1000:8.1f} ms  "
          f"(rollover + weights take {(roll + weights) / scan:.3f} of a scan)")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
