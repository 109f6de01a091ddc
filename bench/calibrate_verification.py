"""Calibrate the tolerant-path thresholds: honest outputs from other environments vs every cheat.

For each diffusion model type and a few seeds, the reference output (this process) is
compared by cosine similarity (app/verification/fingerprint.py) with:
- honest outputs of the same request from separate processes with another thread count
  and other CPU ISAs (ATEN_CPU_CAPABILITY), which must pass, and
- the cheats: another seed, half the steps, one step fewer, another scheduler, guidance off
  (no CFG) or lowered by a third, half resolution upscaled, another checkpoint's weights,
  another prompt (a replayed or copied answer), which must all fail.
The threshold sits at the geometric mean of the largest honest distance (1 - similarity)
and the smallest cheat distance; the margin is their ratio. Results go to
app/verification/calibration.json, which the validator reads.

Run: .venv/bin/python bench/calibrate_verification.py [--seeds 2] [--models A,B]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.backends.registry import SERVED_MODELS  # noqa: E402
from app.local_plan import LOCAL_CHALLENGES  # noqa: E402
from app.protocol.catalogue import CATALOGUE  # noqa: E402
from app.protocol.request import GenerationRequest, parse_request  # noqa: E402
from app.testkit.cheats import ALTERED, sibling  # noqa: E402
from app.verification.fingerprint import similarity  # noqa: E402

OUT = ROOT / "app" / "verification" / "calibration.json"
# Param sets: the catalogue defaults, and the small ones local networks and tests use.
SMALL = LOCAL_CHALLENGES  # what `seedgrid up` sends: the thresholds hold for those params
HONEST_ENVS = {"threads=1": {"SEEDGRID_THREADS": "1"},
               "isa=avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
               "isa=default": {"ATEN_CPU_CAPABILITY": "default"}}


def requests_for(model: str, seeds: int) -> list[GenerationRequest]:
    spec = CATALOGUE[model]
    out = []
    for params in (spec.default_params(), {**spec.default_params(), **SMALL[model]}):
        for seed in range(seeds):
            out.append(parse_request({"model": model, "prompt": "a lighthouse on a cliff at sunset, cinematic",
                                      "seed": 1000 + seed, "params": params}))
    return out


def cheats(req: GenerationRequest) -> dict[str, GenerationRequest | tuple]:
    """Every cheat the miner's `--cheat` modes play (app/testkit/cheats.py), as the request it generates."""
    p = req.params
    out: dict[str, GenerationRequest | tuple] = {
        name: change(req) for name, change in ALTERED.items()
        if name != "other_checkpoint" or sibling(req.model) is not None
    }
    out["replayed_or_copied"] = dataclasses.replace(req, prompt="a red fox in a snowy forest", seed=req.seed + 99)
    out["half_resolution"] = ("upscale", dataclasses.replace(req, params=dataclasses.replace(
        p, width=max(8, p.width // 2 // 8 * 8), height=max(8, p.height // 2 // 8 * 8))))
    return out


def generate(req: GenerationRequest) -> np.ndarray:
    from app.config import get_settings
    from app.generation.service import get_engine

    return get_engine(req.model, get_settings()).generate(req).pixels


def upscale(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    from app.protocol import media

    big = np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.Resampling.BICUBIC)) for f in pixels])
    return media.decode(media.encode(big, media.MediaType.PNG if big.shape[0] == 1 else media.MediaType.MP4, fps=8),
                        media.MediaType.PNG if big.shape[0] == 1 else media.MediaType.MP4)


def honest_worker() -> None:
    """Subprocess mode: generate the requests on stdin, save pixels to the folder given."""
    folder = Path(sys.argv[2])
    for i, raw in enumerate(json.load(sys.stdin)):
        np.save(folder / f"{i}.npy", generate(parse_request(raw)))


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        honest_worker()
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--models", default=",".join(SERVED_MODELS))
    parser.add_argument("--no-write", action="store_true", help="print only; do not update calibration.json")
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    t0 = time.time()
    reqs = {m: requests_for(m, args.seeds) for m in models}
    all_reqs = [r.to_dict() for m in models for r in reqs[m]]
    honest: dict[str, list[np.ndarray]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, env in HONEST_ENVS.items():
            folder = Path(tmp) / name.replace("=", "_")
            folder.mkdir()
            proc = subprocess.run([sys.executable, __file__, "--worker", str(folder)], input=json.dumps(all_reqs),
                                  text=True, capture_output=True, env={**os.environ, **env}, cwd=ROOT)
            if proc.returncode:
                print(proc.stderr[-3000:])
                return 1
            honest[name] = [np.load(folder / f"{i}.npy") for i in range(len(all_reqs))]
    results = {}
    index = 0
    for model in models:
        honest_d, cheat_d = [], {}
        for req in reqs[model]:
            ref = generate(req)
            for name in HONEST_ENVS:
                honest_d.append(1 - similarity(ref, honest[name][index]))
            index += 1
            for name, variant in cheats(req).items():
                if isinstance(variant, tuple) and variant[0] == "upscale":
                    small = generate(variant[1])
                    out = upscale(small, req.params.width, req.params.height)
                else:
                    out = generate(variant)
                cheat_d.setdefault(name, []).append(1 - similarity(ref, out) if out.shape == ref.shape else 1.0)
        binding = cheat_d  # every strategy binds: a miner may play any of them
        closest = min(binding, key=lambda k: min(binding[k]))
        d_honest, d_cheat = max(max(honest_d), 1e-12), min(binding[closest])
        threshold = 1 - math.sqrt(d_honest * d_cheat)
        results[model] = {
            "threshold": threshold, "honest_max_distance": d_honest, "cheat_min_distance": d_cheat,
            "closest_cheat": closest, "margin": d_cheat / d_honest,
            "cheats": {k: min(v) for k, v in cheat_d.items()},
        }
        print(f"{model:16} honest max 1-sim {d_honest:.2e} | closest cheat {closest} {d_cheat:.2e} | "
              f"threshold {threshold:.9f} | margin x{d_cheat / d_honest:,.0f}")
        for name, d in sorted(cheat_d.items(), key=lambda kv: min(kv[1])):
            verdict = "fails" if 1 - min(d) < threshold else "PASSES"
            print(f"    {name:24} min 1-sim {min(d):.2e}  -> {verdict}")
    from app.config import get_settings
    from app.generation.service import get_engine

    reference_env = get_engine(next(iter(results)), get_settings()).environment  # this process's, already loaded
    doc = {"generated_by": "bench/calibrate_verification.py", "seeds": args.seeds,
           "honest_environments": list(HONEST_ENVS), "reference_environment": reference_env,
           "models": results}
    if not args.no_write:
        previous = json.loads(OUT.read_text()) if OUT.exists() else {"models": {}}
        previous_models = previous.get("models", {})
        doc["models"] = {**previous_models, **results}
        OUT.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        print(f"wrote {OUT.relative_to(ROOT)}")
    print(f"calibration took {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
