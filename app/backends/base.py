"""What every backend provides: an engine per model type that turns a request into media.

A backend serves one or more (architecture, pipeline) keys of the catalogue. The GPU
worker, the miner API and the validator's reproduction reach it through
app/backends/registry.py only, never by importing a backend package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Protocol

import numpy as np

from app.protocol.catalogue import Architecture, ModelSpec, Pipeline
from app.protocol.request import GenerationRequest


@dataclass
class GenerationOutput:
    request: GenerationRequest
    media_type: str
    data: bytes
    pixels: np.ndarray = field(repr=False)
    pixel_sha256: str
    timings: dict[str, float]
    environment: dict[str, object]
    frames: bytes | None = None  # video: every frame losslessly (media.encode_frames), what is hashed and verified


class Engine(Protocol):
    """One loaded model, built once per worker process and reused for every request."""

    spec: ModelSpec
    checkpoint: Path
    load_seconds: float
    environment: dict[str, object]

    def generate(self, request: GenerationRequest, *, deadline: float | None = None) -> GenerationOutput:
        """Generate; with `deadline` (time.monotonic()), stop with GenerationTimeout once it passes."""


@dataclass(frozen=True)
class Placement:
    """Where and how an engine runs: part of the environment every output carries."""

    device: str = "auto"  # auto, cpu, cuda or cuda:N
    dtype: str = "auto"  # auto, float32, float16, bfloat16
    threads: int = 1


class Backend(Protocol):
    name: str
    keys: frozenset[tuple[Architecture, Pipeline]]

    def load(self, spec: ModelSpec, checkpoint: Path, placement: Placement, *, config: Path | None = None,
             controlnets: Mapping[str, tuple[Path, Path | None]] | None = None) -> Engine:
        """Load the model type's checkpoint (a folder, or a single file with `config`); `controlnets`:
        where each control type's ControlNet is (and its config folder), loaded on first use."""

    def build_dev_checkpoint(self, spec: ModelSpec, folder: Path, *, force: bool = False, random: bool = False) -> bool:
        """Write a tiny checkpoint of the real architecture; False when a complete one is there."""

    def build_dev_controlnet(self, spec: ModelSpec, control_type: str, base: Path, folder: Path, *,
                             force: bool = False) -> bool:
        """Write the dev ControlNet of `control_type` made from the dev checkpoint at `base`; False when there."""
