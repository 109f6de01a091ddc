"""The dev text models in the state folder: the shipped folders (devtrain.py) copied, never trained.

`dev_text_folder(settings, name)` is where `seedgrid llm serve` finds a dev model
(`<state>/checkpoints/dev/<name>`); SEEDGRID_MODEL_PATHS names another folder for a real
model. `build_dev_text` copies every shipped folder whose copy is missing or stale.
"""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

from app.llm.devtrain import MODELS, WEIGHTS
from app.settings import Settings


def dev_text_folder(settings: Settings, name: str) -> Path:
    return settings.dev_checkpoints_dir / name


def shipped(name: str) -> Path:
    return WEIGHTS / name


def build_dev_text(settings: Settings, *, force: bool = False) -> dict[str, bool]:
    """{model folder: copied now} for every dev text model; an up-to-date copy is left alone."""
    built = {}
    for name in MODELS:
        source, target = shipped(name), dev_text_folder(settings, name)
        if not (source / "model.safetensors").exists():
            raise FileNotFoundError(f"the shipped dev text model {source} is missing; `seedgrid llm train-dev` "
                                    "writes it")
        current = target.is_dir() and not filecmp.dircmp(source, target).diff_files and all(
            (target / f.name).exists() for f in source.iterdir())
        if current and not force:
            built[name] = False
            continue
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target)
        built[name] = True
    return built
