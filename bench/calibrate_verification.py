"""Calibrate the tolerant-path thresholds and write the committed app/verification/calibration.json.

The measurement is app/testkit/calibration.py (also `seedgrid calibrate`): per model type,
`--challenges` challenges drawn like a validator's (prompts, seeds, guidance and steps
varied, half at the local network's sizes and half at the catalogue defaults); honest
outputs from other thread counts and CPU ISAs (and, for video, the encoder's own noise)
against every cheat. It prints the honest max and p99, every cheat's minimum, the
threshold and the margin.

Run: .venv/bin/python bench/calibrate_verification.py [--challenges 24] [--models A,B] [--sizes local,default]
     [--reduced-every 8] [--no-write]
A run over some sizes keeps what the committed file measured at the others (one row judges both).
Each pipeline of a model type is its own row: `--models RealisticVision/img2img,RealisticVision/controlnet`.

Pairs measured on other hardware (a GPU: bench/device_determinism.py --challenges 24 --json
pairs.json) are added to the committed calibration with --add-pairs pairs.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.backends.registry import SERVED_MODELS  # noqa: E402
from app.config import get_settings  # noqa: E402
from app.testkit.calibration import add_pairs, calibrate, targets, write  # noqa: E402
from app.verification.thresholds import CALIBRATION  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--challenges", type=int, default=24)
    parser.add_argument("--models", default=",".join(targets(SERVED_MODELS)),
                        help="calibration rows: a model type (its default pipeline) or Model/pipeline "
                             "(RealisticVision/img2img); all served ones when not given")
    parser.add_argument("--sizes", default="local,default", help="local (the local network's) and/or default sizes")
    parser.add_argument("--reduced-every", type=int, default=8,
                        help="the reduced-precision cheat on every Nth challenge (bfloat16 is ~75x slower on a CPU)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not update calibration.json")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keep each output and distance here as it is made: run again with the same arguments "
                             "and folder to resume a stopped calibration")
    parser.add_argument("--add-pairs", type=Path, default=None,
                        help="only add the environment pairs of a bench/device_determinism.py --json file")
    args = parser.parse_args()
    if args.add_pairs:
        import json

        doc = json.loads(CALIBRATION.read_text())
        for line in add_pairs(doc, json.loads(args.add_pairs.read_text())):
            print(line)
        if not args.no_write:
            CALIBRATION.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
            print(f"wrote {CALIBRATION.relative_to(ROOT)}")
        return 0
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    sizes = tuple(s.strip() for s in args.sizes.split(",") if s.strip())
    if not sizes or set(sizes) - {"local", "default"}:
        parser.error(f"--sizes takes local and/or default, got {args.sizes!r}")
    if args.reduced_every < 1:
        parser.error("--reduced-every takes a whole number of challenges, 1 or more")
    from app.progress import steps

    try:
        with steps(len(models) * args.challenges, f"{len(models) * args.challenges} challenges measured") as step:
            doc = calibrate(models, args.challenges, get_settings(), sizes=sizes, reduced_every=args.reduced_every,
                            work=args.work_dir, progress=step)
    except ValueError as exc:  # a work folder of another plan
        parser.error(str(exc))
    for model, row in doc["models"].items():
        print(f"\n{model}: {row['challenges']} challenges, threshold distance {row['threshold_distance']:.2e}, "
              f"margin x{row['margin']:,.1f} (closest: {row['closest_cheat']})")
        for name, st in sorted(row["honest_by_variant"].items()):
            print(f"    honest {name:22} max {st['max']:.2e}  p99 {st['p99']:.2e}  median {st['median']:.2e}")
        for name, st in sorted(row["cheats"].items(), key=lambda kv: kv[1]["min"]):
            verdict = "fails" if st["min"] > row["threshold_distance"] else "PASSES"
            print(f"    cheat  {name:22} min {st['min']:.2e}  median {st['median']:.2e}  -> {verdict}")
    print(f"\ncalibration took {doc['seconds']} s")
    if not args.no_write:
        write(doc, CALIBRATION)
        print(f"wrote {CALIBRATION.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
