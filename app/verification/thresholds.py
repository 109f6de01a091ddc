"""Cosine-similarity thresholds per model type, from bench/calibrate_verification.py.

The committed values come from calibration.json beside this file (honest outputs from
other thread counts and CPU ISAs against every cheat, with the margin); a setting
(SEEDGRID_VERIFICATION_THRESHOLDS) overrides them per model type.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

CALIBRATION = Path(__file__).with_name("calibration.json")
FALLBACK = 0.999999  # used only for a model type the calibration has not measured


@lru_cache(maxsize=1)
def calibrated() -> dict[str, float]:
    try:
        data = json.loads(CALIBRATION.read_text())
    except (OSError, ValueError):
        return {}
    return {model: float(row["threshold"]) for model, row in data.get("models", {}).items()}


def threshold_for(model: str, settings=None) -> float:
    if settings is not None and model in settings.verification_thresholds:
        return float(settings.verification_thresholds[model])
    return calibrated().get(model, FALLBACK)
