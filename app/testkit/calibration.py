"""Calibrate the verifier: where honest outputs fall, where every cheat falls, and the threshold between.

For each model type, `challenges` challenges are drawn the way a validator draws them:
prompts from the synthetic prompt generator, random seeds, and parameter sets around
the catalogue defaults and the local network's sizes (guidance and steps varied). Each
challenge is generated here (the reference) and compared by cosine distance
(app/verification/fingerprint.py) with:
- honest variants, which must pass: the same request in separate processes with another
  thread count and other CPU ISAs;
- video is judged on the lossless frames a video answer carries (app/verification/pixels.py),
  so the encoder is out of the comparison; recorded beside it is how far an MP4 lands from
  its own frames (`mp4_fidelity`, mean squared error in levels: the recipe, and another CRF
  and preset standing in for another x264 build), which the verifier's MP4_MAX_MSE must
  clear by SAFETY;
- every cheat of app/testkit/cheats.py (another seed, fewer steps, one step fewer, another
  scheduler, no CFG, lowered guidance, another checkpoint), a replayed or copied answer,
  half resolution upscaled, and reduced precision (the pipeline in bfloat16 while the
  class says float32), which must all fail (the far ones, FAR, on every FAR_EVERY-th challenge,
  reduced precision on every REDUCED_EVERY-th: a CPU emulates bfloat16, 75x slower).
Per model type it records the distributions (n, max, p99, median, min), the closest
cheat, the margin (closest cheat's minimum / honest maximum) and the threshold: the
honest maximum times SAFETY, unless that would come within a factor of SAFETY of the
closest cheat, in which case the geometric mean of the two. The pair of environment
kinds measured ("cpu/float32~cpu/float32") keys the threshold (app/verification/thresholds.py).

Used by `seedgrid calibrate` (an operator's own hardware) and bench/calibrate_verification.py.
"""

from __future__ import annotations

import dataclasses
import io
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

from app.explain import CANNOT_SERVE, ChildFailed, run_entry_point
from app.local_plan import LOCAL_CHALLENGES
from app.protocol import media
from app.protocol.catalogue import CATALOGUE
from app.protocol.request import GenerationRequest, parse_request
from app.testkit.cheats import (
    ALTERED,
    CONDITIONED,
    altered,
    conditioning_pixels,
    half_resolution,
    runnable,
    sibling,
    upscale,
)
from app.verification.fingerprint import similarity
from app.verification.thresholds import calibration_key, kind_of, pair_key, split_key

SAFETY = 10.0  # the threshold sits SAFETY x above the honest maximum
# Cheats that compute what was asked, only less exactly (bfloat16 claimed as float32): where
# honest drift reaches one (img2img on smooth pictures, a few steps), no threshold separates it
# and its answer differs from the honest one by rounding. Such a row records it as
# `inseparable` and sets its threshold against the other cheats; any other cheat reaching
# honest drift leaves the row without a valid threshold (the test of the committed file fails).
NEAR_HONEST = ("reduced_precision",)
HONEST_ENVS = {"threads=1": {"SEEDGRID_THREADS": "1"},
               "isa=avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
               "isa=default": {"ATEN_CPU_CAPABILITY": "default"}}
SIZES = ("local", "default")
# Cheats that land near a distance of 1 (another picture altogether): measured on every
# FAR_EVERY-th challenge only, which saves a third of the time; their n says so.
FAR = ("wrong_seed", "other_checkpoint", "replayed_or_copied", "half_resolution")
FAR_EVERY = 4
# The reduced-precision cheat runs the pipeline in bfloat16, which a CPU without native
# half precision emulates: 90 s a generation on the 2-core CI machine, against 1.2 s in
# float32. It is measured on every REDUCED_EVERY-th challenge (3 of 24), and its n says so.
REDUCED_EVERY = 8
# How far an MP4 lands from its own frames: the recipe, and encodes standing in for other x264 builds.
ENCODER_VARIANTS = {"recipe": [], "crf=8": ["-crf", "8"], "preset=veryfast": ["-preset", "veryfast"]}


