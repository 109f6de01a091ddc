"""Validator compute per verified response over miner compute per response, in one run.

The miner pays one generation per response. The validator pays one reproduction per
challenge, shared by every response to it, plus a verification per response (decode,
pixel hash, and on the tolerant path the embedding similarity). Measured here with the
real engine and verifier on one model type; printed for several group sizes.
Run: .venv/bin/python bench/verification_cost.py [--model RealisticVision] [--responses 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.config import get_settings  # noqa: E402
from app.generation.service import get_engine  # noqa: E402
from app.protocol.catalogue import get_spec  # noqa: E402
from app.protocol.request import parse_request  # noqa: E402
from app.verification.pixels import verify  # noqa: E402
from app.verification.thresholds import threshold_for  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="RealisticVision")
    parser.add_argument("--responses", type=int, default=8)
    args = parser.parse_args()
    settings = get_settings()
    engine = get_engine(args.model, settings)
    spec = get_spec(args.model)
    raw = {"model": args.model, "prompt": "a lighthouse on a cliff at sunset", "seed": 5,
           "params": {**spec.default_params(), **settings.challenge_params.get(args.model, {})}}
    req = parse_request(raw)
    engine.generate(req)  # warm-up
    miner = []
    outputs = []
    for _ in range(args.responses):  # each miner generates the challenge itself
        t0 = time.perf_counter()
        outputs.append(engine.generate(req))
        miner.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    truth = engine.generate(req)  # the validator's one reproduction
    reproduce = time.perf_counter() - t0
    exact, tolerant = [], []
    for out in outputs:
        for bucket, expected_sha in ((exact, truth.pixel_sha256), (tolerant, "0" * 64)):
            t0 = time.perf_counter()
            v = verify(data=out.data, media_type=out.media_type, expected_pixels=truth.pixels,
                       expected_sha256=expected_sha, expected_media_type=out.media_type,
                       threshold=threshold_for(args.model, settings).similarity)
            bucket.append(time.perf_counter() - t0)
            assert v.verified, v
    m, ve, vt = statistics.median(miner), statistics.median(exact), statistics.median(tolerant)
    p = req.params
    print(f"{args.model} {p.width}x{p.height}" + (f"x{p.num_frames}" if p.num_frames else "") +
          f", {p.steps} steps, {settings.threads} threads; miner generation median {m * 1000:.0f} ms, "
          f"reproduction {reproduce * 1000:.0f} ms, verify exact {ve * 1000:.1f} ms, tolerant {vt * 1000:.1f} ms")
    print(f"{'group size':>10} {'validator s / verified response':>32} {'ratio to miner s / response':>28}")
    for n in (1, 4, 8, 16, 32):
        for label, v in (("exact", ve), ("tolerant", vt)):
            per = (reproduce + n * v) / n
            print(f"{n:>10} {per * 1000:>24.1f} ms ({label:8}) {per / m:>27.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
