"""Loading real checkpoints: a diffusers folder, or a single .safetensors file.

A folder is loaded with `from_pretrained` (Hugging Face offline: nothing is fetched).
A single file (an original SD1.5 or SDXL checkpoint, as most community models ship) is
loaded with `from_single_file`, which needs the component configs from a local diffusers
folder of the same architecture, since the Hub cannot be reached.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from safetensors import SafetensorError

from app.protocol.catalogue import Architecture, ModelSpec
from app.protocol.errors import CheckpointError

log = logging.getLogger(__name__)

PIPELINE_CLASSES = {
    Architecture.SD15: "StableDiffusionPipeline",
    Architecture.SDXL: "StableDiffusionXLPipeline",
    Architecture.TEXT_TO_VIDEO: "TextToVideoSDPipeline",
}
SINGLE_FILE_ARCHITECTURES = (Architecture.SD15, Architecture.SDXL)


def quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    # TextToVideoSDPipeline still works; its deprecation notice says nothing an operator can act on.
    warnings.filterwarnings("ignore", message=".*TextToVideoSDPipeline has been deprecated.*")


def pipeline_class(spec: ModelSpec):
    import diffusers

    return getattr(diffusers, PIPELINE_CLASSES[spec.architecture])


def load_pipeline(spec: ModelSpec, path: Path, *, device: str, dtype: str, config: Path | None = None):
    """Load `spec`'s pipeline from `path` onto `device` in `dtype`, ready to generate."""
    quiet_libraries()
    import torch

    torch_dtype = getattr(torch, dtype)
    cls = pipeline_class(spec)
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"no checkpoint for {spec.name} at {path}; run `seedgrid models build-dev` for the dev checkpoints, "
            f"or point SEEDGRID_MODEL_PATHS at a diffusers folder or .safetensors file"
        )
    if path.suffix == ".safetensors" and spec.architecture not in SINGLE_FILE_ARCHITECTURES:
        raise CheckpointError(f"{spec.name} ({spec.architecture.value}) loads from a diffusers folder, not a single file")

    def from_folder():
        if not (path / "model_index.json").exists():
            raise CheckpointError(f"{path} is not a diffusers pipeline folder (no model_index.json)")
        return cls.from_pretrained(path, dtype=torch_dtype, local_files_only=True, low_cpu_mem_usage=False)

    pipe = _load(path, spec.name, from_folder,
                 lambda: cls.from_single_file(str(path), config=str(config), dtype=torch_dtype, local_files_only=True),
                 config, f"loading {path.name} needs the component configs of a local {spec.architecture.value} "
                         f"diffusers folder (the Hub cannot be reached): set SEEDGRID_MODEL_CONFIGS for {spec.name}")
    if not isinstance(pipe, cls):
        raise CheckpointError(f"{path} holds a {type(pipe).__name__}, not the {cls.__name__} {spec.name} needs")
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def load_controlnet(path: Path, *, device: str, dtype: str, config: Path | None = None):
    """A ControlNetModel from a diffusers folder, or a single .safetensors file with the folder of its config."""
    quiet_libraries()
    import torch
    from diffusers import ControlNetModel

    torch_dtype = getattr(torch, dtype)
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no ControlNet at {path}; run `seedgrid models build-dev` for the dev ones, or point "
                              f"SEEDGRID_MODEL_PATHS' \"<model>/controlnet-<type>\" entry at a folder or .safetensors file")
    model = _load(path, "the ControlNet", lambda: ControlNetModel.from_pretrained(path, torch_dtype=torch_dtype,
                                                                                  local_files_only=True),
                  lambda: ControlNetModel.from_single_file(str(path), config=str(config), torch_dtype=torch_dtype,
                                                           local_files_only=True),
                  config, f"loading {path.name} needs the config folder of a ControlNet of its size (the Hub cannot "
                          f"be reached): set its SEEDGRID_MODEL_CONFIGS entry")
    return model.to(device)


def _load(path: Path, what: str, from_folder, from_file, config: Path | None, needs_config: str):
    """A folder with from_folder(), a .safetensors file with from_file() once `config` is a folder;
    any failure as a CheckpointError naming `what` and `path`."""
    try:
        if path.is_dir():
            return from_folder()
        if path.suffix == ".safetensors":
            if config is None or not Path(config).is_dir():
                raise CheckpointError(needs_config)
            return from_file()
        raise CheckpointError(f"{path} is neither a diffusers folder nor a .safetensors file")
    except CheckpointError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
        # SafetensorError: a corrupted weights file (which component loads first varies)
        raise CheckpointError(f"could not load {what} from {path}: {exc}") from exc
