"""Calibrate the trajectory check's tolerances: honest miners in other environments against every cheat.

Writes app/verification/trajectory_calibration.json (the tolerances the validator's
trajectory judge reads unless SEEDGRID_TRAJECTORY_TOLERANCE / _PIXEL_TOLERANCE are set) and
prints, per diffusion type, the honest maxima (another thread count; another CPU ISA), each
cheat's minimum and the margins (app/testkit/trajectory_calibration.py).
Run: .venv/bin/python bench/calibrate_trajectory.py [--challenges 24] [--no-isa]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.config import get_settings  # noqa: E402
from app.progress import steps  # noqa: E402
from app.testkit.trajectory_calibration import DIFFUSION_TYPES, combine, measure  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "app" / "verification" / "trajectory_calibration.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--challenges", type=int, default=24)
    parser.add_argument("--no-isa", action="store_true", help="skip the other-ISA subprocess")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    t0 = time.time()
    total = args.challenges * len(DIFFUSION_TYPES)
    with steps(total, f"{total} challenges measured") as step:  # each type's ISA recording runs before its first
        rows = [measure(m, args.challenges, get_settings(), isa=not args.no_isa, log=step) for m in DIFFUSION_TYPES]
    result = {**combine(rows), "date": time.strftime("%Y-%m-%d"), "seconds": round(time.time() - t0)}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'type':<16} {'honest step':>12} {'closest cheat':>14} {'margin':>8} {'honest px':>10} {'other image':>12}")
    for r in rows:
        print(f"{r['model']:<16} {max(r['honest_step'].values()):>12.2e} {min(v for k, v in r['cheats'].items() if k != 'other_image'):>14.2e} "
              f"{r['step_margin']:>7.0f}x {max(r['honest_pixel_gap'].values()):>10.3f} {r['cheats']['other_image']:>12.2f}")
    print(f"tolerances: step {result['step_tolerance']:.3g} (relative L2), pixels {result['pixel_tolerance']:.3g} "
          f"(mean levels); written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
