"""What img2img and ControlNet cost against txt2img at the same size and steps, measured side by side.

For one SD1.5 type (img2img and each ControlNet type) and one SDXL type (img2img), the
engine generates the same prompt and seed by each pipeline in turn, round after round, so
every pipeline sees the same machine load; prints each pipeline's median and its ratio to
txt2img's. img2img runs int(steps x strength) denoising steps after encoding its init image
with the VAE: at the default strength (0.75) it should cost about three quarters of
txt2img, at 1.0 a little more than txt2img. A ControlNet step runs the ControlNet beside the
UNet. The pipelines are not served until their verification is calibrated (issue 11), so the
requests are parsed text-to-image ones with their pipeline fields set.
Run: .venv/bin/python bench/conditioned_cost.py [--rounds 8] [--steps 8] [--size 256]
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import io
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.config import get_settings  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--size", type=int, default=256, help="SD1.5's size; SDXL runs at twice it (its minimum 512)")
    args = parser.parse_args()

    from PIL import Image

    from app.generation.service import get_engine
    from app.progress import steps
    from app.protocol.request import Control, parse_request

    settings = get_settings()
    for model, size in (("RealisticVision", args.size), ("AnimeV3", max(512, 2 * args.size))):
        engine = get_engine(model, settings)
        base = parse_request({"model": model, "prompt": "a lighthouse at dusk, cinematic", "seed": 11,
                              "params": {"steps": args.steps, "width": size, "height": size}})
        picture = engine.generate(dataclasses.replace(base, seed=12)).pixels[0]
        buf = io.BytesIO()
        Image.fromarray(picture).save(buf, "PNG")
        image = base64.b64encode(buf.getvalue()).decode()
        variants = {"txt2img": base,
                    "img2img strength 0.75": dataclasses.replace(base, pipeline="img2img", init_image=image,
                                                                 strength=0.75),
                    "img2img strength 1.0": dataclasses.replace(base, pipeline="img2img", init_image=image,
                                                                strength=1.0)}
        for control_type in engine.spec.control_types:
            variants[f"controlnet {control_type}"] = dataclasses.replace(
                base, pipeline="controlnet", control=Control(type=control_type, image=image))
        times: dict[str, list[float]] = {name: [] for name in variants}
        runs = (args.rounds + 1) * len(variants)
        with steps(runs, f"{model}: {runs} generations timed") as step:
            for i in range(args.rounds + 1):  # the first round loads the derived pipelines: not counted
                for name, req in variants.items():
                    step(f"{model}: round {i} of {args.rounds}, {name}" + (" (warm-up)" if not i else ""))
                    t0 = time.perf_counter()
                    engine.generate(req)
                    if i:
                        times[name].append((time.perf_counter() - t0) * 1000)
        reference = statistics.median(times["txt2img"])
        print(f"{model} at {size}x{size}, {args.steps} steps, {args.rounds} rounds (median ms, ratio to txt2img):")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"  {name:24} {median:8.1f} ms   x{median / reference:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
