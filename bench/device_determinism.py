"""Determinism and distances on an accelerator: the procedure issue 9 asks of a lent GPU.

For every served model type, at the local network's challenge params (app/local_plan.py),
one process per (device, dtype) generates the same requests twice; the bench then reports:
- in-process: are the two runs' pixel hashes equal?
- across processes: does a second process of the same (device, dtype) give the same hashes?
- against the CPU fp32 reference: the largest distance (1 - cosine similarity of the
  verifier's embedding) of each (device, dtype), next to the calibrated threshold;
- with --challenges N: the calibration's own challenges (app/testkit/calibration.py: N per
  type, prompts, seeds, guidance and steps varied, at --sizes) generated once per (device,
  dtype); --json PATH writes their distances to the CPU fp32 reference per environment
  pair, which `bench/calibrate_verification.py --add-pairs PATH` turns into calibrated
  pair thresholds ("cpu/float32~cuda/float16") against the committed cheat distributions;
- --samples PATH: a sheet of the first request's picture per model type and (device, dtype)
  beside the CPU reference's, with their means and spreads printed (a black frame is NaN);
- with --unet: one SD1.5-size UNet (real widths, random weights) denoising step at
  512x512 with classifier-free guidance (batch 2), timed against the dev UNet's step in
  the same run: the ratio is what carries from one machine to another.

Run on the device machine: .venv/bin/python bench/device_determinism.py --device cuda
It runs on CPU too (--device cpu --dtypes float32), which checks the procedure itself.
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

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.local_plan import LOCAL_CHALLENGES  # noqa: E402

REPEAT = 3  # requests per model type generated twice (in-process) and in a second process (across)
PROMPTS = ("a red circle on a blue background", "three yellow squares in a row", "a green triangle, top left")


def requests(models: list[str], seeds: int, challenges: int, sizes: tuple[str, ...]) -> list[dict]:
    """Per type: `seeds` fixed prompts at the local params (repeated), then `challenges` calibration challenges."""
    from app.testkit.calibration import challenges as drawn

    out = []
    for m in models:
        out += [{"model": m, "prompt": PROMPTS[s % len(PROMPTS)], "seed": 1000 + s, "params": LOCAL_CHALLENGES[m],
                 "repeat": s < REPEAT} for s in range(seeds)]
        out += [{**r.to_dict(), "challenge": True} for r in (drawn(m, challenges, sizes) if challenges else [])]
    return out



def worker(folder: Path) -> None:
    """Subprocess mode: generate the requests on stdin (the first REPEAT per type twice); save pixels and hashes."""
    from app.backends.registry import load_engine
    from app.config import get_settings
    from app.protocol import media
    from app.protocol.request import parse_request

    settings = get_settings()
    hashes, env, engines = [], None, {}
    payload = json.load(sys.stdin)
    for i, raw in enumerate(payload["requests"]):
        req = parse_request({k: v for k, v in raw.items() if k not in ("repeat", "challenge")})
        engine = engines.get(req.model) or engines.setdefault(req.model, load_engine(settings, req.model))
        # the frames before encoding: what the verifier compares (video too), no ffmpeg needed
        first = engine.render(req)[0]
        second = engine.render(req)[0] if raw.get("repeat") else first
        np.save(folder / f"{i}.npy", first)
        hashes.append([media.pixel_sha256(first), media.pixel_sha256(second)])
        env = engine.environment
    (folder / "result.json").write_text(json.dumps({"hashes": hashes, "environment": env}))


def run_process(device: str, dtype: str, reqs: list[dict], tmp: Path, tag: str) -> tuple[dict, list[np.ndarray]]:
    folder = tmp / tag
    folder.mkdir()
    env = {**os.environ, "SEEDGRID_DEVICE": device, "SEEDGRID_DTYPE": dtype}
    t0 = time.time()
    proc = subprocess.run([sys.executable, __file__, "--worker", str(folder)], input=json.dumps({"requests": reqs}), text=True,
                          capture_output=True, env=env, cwd=ROOT)
    if proc.returncode:
        raise SystemExit(f"{tag} failed:\n{proc.stderr[-3000:]}")
    result = json.loads((folder / "result.json").read_text())
    print(f"{tag}: {len(reqs)} requests in {time.time() - t0:.0f} s", flush=True)
    return result, [np.load(folder / f"{i}.npy") for i in range(len(reqs))]


def unet_ratio(device: str, dtype: str, rounds: int) -> None:
    """One denoising step of an SD1.5-size UNet at 512x512 (latents 64x64, CFG batch 2) vs the dev UNet's."""
    import torch
    from diffusers import UNet2DConditionModel

    from app.backends.registry import dev_checkpoint_path
    from app.config import get_settings

    torch_dtype = getattr(torch, dtype)
    real = UNet2DConditionModel(  # SD1.5's published UNet config, random weights (no download)
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    ).to(device, torch_dtype).eval()
    dev = UNet2DConditionModel.from_pretrained(dev_checkpoint_path(get_settings(), "RealisticVision") / "unet")
    dev = dev.to(device, torch_dtype).eval()

    def step(unet, width: int) -> float:
        latents = torch.randn(2, 4, 64, 64, device=device, dtype=torch_dtype)
        text = torch.randn(2, 77, width, device=device, dtype=torch_dtype)
        times = []
        with torch.inference_mode():
            for i in range(rounds + 2):
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                unet(latents, 500, encoder_hidden_states=text)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                if i >= 2:
                    times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times)

    params = sum(p.numel() for p in real.parameters()) / 1e6
    t_real, t_dev = step(real, 768), step(dev, dev.config.cross_attention_dim)
    print(f"UNet step at 512x512, CFG batch 2, {device} {dtype}: SD1.5 size ({params:.0f}M params) "
          f"{t_real:.1f} ms | dev UNet {t_dev:.1f} ms | ratio {t_real / t_dev:.1f}")