def targets(models) -> list[str]:
    """Every calibration row of these model types: the default pipeline ("Model") and each other
    pipeline the type serves ("Model/pipeline", thresholds.calibration_key)."""
    return [calibration_key(m, p.value) for m in models for p in CATALOGUE[m].pipelines]


def check_target(target: str) -> str:
    """A calibration row's key, or ValueError naming what is wrong and what is known."""
    model, pipeline = split_key(target)
    if model not in CATALOGUE:
        raise ValueError(f"{target!r}: no model type {model!r}; known: {', '.join(CATALOGUE)}")
    served = [p.value for p in CATALOGUE[model].pipelines]
    if pipeline is not None and pipeline not in served:
        raise ValueError(f"{target!r}: {model} serves {', '.join(served)}")
    return calibration_key(model, pipeline)


def challenges(target: str, n: int, sizes=SIZES, seed: int = 7) -> list[GenerationRequest]:
    """`n` challenges of a calibration row ("Model" or "Model/pipeline") spread over `sizes`, as a
    validator would draw them (reproducible from `seed`). An image-conditioned pipeline's challenges
    get the validator's conditioning images (app/validator/conditioning.py) from the same seeded
    generator, and a ControlNet's rotate through its control types."""
    from app.validator.conditioning import challenge_conditioning
    from app.validator.prompts import synthetic_prompt, vary_params

    model, pipeline = split_key(target)
    spec = CATALOGUE[model]
    rng = random.Random(f"{seed}:{target}")
    out = []
    for i in range(n):
        params = spec.default_params()
        if sizes[i % len(sizes)] == "local":
            params.update(LOCAL_CHALLENGES.get(model, {}))
        params = vary_params(params, rng)
        raw = {"model": model, "prompt": synthetic_prompt(rng.randrange(1 << 30)),
               "seed": rng.randrange(1 << 32), "params": params,
               "request_id": f"calibration-{target.replace('/', '-')}-{seed}-{i}"}
        if pipeline:
            types = spec.control_types
            controls = (types[i // len(sizes) % len(types)],) if types else ()  # each type at every size
            raw.update(pipeline=pipeline, **challenge_conditioning(pipeline, params["width"], params["height"],
                                                                   controls, rng, steps=params["steps"]))
        out.append(parse_request(raw))
    return out


def cheat_requests(req: GenerationRequest) -> dict[str, GenerationRequest]:
    """Every cheat that generates another request than the one asked for (one that asks what was asked,
    or runs no step, is left out for this request: no cheater can send it; `cheats.runnable`)."""
    out = {name: altered(name, req) for name in ALTERED if name != "other_checkpoint" or sibling(req.model)}
    out["replayed_or_copied"] = dataclasses.replace(req, prompt=req.prompt + ", at night", seed=req.seed + 99)
    out.update({name: change(req) for name, (pipeline, change) in CONDITIONED.items() if req.pipeline == pipeline})
    return {name: variant for name, variant in out.items() if runnable(variant, req)}


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
    """What the half_resolution cheater delivers: lossless pixels (a PNG, or a video's frames)."""
    return upscale(gen.pixels(half_resolution(req)), req.params.width, req.params.height)


def encoder_variants(frames: np.ndarray, fps: int) -> dict[str, np.ndarray]:
    """The frames through the MP4 recipe and other encodes: what an honest MP4 shows of its own frames."""
    return {name: media.decode(media.encode_mp4(frames, fps, extra), media.MediaType.MP4)
            for name, extra in ENCODER_VARIANTS.items()}


def encoder_fidelity(frames: np.ndarray, fps: int) -> dict[str, float]:
    """How far each encode of the frames lands from them: mean squared error in levels (pixels.MP4_MAX_MSE)."""
    return {name: media.mean_squared_error(frames, out) for name, out in encoder_variants(frames, fps).items()}


def stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {"n": int(a.size), "max": float(a.max()), "p99": float(np.percentile(a, 99)),
            "median": float(np.median(a)), "min": float(a.min())}


def _distance(ref: np.ndarray, out: np.ndarray) -> float:
    return 1.0 - similarity(ref, out) if out.shape == ref.shape else 1.0


def _honest_runs(requests: list[GenerationRequest], envs: dict[str, dict], log,
                 work: Path | None = None) -> dict[str, list[np.ndarray]]:
    """Each honest environment generates every request in a process of its own. With `work` (a
    folder kept between runs), the outputs already there are kept: a stopped calibration resumes."""
    out = {}
    payload = json.dumps([r.to_dict() for r in requests])
    with tempfile.TemporaryDirectory(prefix="seedgrid-calibrate-") as tmp:
        root = Path(work) / "honest" if work else Path(tmp)
        for name, env in envs.items():
            folder = root / name.replace("=", "_")
            folder.mkdir(parents=True, exist_ok=True)
            missing = sum(not (folder / f"{i}.npy").exists() for i in range(len(requests)))
            t0 = time.time()
            if missing:
                proc = subprocess.run([sys.executable, "-m", "app.testkit.calibration", "--worker", str(folder)],
                                      input=payload, text=True, capture_output=True, env={**os.environ, **env})
                if proc.returncode == CANNOT_SERVE:  # a known failure (a missing checkpoint): its one line
                    raise ChildFailed.from_stderr(proc.stderr, f"the honest run {name} stopped")
                if proc.returncode:
                    raise RuntimeError(f"the honest run {name} failed:\n{proc.stderr[-3000:]}")
            out[name] = [np.load(folder / f"{i}.npy") for i in range(len(requests))]
            kept = f" ({len(requests) - missing} kept from an earlier run)" if missing < len(requests) else ""
            log(f"honest environment {name}: {missing} outputs in {time.time() - t0:.0f} s{kept}")
    return out


def _measure(gen: Generator, req: GenerationRequest, i: int, honest: dict[str, np.ndarray],
             reduced_every: int) -> dict[str, dict[str, float]]:
    """One challenge's distances: each honest environment's and each cheat's from the reference,
    and for a video how far each encode of its frames lands."""
    ref = gen.pixels(req)
    far = i % FAR_EVERY == 0
    out: dict[str, dict[str, float]] = {"honest": {name: _distance(ref, px) for name, px in honest.items()},
                                        "cheats": {}, "encoder": {}}
    if CATALOGUE[req.model].is_video:
        out["encoder"] = encoder_fidelity(ref, req.params.fps or 8)
    for name, variant in cheat_requests(req).items():
        if far or name not in FAR:
            pixels = gen.pixels(variant)
            if not np.array_equal(pixels, ref):  # the very same pixels (one step fewer running the same
                out["cheats"][name] = _distance(ref, pixels)  # schedule) are this request's honest answer
    if far:
        out["cheats"]["half_resolution"] = _distance(ref, _half_resolution(gen, req))
    sent_back = conditioning_pixels(req)
    if sent_back is not None:  # return_init_image: the conditioning image itself as the answer
        out["cheats"]["return_init_image"] = _distance(ref, sent_back)
    if i % reduced_every == 0:
        out["cheats"]["reduced_precision"] = _distance(ref, gen.pixels(req, "bfloat16"))
    return out


def _measure_or_load(gen: Generator, req: GenerationRequest, i: int, honest: dict[str, np.ndarray],
                     reduced_every: int, saved: Path | None) -> dict[str, dict[str, float]]:
    """`_measure`, or what an earlier run of the same plan saved for this challenge (then kept in `saved`)."""
    if saved is not None and saved.exists():
        return json.loads(saved.read_text())
    out = _measure(gen, req, i, honest, reduced_every)
    if saved is not None:
        _write_atomic(saved, json.dumps(out).encode())
    return out


def _write_atomic(path: Path, data: bytes) -> None:
    """A file a killed run never leaves half-written (a resumed run reads whatever exists)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _check_plan(work: Path, requests: list[GenerationRequest]) -> None:
    """A work folder serves one plan: resuming it with other models or sizes is refused. Requests
    are compared by what they ask (`same_ask_key`), not by their ids. A plan of more (or fewer)
    challenges of the same rows starts with the same requests, so it may extend (or use part of)
    the folder: a 16-challenge run grows to 24 without generating the first 16 again."""
    from app.validator.records import same_ask_key

    plan = json.dumps([r.to_dict() for r in requests], sort_keys=True)
    path = Path(work) / "plan.json"
    if path.exists():
        saved = [same_ask_key(r) for r in json.loads(path.read_text())]
        now = [same_ask_key(r.to_dict()) for r in requests]
        common = min(len(saved), len(now))
        if saved[:common] != now[:common]:
            raise ValueError(f"the work folder {work} holds another calibration's plan (other models or sizes); "
                             f"use a new --work-dir, or delete that one to start over")
        if len(saved) > len(now):
            return  # a shorter run of the same plan: the folder keeps the longer one
    _write_atomic(path, plan.encode())


def threshold_between(honest_max: float, cheat_min: float) -> float:
    """A distance SAFETY x above the honest maximum, or the geometric mean when the gap is narrower."""
    honest_max = max(honest_max, 1e-12)
    if honest_max * SAFETY * SAFETY <= cheat_min:
        return honest_max * SAFETY
    return math.sqrt(honest_max * cheat_min)


def calibrate(models: list[str], n: int, settings, log: Callable[[str], None] = print, sizes=SIZES,
              envs: dict[str, dict] = HONEST_ENVS, reduced_every: int = REDUCED_EVERY,
              work: Path | None = None, progress: Callable[[str], None] | None = None) -> dict:
    """Measure every calibration row in `models` (a model type, or "Model/pipeline" for another of its
    pipelines, `targets`); returns the calibration document.

    reduced_every: the reduced-precision cheat on every such challenge (its cost on a CPU).
    work: a folder kept between runs; each honest output and each challenge's distances are
    saved there as they are made, so a stopped run resumes where it was (the TextToVideo
    default size takes hours on a 2-core CPU); "seconds" then adds up every run's.
    progress: told what is measured next, once per challenge (a progress display's step)."""
    t0 = time.time()
    spent = float((Path(work) / "seconds").read_text()) if work is not None and (Path(work) / "seconds").exists() \
        else 0.0

    def checkpoint() -> None:
        if work is not None:
            _write_atomic(Path(work) / "seconds", f"{spent + time.time() - t0:.1f}".encode())

    models = [check_target(m) for m in models]
    gen = Generator(settings)
    plan = {m: challenges(m, n, sizes) for m in models}
    flat = [r for m in models for r in plan[m]]
    if work is not None:
        _check_plan(work, flat)
    honest_outputs = _honest_runs(flat, envs, log, work)
    checkpoint()
    results, index = {}, 0
    for target in models:
        honest: dict[str, list[float]] = {}
        cheats: dict[str, list[float]] = {}
        encoder: dict[str, list[float]] = {}
        for i, req in enumerate(plan[target]):
            if progress is not None:
                progress(f"{target}: challenge {i + 1} of {len(plan[target])}")
            saved = Path(work) / "measured" / f"{target.replace('/', '-')}-{i}.json" if work is not None else None
            one = _measure_or_load(gen, req, i, {name: honest_outputs[name][index] for name in envs}, reduced_every,
                                   saved)
            checkpoint()
            index += 1
            for into, values in ((honest, one["honest"]), (cheats, one["cheats"]), (encoder, one["encoder"])):
                for name, value in values.items():
                    into.setdefault(name, []).append(value)
        kind = kind_of(gen.engine(split_key(target)[0]).environment)
        measured = {"challenges": len(plan[target]), "sizes": list(sizes),
                    "honest_by_variant": {k: stats(v) for k, v in honest.items()},
                    "cheats": {k: stats(v) for k, v in cheats.items()}}
        if encoder:  # what the verifier's MP4_MAX_MSE must clear (app/verification/pixels.py)
            measured["mp4_fidelity"] = {k: stats(v) for k, v in encoder.items()}
        results[target] = model_row({"+".join(sizes): measured}, kind)
        row = results[target]
        log(f"{target}: {len(plan[target])} challenges | honest max {row['honest']['max']:.2e} "
            f"p99 {row['honest']['p99']:.2e} | closest cheat {row['closest_cheat']} "
            f"{row['cheats'][row['closest_cheat']]['min']:.2e} | threshold {row['threshold_distance']:.2e} | "
            f"margin x{row['margin']:,.0f}")
    reference = gen.engine(split_key(models[0])[0]).environment
    return {"format": 2, "generated_by": "app/testkit/calibration.py", "safety_factor": SAFETY,
            "honest_environments": list(envs), "reference_environment": reference,
            "seconds": round(spent + time.time() - t0), "models": results}


def combine(parts: list[dict]) -> dict:
    """The stats of several measurements together: n, max and min exact; p99 and median are
    the largest of the parts' (an upper bound, on the verifier's safe side)."""
    if len(parts) == 1:
        return dict(parts[0])
    return {"n": sum(p["n"] for p in parts), "max": max(p["max"] for p in parts), "min": min(p["min"] for p in parts),
            "p99": max(p["p99"] for p in parts), "median": max(p["median"] for p in parts)}


def _combined(classes: list[dict], field: str) -> dict[str, dict]:
    names = sorted({k for c in classes for k in c.get(field, {})})
    return {k: combine([c[field][k] for c in classes if k in c.get(field, {})]) for k in names}


def model_row(by_size: dict[str, dict], kind: str) -> dict:
    """A model type's calibration from its measurements per size class ("local", "default"):
    honest and cheat distances over all of them, the threshold between, and the pairs."""
    classes = list(by_size.values())
    honest_by_variant = _combined(classes, "honest_by_variant")
    cheats = _combined(classes, "cheats")
    honest = combine(list(honest_by_variant.values()))
    h = honest["max"]
    # a near-honest cheat that honest drift reaches is recorded, not judged: no threshold can tell it apart
    inseparable = sorted(k for k in NEAR_HONEST if k in cheats and cheats[k]["min"] <= h)
    judged = {k: v for k, v in cheats.items() if k not in inseparable}
    closest = min(judged, key=lambda k: judged[k]["min"])
    c = judged[closest]["min"]
    distance = threshold_between(h, c)
    row = {
        "challenges": sum(m["challenges"] for m in classes), "sizes": sorted({s for m in classes for s in m["sizes"]}),
        "honest": honest, "honest_by_variant": honest_by_variant, "cheats": cheats, "closest_cheat": closest,
        "margin": c / max(h, 1e-12), "threshold": 1.0 - distance, "threshold_distance": distance,
        "pairs": {pair_key(kind, kind): {"threshold": 1.0 - distance, "honest_variants": sorted(honest_by_variant)}},
        "by_size": by_size,
    }
    if inseparable:
        row["inseparable"] = inseparable
    low = cheats.get("reduced_precision")
    if low:  # the same bfloat16 outputs, honestly claimed, are the honest side of the bfloat16 pair
        row["pairs"].update(_pair(pair_key(kind, f"{kind.split('/')[0]}/bfloat16"), low,
                                  {k: v for k, v in cheats.items() if k != "reduced_precision"}))
    fidelity = _combined(classes, "mp4_fidelity")
    if fidelity:
        row["mp4_fidelity"] = fidelity
    return row


def _pair(key: str, honest: dict, cheats: dict[str, dict]) -> dict:
    """A pair's entry from its honest distances' stats and the cheats': a threshold only when they separate."""
    cheat_min = min(v["min"] for v in cheats.values())
    entry = {"honest": honest, "margin": cheat_min / max(honest["max"], 1e-12)}
    if honest["max"] < cheat_min:
        distance = threshold_between(honest["max"], cheat_min)
        entry.update(threshold=1.0 - distance, threshold_distance=distance)
    else:
        entry["separable"] = False
    return {key: entry}


def add_pairs(doc: dict, measured: dict) -> list[str]:
    """Calibrate environment pairs measured elsewhere (bench/device_determinism.py --json) into `doc`.

    `measured["pairs"][model][pair]["distances"]`: honest distances of that pair's outputs to
    the CPU reference over the calibration's challenges. The cheats are those `doc`
    measured for the model type (a cheat's distance is a property of the cheat, not of the
    honest environment); reduced precision counts only where both sides claim float32. A
    pair whose honest maximum reaches the closest cheat gets no threshold: it is recorded
    as not separable, and such miners are judged at the strictest threshold
    (app/verification/thresholds.py).
    """
    lines = []
    for model, pairs in measured.get("pairs", {}).items():
        row = doc["models"].get(model)
        if row is None:
            lines.append(f"{model}: not in the calibration; measure it first (seedgrid calibrate --models {model})")
            continue
        for pair, m in pairs.items():
            if pair in row["pairs"] and "measured_on" not in row["pairs"][pair]:
                continue  # the pair this calibration measured itself
            # reduced precision cheats only a pair that claims float32 on both sides
            full = all(kind.endswith("/float32") for kind in pair.split("~"))
            cheats = {k: v for k, v in row["cheats"].items()
                      if (full or k != "reduced_precision") and k not in row.get("inseparable", ())}
            cheat_min = min(v["min"] for v in cheats.values())
            entry = _pair(pair, stats(m["distances"]), cheats)[pair]
            entry["measured_on"] = m.get("environment", {}).get("device_name")
            honest = entry["honest"]
            if "threshold" in entry:
                lines.append(f"{model} {pair}: honest max {honest['max']:.2e} over {honest['n']} | closest cheat "
                             f"{cheat_min:.2e} | threshold {entry['threshold_distance']:.2e} | "
                             f"margin x{entry['margin']:,.1f}")
            else:
                lines.append(f"{model} {pair}: honest max {honest['max']:.2e} reaches the closest cheat "
                             f"{cheat_min:.2e}: NOT separable, no threshold (judged at the strictest)")
            row["pairs"][pair] = entry
    return lines


def write(doc: dict, path: Path) -> None:
    """Write `doc`, keeping what a previous file measured on the same reference kind: the other
    model types, and a model type's other size classes (a `--sizes default` run adds to `local`)."""
    if path.exists():
        try:
            previous = json.loads(path.read_text())
        except ValueError:
            previous = {}
        if previous.get("format") == doc["format"] and (
                kind_of(previous.get("reference_environment")) == kind_of(doc["reference_environment"])):
            kind = kind_of(doc["reference_environment"])
            models = dict(previous.get("models", {}))
            for model, row in doc["models"].items():
                models[model] = _merged(models.get(model), row, kind)
            doc = {**doc, "models": models}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def _merged(previous: dict | None, row: dict, kind: str) -> dict:
    """`row` with the size classes `previous` measured that it did not; pairs added from elsewhere kept."""
    if previous is None:
        return row
    ours = set(row["sizes"])
    earlier = previous.get("by_size") or {"+".join(previous.get("sizes", ["local"])): previous}
    kept = {k: v for k, v in earlier.items() if not ours & set(k.split("+"))}
    if not kept:
        merged = row
    else:
        merged = model_row({**{k: _size_class(v) for k, v in kept.items()}, **row["by_size"]}, kind)
    for pair, entry in previous.get("pairs", {}).items():
        if "measured_on" in entry and pair not in merged["pairs"]:
            merged["pairs"][pair] = entry  # measured on other hardware (add_pairs): not ours to drop
    return merged


def _size_class(row: dict) -> dict:
    """A size class's measurement out of a row (an older file's whole row is one class)."""
    keep = ("challenges", "sizes", "honest_by_variant", "cheats", "mp4_fidelity")
    return {k: row[k] for k in keep if k in row}


def _worker(folder: Path) -> None:
    """Subprocess mode: generate the requests on stdin in this process's environment."""
    from app.config import get_settings

    gen = Generator(get_settings())
    for i, raw in enumerate(json.load(sys.stdin)):
        path = folder / f"{i}.npy"
        if not path.exists():  # kept from an earlier, stopped run of the same plan
            buffer = io.BytesIO()
            np.save(buffer, gen.pixels(parse_request(raw)))
            _write_atomic(path, buffer.getvalue())


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--worker":
    sys.exit(run_entry_point(lambda: _worker(Path(sys.argv[2])) or 0))
