"""The diffusers backend: SD1.5, SDXL and text-to-video pipelines, loaded once per process.

Imports nothing heavy at module level: torch and diffusers load inside `load` and
`build_dev_checkpoint`, so the registry is cheap to import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from app.backends.base import Placement
from app.protocol.catalogue import Architecture, ModelSpec, Pipeline


class DiffusersBackend:
    name = "diffusers"
    keys = frozenset({
        (Architecture.SD15, Pipeline.TEXT_TO_IMAGE),
        (Architecture.SDXL, Pipeline.TEXT_TO_IMAGE),
        (Architecture.TEXT_TO_VIDEO, Pipeline.TEXT_TO_VIDEO),
    })

    def __init__(self) -> None:
        self._runtime = None

    def runtime(self, placement: Placement):
        """Pin this process's torch settings (threads, deterministic kernels) once; the dtype is the placement's."""
        import dataclasses

        from app.backends.diffusers.determinism import configure, resolve_dtype

        if self._runtime is None:
            self._runtime = configure(placement.device, placement.dtype, placement.threads)
        return dataclasses.replace(self._runtime, dtype=resolve_dtype(placement.dtype, self._runtime.device))

    def load(self, spec: ModelSpec, checkpoint: Path, placement: Placement, *, config: Path | None = None,
             controlnets: Mapping[str, tuple[Path, Path | None]] | None = None):
        from app.backends.diffusers.engine import Engine

        return Engine.load(spec, checkpoint, self.runtime(placement), config, controlnets=controlnets)

    def build_dev_checkpoint(self, spec: ModelSpec, folder: Path, *, force: bool = False, random: bool = False) -> bool:
        from app.backends.diffusers.devbuild import build_dev_checkpoint
        from app.backends.diffusers.loading import quiet_libraries

        quiet_libraries()
        return build_dev_checkpoint(spec, folder, force=force, random=random)

    def build_dev_controlnet(self, spec: ModelSpec, control_type: str, base: Path, folder: Path, *,
                             force: bool = False) -> bool:
        from app.backends.diffusers.devbuild import build_dev_controlnet
        from app.backends.diffusers.loading import quiet_libraries

        quiet_libraries()
        return build_dev_controlnet(spec, control_type, base, folder, force=force)


BACKEND = DiffusersBackend()