def save_samples(path: Path, rows: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
    """One sheet: per (model, device, dtype) the first frame beside the CPU fp32 reference's, 128 px tiles."""
    from PIL import Image

    tiles = [np.concatenate([np.asarray(Image.fromarray(x[0]).resize((128, 128))) for x in (pixels, ref)], axis=1)
             for _, pixels, ref in rows]
    Image.fromarray(np.concatenate(tiles, axis=0)).save(path)
    for tag, pixels, ref in rows:
        print(f"  sample {tag}: mean {pixels.mean():.1f} std {pixels.std():.1f} (reference {ref.mean():.1f}, "
              f"{ref.std():.1f})")


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        worker(Path(sys.argv[2]))
        return 0
    from app.backends.registry import SERVED_MODELS
    from app.verification.fingerprint import similarity
    from app.verification.thresholds import kind_of, pair_key, threshold_for

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtypes", default="float16,float32")
    parser.add_argument("--models", default=",".join(SERVED_MODELS))
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--challenges", type=int, default=0, help="calibration challenges per type")
    parser.add_argument("--sizes", default="local,default")
    parser.add_argument("--json", type=Path, default=None, help="write the challenges' distances per pair here")
    parser.add_argument("--samples", type=Path, default=None, help="write a sheet of sample pictures (PNG) here")
    parser.add_argument("--unet", action="store_true", help="also time an SD1.5-size UNet step at 512x512")
    parser.add_argument("--unet-rounds", type=int, default=10)
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    reqs = requests(models, args.seeds, args.challenges, tuple(x for x in args.sizes.split(",") if x))
    repeated = [r for r in reqs if r.get("repeat")]
    measured: dict = {"reference_environment": None, "pairs": {}}
    samples: list = []
    from app.progress import steps

    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    with tempfile.TemporaryDirectory() as tmp, steps(1 + 2 * len(dtypes), "generation processes run") as step:
        step(f"cpu float32 (the reference): {len(reqs)} requests")
        ref, reference = run_process("cpu", "float32", reqs, Path(tmp), "cpu-float32-reference")
        ref_env = measured["reference_environment"] = ref["environment"]
        for dtype in dtypes:
            step(f"{args.device} {dtype}: {len(reqs)} requests")
            a, pixels = run_process(args.device, dtype, reqs, Path(tmp), f"{args.device}-{dtype}-a")
            step(f"{args.device} {dtype} again, in another process: {len(repeated)} requests")
            b, _ = run_process(args.device, dtype, repeated, Path(tmp), f"{args.device}-{dtype}-b")
            env = a["environment"]
            pair = pair_key(kind_of(ref_env), kind_of(env))
            print(f"\n{args.device} {dtype} ({env.get('device_name')}, class {env.get('class')})")
            for model in models:
                idx = [i for i, r in enumerate(reqs) if r["model"] == model]
                rep = [i for i in idx if reqs[i].get("repeat")]
                same_process = all(a["hashes"][i][0] == a["hashes"][i][1] for i in rep)
                across = all(a["hashes"][i][0] == b["hashes"][repeated.index(reqs[i])][0] for i in rep)
                dists = [1 - similarity(reference[i], pixels[i]) if pixels[i].shape == reference[i].shape else 1.0
                         for i in idx]
                calibrated = [d for i, d in zip(idx, dists) if reqs[i].get("challenge")]
                if calibrated:
                    measured["pairs"].setdefault(model, {})[pair] = {"distances": calibrated, "environment": env}
                samples.append((f"{model} {args.device} {dtype}", pixels[idx[0]], reference[idx[0]]))
                print(f"  {model:16} same process {'equal' if same_process else 'DIFFER'} | across processes "
                      f"{'equal' if across else 'DIFFER'} | distance to CPU fp32 max {max(dists):.2e} median "
                      f"{statistics.median(dists):.2e} over {len(dists)} (threshold's "
                      f"{threshold_for(model, None, ref_env, env).distance:.2e})")
    if args.json:
        args.json.write_text(json.dumps(measured, indent=1))
    if args.samples:
        save_samples(args.samples, samples)
    if args.unet:
        unet_ratio(args.device, "float16" if args.device.startswith("cuda") else "float32", args.unet_rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
