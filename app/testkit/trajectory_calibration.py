"""Calibrate the trajectory check (issue 14): how far an honest miner's re-run steps, leaf 0 and
final latent land in other environments, how far every cheat's land, and the tolerances between.

For each diffusion type, `n` challenges drawn as the output calibration draws them
(app/testkit/calibration.challenges: synthetic prompts, random seeds, varied guidance and
steps) through the type's pipelines in turn (text-to-image, img2img, ControlNet;
text-to-video) and the five schedulers, at the local network's sizes (an img2img challenge
at its init image's). The
honest miner records its trajectory in another environment: another thread count (here,
in-process) and another CPU ISA (a subprocess with ATEN_CPU_CAPABILITY=avx2); the validator
(this process) re-runs two random steps, compares leaf 0 (exact but for img2img's encoded
init image, whose distance counts with the steps'), decodes the final latent whole and in
TILES random tiles. The cheats, each against the validator's re-run:
- other_checkpoint: a trajectory recorded with another checkpoint of the architecture (a
  type with no sibling has none: the video type);
- skipped_steps: an honest trajectory with one step's latent interpolated from its neighbours;
- fabricated_final: the final latent replaced by another run's (the sibling's, or another seed's);
- other_image: an honest trajectory with another run's image returned (whole, and each tile);
(a refusal to open and a forged opening fail by themselves: tests/validator/test_trajectory_path.py).
The tolerance is the honest maximum times SAFETY, or the geometric mean with the closest
cheat when they are nearer (calibration.threshold_between), for the step distance (relative
L2) and for the pixel gap (mean absolute difference in levels).

Used by bench/calibrate_trajectory.py, which writes app/verification/trajectory_calibration.json.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from app.protocol.catalogue import CATALOGUE, Payload
from app.testkit.calibration import challenges, threshold_between
from app.testkit.cheats import sibling
from app.verification.trajectory import executed_steps, step_distance

DIFFUSION_TYPES = tuple(n for n, s in CATALOGUE.items() if s.payload is Payload.DIFFUSION)
SCHEDULER_NAMES = ("dpmpp_2m", "dpmpp_2m_karras", "euler", "euler_a", "ddim")
CHECKED_STEPS = 2
TILES = 3  # random tiles per challenge, beside the whole decode


def requests(model: str, n: int, seed: int = 11, size: int = 0):
    """`n` challenges through the type's pipelines and the schedulers in turn, at the local network's
    sizes, or with `size` the image types at that size (at least their smallest)."""
    spec = CATALOGUE[model]
    pipelines = [p.value for p in spec.pipelines]
    per = {p: iter(challenges(model if p == spec.pipeline.value else f"{model}/{p}",
                              -(-n // len(pipelines)), sizes=("local",), seed=seed)) for p in pipelines}
    out = []
    for i in range(n):
        req = next(per[pipelines[i % len(pipelines)]])
        changes = {"scheduler": SCHEDULER_NAMES[i % len(SCHEDULER_NAMES)]}
        if size and not spec.is_video and req.pipeline in (None, spec.pipeline.value, "controlnet"):
            changes.update(width=max(size, spec.bounds.min_size), height=max(size, spec.bounds.min_size))
        out.append(dataclasses.replace(req, params=dataclasses.replace(req.params, **changes)))
    return out


def _engine(model: str, settings):
    from app.generation.service import get_engine

    return get_engine(model, settings)


def record_many(model: str, n: int, settings, out: Path, seed: int = 11, size: int = 0) -> None:
    """Record each challenge's trajectory and pixels to `out` (an ISA subprocess's job)."""
    from app.backends.diffusers import trajectory as tr

    engine = _engine(model, settings)
    for i, req in enumerate(requests(model, n, seed, size)):
        result, traj = tr.record(engine, req)
        (out / f"{model}-{i}.npz").write_bytes(traj.to_bytes())
        np.save(out / f"{model}-{i}.pixels.npy", result.pixels)


def _gap(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _pixel_gaps(engine, req, traj, pixels, rng, decoded=None, whole: bool = True) -> list[float]:
    """The image against the final latent's decoding as the validator compares them: the whole image
    (unless `whole` is False), and TILES random tiles (of random frames) decoded from the committed
    decoder statistics."""
    from app.backends.diffusers import trajectory as tr
    from app.config import get_settings

    gaps = []
    if whole:
        gaps.append(_gap(decoded if decoded is not None else tr.decode(engine, req, traj.latents[-1]), pixels))
    for _ in range(TILES):
        y0, y1, x0, x1 = rect = tr.tile(pixels.shape[1:3], get_settings().trajectory_tile, rng)
        frame = rng.randrange(pixels.shape[0])
        gaps.append(_gap(tr.decode_tile(engine, req, traj.latents[-1], traj.states[-1][tr.NORMS], rect, frame),
                         pixels[frame:frame + 1, y0:y1, x0:x1]))
    return gaps


def _judge(engine, req, prefix, traj, pixels, steps, rng, decoded=None, whole: bool = True) -> tuple[float, float]:
    """(the worst of the re-run steps' distances and an img2img leaf 0's, the worst pixel gap)
    as the validator measures them."""
    from app.backends.diffusers import trajectory as tr

    worst = max(step_distance(tr.replay_step(engine, req, i, traj.latents[i], traj.states[i], prefix),
                              traj.latents[i + 1]).relative_l2 for i in steps)
    start = step_distance(traj.latents[0], prefix.leaf0()).relative_l2
    if req.pipeline != "img2img" and start:
        start = float("inf")  # leaf 0 is compared exactly there
    return max(worst, start), max(_pixel_gaps(engine, req, traj, pixels, rng, decoded, whole))


def measure(model: str, n: int, settings, *, isa: bool = True, seed: int = 11, size: int = 0,
            log=print) -> dict:
    import torch

    from app.backends.diffusers import trajectory as tr

    twin = sibling(model)
    engine, other = _engine(model, settings), (_engine(twin, settings) if twin else None)
    reqs = requests(model, n, seed, size)
    isa_dir = None
    if isa:
        isa_dir = Path(tempfile.mkdtemp(prefix="traj-isa-"))
        env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2"}
        subprocess.run([sys.executable, "-m", "app.testkit.trajectory_calibration", "record", model, str(n),
                        str(isa_dir), str(seed), str(size)], env=env, check=True)
    rng = random.Random(f"{seed}:{model}")
    honest = {"threads": [], "isa": []}
    pixels_honest = {"threads": [], "isa": []}
    cheats = {"other_checkpoint": [], "skipped_steps": [], "fabricated_final": [], "other_image": []}
    for i, req in enumerate(reqs):
        n_steps = executed_steps(req)
        steps = sorted(rng.sample(range(n_steps), min(CHECKED_STEPS, n_steps)))
        prefix = tr.prepare(engine, req)
        threads = torch.get_num_threads()
        torch.set_num_threads(1 if threads > 1 else 2)
        try:
            out, traj = tr.record(engine, req)  # the miner, on another thread count
        finally:
            torch.set_num_threads(threads)
        decoded = tr.decode(engine, req, traj.latents[-1])  # the validator's whole decode, used twice
        d, g = _judge(engine, req, prefix, traj, out.pixels, steps, rng, decoded)
        honest["threads"].append(d)
        pixels_honest["threads"].append(g)
        if isa_dir is not None:
            isa_traj = tr.Trajectory.from_bytes((isa_dir / f"{model}-{i}.npz").read_bytes())
            # its tiles (the whole decode's ISA drift was 0 in every earlier calibration; the threads leg has it)
            d, g = _judge(engine, req, prefix, isa_traj, np.load(isa_dir / f"{model}-{i}.pixels.npy"), steps, rng,
                          whole=False)
            honest["isa"].append(d)
            pixels_honest["isa"].append(g)
        # the cheats
        if other is not None:  # another checkpoint's run: its trajectory, its final latent, its image
            foreign_out, foreign = tr.record(other, dataclasses.replace(req, model=other.spec.name))
            cheats["other_checkpoint"].append(_judge(engine, req, prefix, foreign, out.pixels, steps, rng)[0])
        else:  # another seed's run
            foreign_out, foreign = tr.record(engine, dataclasses.replace(req, seed=(req.seed + 1) % 2**32))
        if n_steps > 1:
            k = rng.randrange(1, n_steps)  # a skipped step: its latent interpolated; the check opens the step before
            skipped = tr.Trajectory(list(traj.latents), list(traj.states))
            skipped.latents[k] = (traj.latents[k - 1] + traj.latents[k + 1]) / 2
            cheats["skipped_steps"].append(_judge(engine, req, prefix, skipped, out.pixels, [k - 1], rng)[0])
        fabricated = tr.Trajectory(list(traj.latents[:-1]) + [foreign.latents[-1]], list(traj.states))
        cheats["fabricated_final"].append(_judge(engine, req, prefix, fabricated, out.pixels, [n_steps - 1], rng)[0])
        cheats["other_image"].append(min(_pixel_gaps(engine, req, traj, foreign_out.pixels, rng, decoded)))
        log(f"{model} {req.pipeline or 'default'} {i + 1}/{n}: honest {max(honest['threads'][-1], *(honest['isa'][-1:] or [0])):.2g}, "
            f"closest cheat {min(v[-1] for k, v in cheats.items() if v and k != 'other_image'):.2g}")
    step_honest = max(max(v) for v in honest.values() if v)
    step_cheat = min(min(cheats[c]) for c in ("other_checkpoint", "skipped_steps", "fabricated_final") if cheats[c])
    pixel_honest = max(max(v) for v in pixels_honest.values() if v)
    pixel_cheat = min(cheats["other_image"])
    return {"model": model, "challenges": n, "size": size, "environments": ["threads"] + (["isa avx2"] if isa else []),
            "pipelines": sorted({r.pipeline or CATALOGUE[model].pipeline.value for r in reqs}),
            "honest_step": {k: max(v) for k, v in honest.items() if v},
            "honest_pixel_gap": {k: max(v) for k, v in pixels_honest.items() if v},
            "cheats": {k: min(v) for k, v in cheats.items() if v},
            "step_tolerance": threshold_between(step_honest, step_cheat),
            "pixel_tolerance": threshold_between(pixel_honest, pixel_cheat),
            "step_margin": step_cheat / max(step_honest, 1e-12), "pixel_margin": pixel_cheat / max(pixel_honest, 1e-12)}


def combine(rows: list[dict]) -> dict:
    """One tolerance for all diffusion types: the tightest of theirs (each has its own margin recorded)."""
    return {"step_tolerance": min(r["step_tolerance"] for r in rows),
            "pixel_tolerance": min(r["pixel_tolerance"] for r in rows), "types": rows}


if __name__ == "__main__" and len(sys.argv) == 7 and sys.argv[1] == "record":
    from app.config import get_settings

    record_many(sys.argv[2], int(sys.argv[3]), get_settings(), Path(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
    print(json.dumps({"recorded": int(sys.argv[3])}))
