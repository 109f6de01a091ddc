"""The model catalogue: every model type Seedgrid knows, with the numbers SPEC.md gives.

One place for each decision: a model type's architecture, scheduler, default
parameters, bounds, timeout and incentive share live here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Mapping

from app.protocol.errors import InvalidRequest


class Architecture(str, Enum):
    """What a checkpoint is: the backend that can load it is chosen by this and the pipeline."""

    SD15 = "sd15"  # UNet2DConditionModel + AutoencoderKL + one CLIP text encoder
    SDXL = "sdxl"  # UNet2DConditionModel (text_time) + two CLIP text encoders
    TEXT_TO_VIDEO = "t2v"  # UNet3DConditionModel, text-to-video-ms-1.7b folder format
    TEXT = "text"  # OpenAI-compatible text server (vLLM)
    EXTERNAL = "external"  # a paid external image API


class Pipeline(str, Enum):
    """What a request asks the model to do."""

    TEXT_TO_IMAGE = "txt2img"
    TEXT_TO_VIDEO = "txt2vid"
    IMAGE_TO_IMAGE = "img2img"  # an init image and a strength (issue 11)
    CONTROLNET = "controlnet"  # text to image guided by a control image: canny, depth or normal (issue 11)
    CHAT = "chat"


class Payload(str, Enum):
    """Which request body a model type takes: the envelope is common, the payload per family."""

    DIFFUSION = "diffusion"  # prompt, seed, steps, guidance, sizes, scheduler (GenerationRequest)
    CHAT = "chat"  # messages for an OpenAI-compatible text server (issue 12)
    EXTERNAL_IMAGE = "external_image"  # a prompt for a paid image API (issue 12)


class MediaType(str, Enum):
    PNG = "image/png"
    MP4 = "video/mp4"
    TEXT = "text"


# Scheduler names accepted in params.scheduler, mapped to a diffusers class and the
# config overrides that make it the sampler its name says.
SCHEDULERS: Mapping[str, tuple[str, Mapping[str, object]]] = MappingProxyType(
    {
        "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": False}),
        "dpmpp_2m_karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}),
        "euler": ("EulerDiscreteScheduler", {}),
        "euler_a": ("EulerAncestralDiscreteScheduler", {"timestep_spacing": "trailing"}),
        "ddim": ("DDIMScheduler", {}),
    }
)


@dataclass(frozen=True)
class Bounds:
    """Parameter bounds enforced on both sides of the protocol (SPEC.md, Protocol)."""

    min_size: int = 64
    max_size: int = 1024
    size_multiple: int = 8  # the VAE downsamples by 8: other sizes change the latent grid
    max_steps: int = 50  # SPEC.md: steps <= 50 bounds a request's GPU cost
    max_frames: int = 64  # SPEC.md: frames <= 64
    max_guidance: float = 30.0
    max_prompt_chars: int = 1000
    max_prompt_tokens: int = 77  # CLIP's context length, start and end tokens included
    max_fps: int = 60


@dataclass(frozen=True)
class TextBounds:
    """A text model type's request bounds and what ends its answers (issue 12)."""

    max_tokens: int = 1024  # SPEC.md: Gemma7b, max_tokens 1024
    challenge_max_tokens: int = 64  # a challenge's answers stay short: the validator scores every one
    max_messages: int = 32
    max_chars: int = 16_000  # all messages together
    top_logprobs: int = 5  # the top-k a miner reports at each position (vLLM and OpenAI allow 20)
    max_top_logprobs: int = 20
    stop_strings: tuple[str, ...] = ("<end_of_turn>", "<eos>")  # the tokens that end a turn (Gemma's)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    architecture: Architecture
    incentive_share: float
    timeout_s: float  # how long a validator waits for this model's answer
    media_type: MediaType
    pipeline: Pipeline
    steps: int = 0
    width: int = 0
    height: int = 0
    guidance: float = 0.0
    scheduler: str = ""
    num_frames: int | None = None
    fps: int | None = None
    bounds: Bounds = field(default_factory=Bounds)
    dev_checkpoint: str = ""  # folder name under <state>/checkpoints/dev
    payload: Payload = Payload.DIFFUSION
    # Pipelines served beside `pipeline` (its default): a request for another is refused at parse
    # time, naming what the model serves.
    extra_pipelines: tuple[Pipeline, ...] = ()
    # ControlNets the model type has (their checkpoints: `controlnet_key` in SEEDGRID_MODEL_PATHS, or dev ones)
    control_types: tuple[str, ...] = ()
    text: TextBounds | None = None  # a text model type's bounds (payload CHAT)

    @property
    def backend_key(self) -> tuple[Architecture, Pipeline]:
        """The key app/backends/registry.py serves this model type by."""
        return self.architecture, self.pipeline

    @property
    def pipelines(self) -> tuple[Pipeline, ...]:
        """Every pipeline a request may ask of this model type, its default first."""
        return (self.pipeline, *self.extra_pipelines)

    @property
    def is_video(self) -> bool:
        return self.media_type is MediaType.MP4

    @property
    def default_cost(self) -> float:
        """GPU work of a request at the default parameters (see request_cost)."""
        return request_cost(self.steps, self.width, self.height, self.num_frames if self.is_video else None)

    @property
    def max_cost(self) -> float:
        """GPU work of the largest valid request."""
        b = self.bounds
        return request_cost(b.max_steps, b.max_size, b.max_size, b.max_frames if self.is_video else None)

    def max_output_bytes(self, width: int | None = None, height: int | None = None, frames: int | None = None) -> int:
        """The largest valid media file for these sizes (the bounds' largest when not given).

        Worst case measured on incompressible noise: PNG 1.002x and MP4 (CRF 2) 0.50x of
        the raw RGB bytes; 1.05x raw plus 4 KiB of container is the bound.
        """
        b = self.bounds
        frames = (frames or b.max_frames) if self.is_video else 1
        raw = (width or b.max_size) * (height or b.max_size) * 3 * frames
        return int(raw * 1.05) + 4096

    def max_reply_bytes(self, width: int | None = None, height: int | None = None, frames: int | None = None) -> int:
        """A miner's whole JSON reply: the media in base64 (4/3), a video's lossless frames too, plus 16 KiB."""
        media = self.max_output_bytes(width, height, frames)
        if self.is_video:  # the stacked PNG of its frames (1.05x raw bounds a PNG as well)
            media += self.max_output_bytes(width, height, frames)
        return -(-media // 3) * 4 + 16 * 1024

    def default_params(self) -> dict[str, object]:
        params: dict[str, object] = {
            "steps": self.steps,
            "guidance": self.guidance,
            "width": self.width,
            "height": self.height,
            "scheduler": self.scheduler,
        }
        if self.is_video:
            params["num_frames"] = self.num_frames
            params["fps"] = self.fps
        return params


def request_cost(steps: int, width: int, height: int, frames: int | None = None) -> float:
    """A request's GPU work in units of one denoising step over one pixel of one frame.

    Denoising dominates a diffusion request, and a step's cost grows with the latent's
    size; so steps x width x height x frames orders requests by GPU time.
    """
    return float(steps * width * height * (frames or 1))


_SD15_BOUNDS = Bounds(min_size=256, max_size=1024)
_SDXL_BOUNDS = Bounds(min_size=512, max_size=1536)
_VIDEO_BOUNDS = Bounds(min_size=64, max_size=512)
_SD15_CONTROLS = ("canny", "depth", "normal")
# Image-conditioned pipelines (issue 11), each calibrated on its own (calibration.json, "Model/pipeline").
# SDXL has no ControlNet here: its ControlNet checkpoints are 2.5 GB each, and no SDXL type of
# NicheImage's catalogue served one.
_SD15_EXTRA = (Pipeline.IMAGE_TO_IMAGE, Pipeline.CONTROLNET)
_SDXL_EXTRA = (Pipeline.IMAGE_TO_IMAGE,)

CATALOGUE: Mapping[str, ModelSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            ModelSpec("RealisticVision", Architecture.SD15, 0.22, 12, MediaType.PNG, Pipeline.TEXT_TO_IMAGE, 30, 512, 512, 7.0, "dpmpp_2m",
                      bounds=_SD15_BOUNDS, dev_checkpoint="RealisticVision", extra_pipelines=_SD15_EXTRA,
                      control_types=_SD15_CONTROLS),
            ModelSpec("DreamShaper", Architecture.SD15, 0.06, 12, MediaType.PNG, Pipeline.TEXT_TO_IMAGE, 30, 512, 768, 7.0, "dpmpp_2m_karras",
                      bounds=_SD15_BOUNDS, dev_checkpoint="DreamShaper", extra_pipelines=_SD15_EXTRA,
                      control_types=_SD15_CONTROLS),
            ModelSpec("AnimeV3", Architecture.SDXL, 0.30, 12, MediaType.PNG, Pipeline.TEXT_TO_IMAGE, 25, 1024, 1024, 7.0, "dpmpp_2m_karras",
                      bounds=_SDXL_BOUNDS, dev_checkpoint="AnimeV3", extra_pipelines=_SDXL_EXTRA),
            # Turbo-like SDXL: few steps, an ancestral sampler with trailing timesteps.
            ModelSpec("RealitiesEdgeXL", Architecture.SDXL, 0.26, 12, MediaType.PNG, Pipeline.TEXT_TO_IMAGE, 7, 1024, 1024, 5.5, "euler_a",
                      bounds=_SDXL_BOUNDS, dev_checkpoint="RealitiesEdgeXL", extra_pipelines=_SDXL_EXTRA),
            ModelSpec("TextToVideo", Architecture.TEXT_TO_VIDEO, 0.12, 60, MediaType.MP4, Pipeline.TEXT_TO_VIDEO, 25, 256, 256, 9.0, "dpmpp_2m",
                      num_frames=16, fps=8, bounds=_VIDEO_BOUNDS, dev_checkpoint="TextToVideo"),
            ModelSpec("Gemma7b", Architecture.TEXT, 0.01, 64, MediaType.TEXT, Pipeline.CHAT,
                      payload=Payload.CHAT, dev_checkpoint="Gemma7b", text=TextBounds()),
            ModelSpec("GoJourney", Architecture.EXTERNAL, 0.03, 12, MediaType.PNG, Pipeline.TEXT_TO_IMAGE,
                      payload=Payload.EXTERNAL_IMAGE),
        )
    }
)


def get_spec(name: str) -> ModelSpec:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise InvalidRequest("model", f"unknown model type {name!r}; known model types: {', '.join(CATALOGUE)}") from None


def controlnet_key(model: str, control_type: str) -> str:
    """The SEEDGRID_MODEL_PATHS (and _CONFIGS) entry of a model type's ControlNet: "RealisticVision/controlnet-canny"."""
    return f"{model}/controlnet-{control_type}"


def checkpoint_keys() -> tuple[str, ...]:
    """Every entry SEEDGRID_MODEL_PATHS may have: each model type, and each of its ControlNets."""
    return tuple(k for name, spec in CATALOGUE.items()
                 for k in (name, *(controlnet_key(name, t) for t in spec.control_types)))
