"""Tolerant-path thresholds per model type and environment pair, from the calibration.

An environment's *kind* is its device kind and dtype ("cpu/float32", "cuda/float16").
Two outputs of one environment class are bit-identical, so the exact rung decides;
otherwise the calibration (`seedgrid calibrate`, bench/calibrate_verification.py) gives
a threshold per pair of kinds, measured on honest outputs of that pair against every
cheat. A model type's default pipeline is calibrated under its name ("RealisticVision"), each
other pipeline on its own ("RealisticVision/img2img", `calibration_key`): an img2img answer
lands elsewhere than a text-to-image one, and its cheats (another strength) are its own.
Which one applies:
1. a setting (SEEDGRID_VERIFICATION_THRESHOLDS) for the model type, when an operator set one;
2. the calibrated threshold of the pair (the validator's kind, the miner's claimed kind);
3. a pair the calibration has not measured (a GPU miner against a CPU validator, or no
   environment at all): the strictest threshold calibrated for that model type, logged.
   A miner's claim can therefore only choose among measured thresholds, never loosen one
   beyond what was measured, and an unmeasured pair is judged strictly, never waved through;
4. a pipeline the calibration has not measured: the strictest threshold calibrated for any
   of the model type's pipelines, logged;
5. a model type with no calibration at all: FALLBACK, logged.
The calibration file is the committed calibration.json beside this module, or the one
an operator wrote with `seedgrid calibrate` (SEEDGRID_CALIBRATION_FILE).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

CALIBRATION = Path(__file__).with_name("calibration.json")
FALLBACK = 0.999999  # only for a model type no calibration has measured


@dataclass(frozen=True)
class Threshold:
    similarity: float
    basis: str  # where it came from, for the verdict's reason and the logs

    @property
    def distance(self) -> float:
        return 1.0 - self.similarity


def kind_of(environment: dict | None) -> str | None:
    """'cpu/float32' for an environment fingerprint; None when it does not say."""
    if not isinstance(environment, dict):
        return None
    device, dtype = environment.get("device"), environment.get("dtype")
    if not isinstance(device, str) or not isinstance(dtype, str) or not device or not dtype:
        return None
    return f"{device.split(':')[0]}/{dtype}"


def calibration_key(model: str, pipeline: str | None = None) -> str:
    """The calibration row of a model type's pipeline: its name for the default pipeline, else "Model/pipeline"."""
    from app.protocol.catalogue import CATALOGUE

    spec = CATALOGUE.get(model)
    if not pipeline or spec is None or pipeline == spec.pipeline.value:
        return model
    return f"{model}/{pipeline}"


def split_key(key: str) -> tuple[str, str | None]:
    """(model, pipeline) of a calibration row's key; None for the model type's default pipeline."""
    model, _, pipeline = key.partition("/")
    return model, pipeline or None


def pair_key(a: str, b: str) -> str:
    return "~".join(sorted((a, b)))


@lru_cache(maxsize=8)
def load(path: Path = CALIBRATION) -> dict[str, dict[str, float]]:
    """model type -> {pair key -> threshold similarity} from a calibration file ({} when unreadable)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        log.warning("calibration file %s is missing or unreadable; thresholds fall back to %s", path, FALLBACK)
        return {}
    out = {}
    reference = kind_of(data.get("reference_environment")) or "cpu/float32"
    for model, row in data.get("models", {}).items():
        pairs = {key: float(p["threshold"]) for key, p in row.get("pairs", {}).items() if "threshold" in p}
        if not pairs and "threshold" in row:  # a format-1 file: one threshold, measured on the reference's kind
            pairs = {pair_key(reference, reference): float(row["threshold"])}
        out[model] = pairs
    return out


def calibration_path(settings=None) -> Path:
    return Path(settings.calibration_file) if settings is not None and settings.calibration_file else CALIBRATION


@lru_cache(maxsize=64)
def _warn_once(message: str) -> None:
    log.warning(message)


def threshold_for(model: str, settings=None, reference_env: dict | None = None,
                  miner_env: dict | None = None, pipeline: str | None = None) -> Threshold:
    if settings is not None and model in settings.verification_thresholds:
        return Threshold(float(settings.verification_thresholds[model]), "operator setting")
    calibrated = load(calibration_path(settings))
    row = calibration_key(model, pipeline)
    pairs = calibrated.get(row)
    if not pairs and row != model:
        siblings = [t for k, p in calibrated.items() if split_key(k)[0] == model for t in p.values()]
        if siblings:
            _warn_once(f"{row} has no calibration; judging it at the strictest threshold calibrated for {model}'s "
                       f"pipelines (run `seedgrid calibrate --models {row}` on the validator's hardware)")
            return Threshold(max(siblings), f"uncalibrated pipeline, strictest of {model}")
    if not pairs:
        _warn_once(f"{row} has no calibration; judging it at the fallback threshold {FALLBACK} "
                   f"(run `seedgrid calibrate --models {row}` on the validator's hardware)")
        return Threshold(FALLBACK, "fallback: not calibrated")
    ours, theirs = kind_of(reference_env), kind_of(miner_env)
    if ours and theirs and pair_key(ours, theirs) in pairs:
        key = pair_key(ours, theirs)
        return Threshold(pairs[key], f"calibrated {key}")
    strictest = max(pairs, key=pairs.get)
    _warn_once(f"{row}: no calibration for environments {ours or 'unknown'} against {theirs or 'unknown'}; "
               f"judging at the strictest calibrated threshold ({strictest}). Calibrate that pair with "
               "`seedgrid calibrate` to judge such miners on measured ground.")
    return Threshold(pairs[strictest], f"uncalibrated pair, strictest ({strictest})")
