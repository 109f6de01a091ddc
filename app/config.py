"""The settings as every process reads them: app/settings.py's values, checked against the domain.

app/settings.py knows the SEEDGRID_* names and types and imports no domain package.
Here each value that names a model type, holds challenge parameters or a tier table,
or bounds a time limit is checked against the catalogue, the backends and the scoring
rules when it is read, so a bad value stops a process at start with one line that
names the variable (app/explain.py), never in the middle of a round.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from pydantic import field_validator, model_validator

from app.backends.registry import SERVED_MODELS
from app.generation.limits import longest_hard_limit
from app.protocol.catalogue import checkpoint_keys, get_spec
from app.protocol.errors import InvalidRequest
from app.protocol.request import parse_params
from app.scoring.tiers import TierTable
from app.settings import Settings as _Fields


class Settings(_Fields):
    """One settings object for every Seedgrid process (see app/settings.py for the fields)."""

    @field_validator("challenge_params", "verification_thresholds")
    @classmethod
    def _served_models(cls, value: dict, info) -> dict:
        for name in value:
            if name not in SERVED_MODELS:
                raise ValueError(f"unknown model type {name!r} in {info.field_name}; known: {', '.join(SERVED_MODELS)}")
        return value

    @field_validator("challenge_params")
    @classmethod
    def _challenge_params(cls, value: dict[str, dict]) -> dict[str, dict]:
        # Checked against the catalogue's bounds now: a bad entry would otherwise fail every
        # round while still using up each miner's quota.
        for name, params in value.items():
            try:
                parse_params(params, get_spec(name))
            except InvalidRequest as exc:
                raise ValueError(f"{name}: {exc.field}: {exc.message}") from None
        return value

    @field_validator("calibration_file")
    @classmethod
    def _calibration_file(cls, value: Path | None) -> Path | None:
        # A validator must not start on a file it cannot read: every tolerant verdict would
        # fall back to one strict threshold.
        if value is None:
            return value
        try:
            doc = json.loads(Path(value).read_text())
        except OSError as exc:
            raise ValueError(f"cannot read {value} ({exc.strerror}); write one with `seedgrid calibrate`") from None
        except ValueError:
            raise ValueError(f"{value} is not JSON; write a calibration with `seedgrid calibrate`") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("models"), dict):
            raise ValueError(f"{value} holds no calibrated models; write one with `seedgrid calibrate`")
        return value

    @field_validator("tier_table")
    @classmethod
    def _tiers(cls, value: str | None) -> str | None:
        if value:
            try:
                TierTable.from_json(value)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"not a valid tier table: {exc}") from None
        return value

    @field_validator("model_paths", "model_configs")
    @classmethod
    def _known_models(cls, value: dict[str, Path], info) -> dict[str, Path]:
        known = checkpoint_keys()
        for name in value:
            if name not in known:
                raise ValueError(f"unknown model type or ControlNet {name!r} in {info.field_name}; known: "
                                 f"{', '.join(known)}")
        return value

    @model_validator(mode="after")
    def _visibility_above_limits(self) -> "Settings":
        longest = longest_hard_limit(self)
        if self.visibility_timeout is not None and self.visibility_timeout <= longest:
            raise ValueError(
                f"visibility_timeout ({self.visibility_timeout:g} s) must exceed the longest task time limit "
                f"({longest:g} s), or running tasks would be delivered twice; raise SEEDGRID_VISIBILITY_TIMEOUT "
                f"or lower SEEDGRID_TIMEOUT_SCALE"
            )
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
