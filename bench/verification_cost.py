"""Validator compute per verified response over miner compute per response, in one run.

The miner pays one generation per response. The validator pays one reproduction per
challenge, shared by every response to it, plus a verification per response (decode,
pixel hash, and on the tolerant path the embedding similarity). Measured here with the
real engine and verifier on one model type; printed for several group sizes.
Then the trajectory check per response (issue 14), as the judge runs it: the pipeline's
preparation and leaf 0, k re-run steps with their Merkle proofs, the answer's PNG read,
one random tile of the final latent decoded from its committed statistics (and, in the
share `trajectory_decode_share` of checks, the whole decode, in expectation): side by side
at a group size of 1 with full reproduction, k = 2 and k = 1 (the last figure), in blocks
alternating with the miner's own generations; and the miner's cost of keeping the
trajectory (recording time, its size). The opening's transfer is not in the figure.
On a shared 2-vCPU machine, run with SEEDGRID_THREADS=1: two threads waiting on each
other while a neighbour runs double single steps at random (docs/BENCHMARKS.md).
Run: SEEDGRID_THREADS=1 .venv/bin/python bench/verification_cost.py [--model RealisticVision]
     [--responses 8] [--steps 30] [--size 512]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.backends.diffusers import trajectory as tr  # noqa: E402
from app.config import get_settings  # noqa: E402
from app.generation.service import get_engine  # noqa: E402
from app.progress import steps  # noqa: E402
from app.protocol import media  # noqa: E402
from app.protocol.catalogue import get_spec  # noqa: E402
from app.protocol.errors import InvalidRequest  # noqa: E402
from app.protocol.request import parse_request  # noqa: E402
from app.verification.pixels import verify  # noqa: E402
from app.verification.thresholds import threshold_for  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="RealisticVision")
    parser.add_argument("--responses", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None, help="override the challenge's steps (the goal: SD1.5 at 30)")
    parser.add_argument("--size", type=int, default=None, help="override width and height")
    args = parser.parse_args()
    settings = get_settings()
    engine = get_engine(args.model, settings)
    spec = get_spec(args.model)
    raw = {"model": args.model, "prompt": "a lighthouse on a cliff at sunset", "seed": 5,
           "params": {**spec.default_params(), **settings.challenge_params.get(args.model, {})}}
    raw["params"].update({"steps": args.steps} if args.steps else {})
    raw["params"].update({"width": args.size, "height": args.size} if args.size else {})
    try:
        req = parse_request(raw)
    except InvalidRequest as exc:
        parser.error(f"{exc.field}: {exc.message}")
    by_trajectory = tr.supports(engine, req)
    total = args.responses + 2 + (trajectory_runs(args.responses) if by_trajectory else 0)
    with steps(total, f"{total} generations and checks timed") as step:
        step("warm-up")
        engine.generate(req)
        miner = []
        outputs = []
        for i in range(args.responses):  # each miner generates the challenge itself
            step(f"miner generation {i + 1} of {args.responses}")
            t0 = time.perf_counter()
            outputs.append(engine.generate(req))
            miner.append(time.perf_counter() - t0)
        step("the validator's reproduction")
        t0 = time.perf_counter()
        truth = engine.generate(req)  # the validator's one reproduction
        reproduce = time.perf_counter() - t0
        figures = trajectory_figures(engine, req, outputs[0].pixel_sha256, args.responses, settings, step) \
            if by_trajectory else None
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
    if figures is not None:
        print_trajectory_figures(figures, ve, settings)
    return 0


def trajectory_runs(repeats: int) -> int:
    """The timed runs of `trajectory_figures` (a progress display's steps)."""
    return max(3, repeats // 2) + 1 + repeats * 4 * 3


def trajectory_figures(engine, req, expected_sha: str, repeats: int, settings, step) -> dict:
    """Time recording, and checks at k = 1 and 2 against the miner's generation in alternating blocks."""
    import io
    import random

    import numpy as np

    from app.verification.trajectory import (
        leaf_digest,
        proof,
        step_distance,
        verify_proof,
    )

    recorded = []
    for i in range(max(3, repeats // 2)):
        step(f"recording a trajectory ({i + 1} of {max(3, repeats // 2)})")
        t0 = time.perf_counter()
        out, traj = tr.record(engine, req)
        recorded.append(time.perf_counter() - t0)
    buffer = io.BytesIO()
    np.savez(buffer, *traj.latents, *[v for st in traj.states for vs in st.values() if isinstance(vs, list)
                                      for v in vs if v is not None])
    root, levels, n = traj.root, traj.levels(), req.params.steps
    rng = random.Random(0)

    def opened(i: int) -> None:
        assert verify_proof(root, i, leaf_digest(i, traj.latents[i], traj.states[i]), proof(levels, i))

    def check(k: int, whole: bool = False) -> float:
        t0 = time.perf_counter()
        prefix = tr.prepare(engine, req)  # as the judge: the pipeline's preparation once, leaf 0 from it
        assert np.array_equal(prefix.leaf0(), traj.latents[0])
        opened(0)
        for i in rng.sample(range(n), k):
            opened(i)
            opened(i + 1)
            after = tr.replay_step(engine, req, i, traj.latents[i], traj.states[i], prefix)
            assert step_distance(after, traj.latents[i + 1]).relative_l2 < 1e-3
        opened(n)
        pixels = media.decode(out.data, media.MediaType.PNG)  # the answer read, as the judge reads it
        media.pixel_sha256(pixels)
        if whole:
            assert np.array_equal(tr.decode(engine, req, traj.latents[n]), pixels)
        else:  # one random tile from the committed decoder statistics
            y0, y1, x0, x1 = rect = tr.tile(pixels.shape[1:3], settings.trajectory_tile, rng)
            tile = tr.decode_tile(engine, req, traj.latents[n], traj.states[n][tr.NORMS], rect)
            assert np.abs(tile.astype(int) - pixels[:, y0:y1, x0:x1]).mean() < 0.1
        return time.perf_counter() - t0

    step("a check's warm-up")
    check(1)
    assert out.pixel_sha256 == expected_sha, "recording changed the miner's answer"
    # in alternating blocks with the miner's generation, so that a neighbour's load weighs on both alike,
    # each side warm as it runs in service (a miner generates back to back, a validator checks back to back)
    runs: dict = {"miner": [], "whole": [], 2: [], 1: []}
    for block in range(repeats):
        for key, run in (("miner", lambda: engine.generate(req)), (2, lambda: check(2)), (1, lambda: check(1)),
                         ("whole", lambda: check(1, whole=True))):
            for _ in range(3):
                step(f"block {block + 1} of {repeats}: {key if key in ('miner', 'whole') else f'k = {key}'}")
                t0 = time.perf_counter()
                run()
                runs[key].append(time.perf_counter() - t0)
    return {"median": {key: statistics.median(v) for key, v in runs.items()}, "steps": n,
            "recording": statistics.median(recorded), "kept_bytes": len(buffer.getvalue())}


def print_trajectory_figures(figures: dict, verify_s: float, settings) -> None:
    med, n, share = figures["median"], figures["steps"], settings.trajectory_decode_share
    miner_s, whole, tile_only = med["miner"], med["whole"], med[1]
    cost = {k: med[k] + share * (whole - tile_only) for k in (2, 1)}  # the share that decodes it all
    reproduce_s = miner_s + verify_s  # a reproduction is the miner's generation again, then the comparison
    print(f"\ntrajectory check ({n} steps): recording x{figures['recording'] / miner_s:.3f} of the "
          f"miner's generation, trajectory kept {figures['kept_bytes'] / 1e6:.2f} MB, answer +64 hex characters")
    print(f"a check decodes one {settings.trajectory_tile} px tile ({tile_only * 1000:.1f} ms at k = 1) or, in a "
          f"share {share:g} of checks, the whole final latent ({whole * 1000:.1f} ms at k = 1); the figures below "
          f"are the expectation")
    print(f"{'group size 1':>14} {'validator s / verified response':>32} {'ratio to miner s / response':>28}")
    print(f"{'reproduction':>14} {reproduce_s * 1000:>29.1f} ms {reproduce_s / miner_s:>27.3f}")
    for k in (2, 1):
        print(f"{f'trajectory k={k}':>14} {cost[k] * 1000:>29.1f} ms {cost[k] / miner_s:>27.3f}")


if __name__ == "__main__":
    sys.exit(main())
