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
from app.protocol.catalogue import CATALOGUE, ModelSpec, controlnet_key, get_spec
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


def dev_folder(root: Path, model: str, control_type: str | None = None) -> Path:
    """Where a model type's dev checkpoint, or one of its dev ControlNets, lives under `root`."""
    name = get_spec(model).dev_checkpoint
    return root / name if control_type is None else root / "controlnet" / f"{name}-{control_type}"


def dev_checkpoint_path(settings: Settings, model: str) -> Path:
    return dev_folder(settings.dev_checkpoints_dir, model)


def dev_controlnet_path(settings: Settings, model: str, control_type: str) -> Path:
    return dev_folder(settings.dev_checkpoints_dir, model, control_type)


def controlnet_paths(settings: Settings, model: str) -> dict[str, tuple[Path, Path | None]]:
    """Each ControlNet of the model type: (its SEEDGRID_MODEL_PATHS entry, else its dev one; its config folder)."""
    spec = get_spec(model)
    return {t: (settings.model_paths.get(controlnet_key(spec.name, t)) or dev_controlnet_path(settings, model, t),
                settings.model_configs.get(controlnet_key(spec.name, t)))
            for t in spec.control_types}


def load_engine(settings: Settings, model: str) -> Engine:
    spec = served_spec(model)
    placement = Placement(device=settings.device, dtype=settings.dtype, threads=settings.threads)
    return backend_for(spec).load(spec, checkpoint_path(settings, model), placement,
                                  config=settings.model_configs.get(model),
                                  controlnets=controlnet_paths(settings, model))


def build_dev_checkpoint(settings: Settings, model: str, *, force: bool = False, random: bool = False) -> bool:
    """Build `model`'s dev checkpoint (the shipped trained weights, or seeded random ones with
    `random`) and its dev ControlNets; True when anything was built."""
    return build_dev_folders(settings.dev_checkpoints_dir, model, force=force, random=random)


def build_dev_folders(root: Path, model: str, *, force: bool = False, random: bool = False) -> bool:
    """`build_dev_checkpoint` under `root` (the tests' shared folder). A ControlNet's manifest
    names the weights of the checkpoint it was made from, so it is rebuilt when they change."""
    spec = served_spec(model)
    backend = backend_for(spec)
    base = dev_folder(root, model)
    built = backend.build_dev_checkpoint(spec, base, force=force, random=random)
    for t in spec.control_types:
        built |= backend.build_dev_controlnet(spec, t, base, dev_folder(root, model, t), force=force)
    return built
