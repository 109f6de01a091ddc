"""Do the dev checkpoints behave like models? Distances when the prompt, guidance, steps or scheduler change.

For each model type, at the local network's challenge params (app/local_plan.py), one
base request per seed is generated, then the same request with one thing changed:
- another prompt (a different subject, action and setting), same seed;
- guidance lowered by a third; one step fewer; another scheduler;
- honest drift: the same request with 1 torch thread instead of 2 (another environment).
Each line prints the median distance (1 - the verifier's similarity) over the seeds; a
model that responds like a real one puts every change far above the honest drift.
A contact sheet (--sheet PATH) shows the base pictures and the prompt swaps side by side.

    .venv/bin/python bench/dev_models.py --seeds 3 --sheet /tmp/sheet.png
    .venv/bin/python bench/dev_models.py --weights /tmp/trained --models RealisticVision
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.local_plan import LOCAL_CHALLENGES  # noqa: E402

PROMPTS = (  # pairs that differ in subject, action and setting
    ("a fox running at sunset, oil painting", "a whale flying at night, oil painting"),
    ("a red robot standing in the rain", "a blue lighthouse sitting in the desert"),
    ("a knight walking on a beach", "a dragon flying under the stars"),
)
OTHER_SCHEDULER = {"euler_a": "dpmpp_2m", "dpmpp_2m": "euler_a"}


def engines(model: str, weights: Path | None, tmp: Path):
    """Engines for `model` at 2 threads and 1 thread, built from `weights` (default: the shipped ones)."""
    from app.backends.diffusers import devtrain
    from app.backends.diffusers.determinism import configure
    from app.backends.diffusers.devbuild import build_dev_checkpoint
    from app.backends.diffusers.engine import Engine
    from app.protocol.catalogue import get_spec

    spec = get_spec(model)
    if weights is not None:
        devtrain.WEIGHTS = weights
    folder = tmp / model
    build_dev_checkpoint(spec, folder)
    return spec, Engine.load(spec, folder, configure("cpu", "float32", 2)), configure("cpu", "float32", 1)


def main() -> int:
    from app.backends.diffusers.determinism import configure
    from app.progress import steps
    from app.protocol.request import parse_request
    from app.verification.fingerprint import similarity

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(LOCAL_CHALLENGES))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--weights", type=Path, default=None, help="a train-dev output folder (default: shipped)")
    parser.add_argument("--sheet", type=Path, default=None, help="write a contact sheet PNG here")
    args = parser.parse_args()
    rows = []
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    with tempfile.TemporaryDirectory() as tmp, steps(len(models) * (args.seeds + 1),
                                                      f"{len(models)} model types measured") as step:
        for model in models:
            step(f"{model}: loading")
            spec, engine, one_thread = engines(model, args.weights, Path(tmp))
            params = {**LOCAL_CHALLENGES[model], "guidance": 7.5}
            dist: dict[str, list[float]] = {k: [] for k in ("prompt", "guidance", "one_step_fewer", "scheduler",
                                                             "1 thread (honest)")}
            pictures = []

            def run(prompt: str, seed: int, **change):
                raw = {"model": model, "prompt": prompt, "seed": seed, "params": {**params, **change}}
                return engine.render(parse_request(raw))[0]

            for s in range(args.seeds):
                step(f"{model}: seed {s + 1} of {args.seeds}")
                a, b = PROMPTS[s % len(PROMPTS)]
                seed = 4200 + s
                base = run(a, seed)
                pictures.append((base, run(b, seed)))
                dist["prompt"].append(1 - similarity(base, pictures[-1][1]))
                dist["guidance"].append(1 - similarity(base, run(a, seed, guidance=5.0)))
                dist["one_step_fewer"].append(1 - similarity(base, run(a, seed, steps=params["steps"] - 1)))
                scheduler = parse_request({"model": model, "prompt": a, "seed": seed, "params": params}).params.scheduler
                dist["scheduler"].append(1 - similarity(base, run(a, seed, scheduler=OTHER_SCHEDULER.get(scheduler, "euler_a"))))
                configure("cpu", "float32", 1)
                drift = run(a, seed)
                configure("cpu", "float32", 2)
                dist["1 thread (honest)"].append(1 - similarity(base, drift))
            medians = {k: statistics.median(v) for k, v in dist.items()}
            honest = max(medians["1 thread (honest)"], 1e-12)
            print(f"{model:16} " + " | ".join(f"{k} {v:.2e}" + ("" if "honest" in k else f" (x{v / honest:.0e})")
                                                for k, v in medians.items()))
            rows.append((model, pictures))
    if args.sheet:
        sheet(rows, args.sheet)
        print(f"contact sheet: {args.sheet}")
    return 0


def sheet(rows, path: Path) -> None:
    """One row per model type: each seed's base picture and its prompt swap, first frames, 128 px tiles."""
    from PIL import Image

    tile = 128
    cols = max(len(p) * 2 for _, p in rows)
    out = Image.new("RGB", (cols * tile, len(rows) * tile), "white")
    for r, (_, pictures) in enumerate(rows):
        for c, img in enumerate(x for pair in pictures for x in pair):
            out.paste(Image.fromarray(img[0]).resize((tile, tile)), (c * tile, r * tile))
    out.save(path)


if __name__ == "__main__":
    sys.exit(main())
