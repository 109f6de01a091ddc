"""The backends, keyed by (architecture, pipeline): the one door to generation.

A model type is served when a backend is registered for its catalogue key. Backend
packages keep their heavy imports (torch, diffusers) inside the functions that need
them, so this module is cheap to import from the miner API or the settings check.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from app.backends.base import Backend, Engine, Placement
from app.backends.diffusers import BACKEND as DIFFUSERS
from app.protocol.catalogue import CATALOGUE, ModelSpec, get_spec
from app.protocol.errors import InvalidRequest
from app.settings import Settings

BACKENDS: Mapping[tuple, Backend] = MappingProxyType({key: b for b in (DIFFUSERS,) for key in b.keys})

# Model types some backend here can generate, in catalogue order.
SERVED_MODELS: tuple[str, ...] = tuple(n for n, s in CATALOGUE.items() if s.backend_key in BACKENDS)


def backend_for(spec: ModelSpec) -> Backend:
    try:
        return BACKENDS[spec.backend_key]
    except KeyError:
        raise InvalidRequest(
            "model",
            f"model type {spec.name!r} ({spec.architecture.value}, {spec.pipeline.value}) has no backend here; "
            f"served model types: {', '.join(SERVED_MODELS)}",
        ) from None


def served_spec(name: str) -> ModelSpec:
    """The spec of a model type a backend here serves; InvalidRequest('model') otherwise."""
    spec = get_spec(name)
    backend_for(spec)
    return spec


def checkpoint_path(settings: Settings, model: str) -> Path:
    """SEEDGRID_MODEL_PATHS' entry for the model type, else its dev checkpoint."""
    spec = get_spec(model)
    return settings.model_paths.get(spec.name) or dev_checkpoint_path(settings, model)


def dev_checkpoint_path(settings: Settings, model: str) -> Path:
    return settings.dev_checkpoints_dir / get_spec(model).dev_checkpoint


def load_engine(settings: Settings, model: str) -> Engine:
    spec = served_spec(model)
    placement = Placement(device=settings.device, dtype=settings.dtype, threads=settings.threads)
    return backend_for(spec).load(spec, checkpoint_path(settings, model), placement,
                                  config=settings.model_configs.get(model))


def build_dev_checkpoint(settings: Settings, model: str, *, force: bool = False, random: bool = False) -> bool:
    """Build `model`'s dev checkpoint: the shipped trained weights, or seeded random ones with `random`."""
    spec = served_spec(model)
    return backend_for(spec).build_dev_checkpoint(spec, dev_checkpoint_path(settings, model), force=force,
                                                  random=random)
