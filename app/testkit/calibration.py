"""Calibrate the verifier: where honest outputs fall, where every cheat falls, and the threshold between.

For each model type, `challenges` challenges are drawn the way a validator draws them:
prompts from the synthetic prompt generator, random seeds, and parameter sets around
the catalogue defaults and the local network's sizes (guidance and steps varied). Each
challenge is generated here (the reference) and compared by cosine distance
(app/verification/fingerprint.py) with:
- honest variants, which must pass: the same request in separate processes with another
  thread count and other CPU ISAs;
- for video, the encoder's own noise, recorded beside them: the same frames encoded at
  another CRF and preset (standing in for another x264 build), and frames one level apart;
- every cheat of app/testkit/cheats.py (another seed, fewer steps, one step fewer, another
  scheduler, no CFG, lowered guidance, another checkpoint), a replayed or copied answer,
  half resolution upscaled, and reduced precision (the pipeline in bfloat16 while the
  class says float32), which must all fail (the far ones, FAR, on every FAR_EVERY-th challenge).
Per model type it records the distributions (n, max, p99, median, min), the closest
cheat, the margin (closest cheat's minimum / honest maximum) and the threshold: the
honest maximum times SAFETY, unless that would come within a factor of SAFETY of the
closest cheat, in which case the geometric mean of the two. The pair of environment
kinds measured ("cpu/float32~cpu/float32") keys the threshold (app/verification/thresholds.py).

Used by `seedgrid calibrate` (an operator's own hardware) and bench/calibrate_verification.py.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from app.local_plan import LOCAL_CHALLENGES
from app.protocol import media
from app.protocol.catalogue import CATALOGUE
from app.protocol.request import GenerationRequest, parse_request
from app.testkit.cheats import ALTERED, half_resolution, sibling, upscale
from app.verification.fingerprint import similarity
from app.verification.thresholds import kind_of, pair_key

SAFETY = 10.0  # the threshold sits SAFETY x above the honest maximum
HONEST_ENVS = {"threads=1": {"SEEDGRID_THREADS": "1"},
               "isa=avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
               "isa=default": {"ATEN_CPU_CAPABILITY": "default"}}
SIZES = ("local", "default")
# Cheats that land near a distance of 1 (another picture altogether): measured on every
# FAR_EVERY-th challenge only, which saves a third of the time; their n says so.
FAR = ("wrong_seed", "other_checkpoint", "replayed_or_copied", "half_resolution")
FAR_EVERY = 4
# The encoder's own noise (video): what a different encode of the same frames does.
ENCODER_VARIANTS = {"crf=8": ["-crf", "8"], "preset=veryfast": ["-preset", "veryfast"]}


def challenges(model: str, n: int, sizes=SIZES, seed: int = 7) -> list[GenerationRequest]:
    """`n` challenges spread over `sizes`, as a validator would draw them (reproducible from `seed`)."""
    from app.validator.prompts import synthetic_prompt

    spec = CATALOGUE[model]
    rng = random.Random(f"{seed}:{model}")
    out = []
    for i in range(n):
        params = spec.default_params()
        if sizes[i % len(sizes)] == "local":
            params.update(LOCAL_CHALLENGES.get(model, {}))
        params["guidance"] = round(max(1.5, params["guidance"] + rng.choice((-2.0, -1.0, 0.0, 1.0, 2.0))), 1)
        params["steps"] = max(2, params["steps"] + rng.choice((-1, 0, 0, 1)))
        out.append(parse_request({"model": model, "prompt": synthetic_prompt(rng.randrange(1 << 30)),
                                  "seed": rng.randrange(1 << 32), "params": params}))
    return out


def cheat_requests(req: GenerationRequest) -> dict[str, GenerationRequest]:
    """Every cheat that generates another request than the one asked for."""
    out = {name: change(req) for name, change in ALTERED.items() if name != "other_checkpoint" or sibling(req.model)}
    out["replayed_or_copied"] = dataclasses.replace(req, prompt=req.prompt + ", at night", seed=req.seed + 99)
    return out


class Generator:
    """Engines of this process, the reference one and a bfloat16 one for the reduced-precision cheat."""

    def __init__(self, settings):
        self.settings = settings
        self._engines: dict[tuple[str, str], object] = {}

    def engine(self, model: str, dtype: str | None = None):
        from app.backends.registry import load_engine

        key = (model, dtype or self.settings.dtype)
        if key not in self._engines:
            settings = self.settings.model_copy(update={"dtype": dtype}) if dtype else self.settings
            self._engines[key] = load_engine(settings, model)
        return self._engines[key]

    def pixels(self, req: GenerationRequest, dtype: str | None = None) -> np.ndarray:
        return self.engine(req.model, dtype).generate(req).pixels


def _half_resolution(gen: Generator, req: GenerationRequest) -> np.ndarray:
    """What the half_resolution cheater delivers, as the validator decodes it."""
    p, kind = req.params, CATALOGUE[req.model].media_type
    big = upscale(gen.pixels(half_resolution(req)), p.width, p.height)
    return media.decode(media.encode(big, kind, fps=p.fps), kind)


def encoder_variants(frames: np.ndarray, fps: int, seed: int) -> dict[str, np.ndarray]:
    """The same frames through other encodes: what an honest video may differ by without any cheating."""
    out = {}
    for name, extra in ENCODER_VARIANTS.items():
        data = media.encode_mp4(frames, fps, extra)
        out[name] = media.decode(data, media.MediaType.MP4)
    rng = np.random.default_rng(seed)
    nudged = frames.astype(np.int16) + rng.choice((-1, 0, 0, 0, 0, 0, 0, 0, 0, 1), size=frames.shape)
    nudged = np.clip(nudged, 0, 255).astype(np.uint8)
    out["frames±1"] = media.decode(media.encode(nudged, media.MediaType.MP4, fps=fps), media.MediaType.MP4)
    return out


def stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {"n": int(a.size), "max": float(a.max()), "p99": float(np.percentile(a, 99)),
            "median": float(np.median(a)), "min": float(a.min())}


def _distance(ref: np.ndarray, out: np.ndarray) -> float:
    return 1.0 - similarity(ref, out) if out.shape == ref.shape else 1.0


def _honest_runs(requests: list[GenerationRequest], envs: dict[str, dict], log) -> dict[str, list[np.ndarray]]:
    """Each honest environment generates every request in a process of its own."""
    out = {}
    payload = json.dumps([r.to_dict() for r in requests])
    with tempfile.TemporaryDirectory(prefix="seedgrid-calibrate-") as tmp:
        for name, env in envs.items():
            folder = Path(tmp) / name.replace("=", "_")
            folder.mkdir()
            t0 = time.time()
            proc = subprocess.run([sys.executable, "-m", "app.testkit.calibration", "--worker", str(folder)],
                                  input=payload, text=True, capture_output=True, env={**os.environ, **env})
            if proc.returncode:
                raise RuntimeError(f"the honest run {name} failed:\n{proc.stderr[-3000:]}")
            out[name] = [np.load(folder / f"{i}.npy") for i in range(len(requests))]
            log(f"honest environment {name}: {len(requests)} outputs in {time.time() - t0:.0f} s")
    return out


def threshold_between(honest_max: float, cheat_min: float) -> float:
    """A distance SAFETY x above the honest maximum, or the geometric mean when the gap is narrower."""
    honest_max = max(honest_max, 1e-12)
    if honest_max * SAFETY * SAFETY <= cheat_min:
        return honest_max * SAFETY
    return math.sqrt(honest_max * cheat_min)


def calibrate(models: list[str], n: int, settings, log: Callable[[str], None] = print, sizes=SIZES,
              envs: dict[str, dict] = HONEST_ENVS) -> dict:
    """Measure every model type in `models`; returns the calibration document."""
    t0 = time.time()
    gen = Generator(settings)
    plan = {m: challenges(m, n, sizes) for m in models}
    flat = [r for m in models for r in plan[m]]
    honest_outputs = _honest_runs(flat, envs, log)
    results, index = {}, 0
    for model in models:
        honest: dict[str, list[float]] = {}
        cheats: dict[str, list[float]] = {}
        encoder: dict[str, list[float]] = {}
        for i, req in enumerate(plan[model]):
            ref = gen.pixels(req)
            far = i % FAR_EVERY == 0
            for name in envs:
                honest.setdefault(name, []).append(_distance(ref, honest_outputs[name][index]))
            index += 1
            if CATALOGUE[model].is_video:
                for name, out in encoder_variants(ref, req.params.fps or 8, req.seed).items():
                    encoder.setdefault(name, []).append(_distance(ref, out))
            for name, variant in cheat_requests(req).items():
                if far or name not in FAR:
                    cheats.setdefault(name, []).append(_distance(ref, gen.pixels(variant)))
            if far:
                cheats.setdefault("half_resolution", []).append(_distance(ref, _half_resolution(gen, req)))
            cheats.setdefault("reduced_precision", []).append(_distance(ref, gen.pixels(req, "bfloat16")))
        all_honest = [d for ds in honest.values() for d in ds]
        closest = min(cheats, key=lambda k: min(cheats[k]))
        h, c = max(all_honest), min(cheats[closest])
        distance = threshold_between(h, c)
        kind = kind_of(gen.engine(model).environment)
        results[model] = {
            "challenges": len(plan[model]), "sizes": list(sizes), "honest": stats(all_honest),
            "honest_by_variant": {k: stats(v) for k, v in honest.items()},
            "cheats": {k: stats(v) for k, v in cheats.items()}, "closest_cheat": closest,
            "margin": c / max(h, 1e-12), "threshold": 1.0 - distance, "threshold_distance": distance,
            "pairs": {pair_key(kind, kind): {"threshold": 1.0 - distance, "honest_variants": sorted(honest)}},
        }
        if encoder:
            noise = max(max(v) for v in encoder.values())
            results[model]["encoder_noise"] = {k: stats(v) for k, v in encoder.items()}
            results[model]["margin_over_encoder_noise"] = c / max(noise, 1e-12)
        log(f"{model}: {len(plan[model])} challenges | honest max {h:.2e} p99 {stats(all_honest)['p99']:.2e} | "
            f"closest cheat {closest} {c:.2e} | threshold {distance:.2e} | margin x{c / max(h, 1e-12):,.0f}")
    reference = gen.engine(models[0]).environment
    return {"format": 2, "generated_by": "app/testkit/calibration.py", "safety_factor": SAFETY,
            "honest_environments": list(envs), "reference_environment": reference,
            "seconds": round(time.time() - t0), "models": results}


def write(doc: dict, path: Path) -> None:
    """Write `doc`, keeping the other model types a previous file measured on the same reference kind."""
    if path.exists():
        try:
            previous = json.loads(path.read_text())
        except ValueError:
            previous = {}
        if previous.get("format") == doc["format"] and (
                kind_of(previous.get("reference_environment")) == kind_of(doc["reference_environment"])):
            doc = {**doc, "models": {**previous.get("models", {}), **doc["models"]}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def _worker(folder: Path) -> None:
    """Subprocess mode: generate the requests on stdin in this process's environment."""
    from app.config import get_settings

    gen = Generator(get_settings())
    for i, raw in enumerate(json.load(sys.stdin)):
        np.save(folder / f"{i}.npy", gen.pixels(parse_request(raw)))


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--worker":
    _worker(Path(sys.argv[2]))
