"""A generation request, parsed and validated against the model's bounds.

`parse_request` takes the JSON-shaped dict of the protocol (SPEC.md: POST /v1/generate)
and returns a frozen `GenerationRequest` with every default filled in from the
catalogue, or raises `InvalidRequest` naming the first wrong field. The prompt's token
count is checked by the engine, which holds the model's tokenizer.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from app.protocol.catalogue import (
    CATALOGUE,
    SCHEDULERS,
    ModelSpec,
    Payload,
    Pipeline,
    get_spec,
    request_cost,
)
from app.protocol.errors import InvalidRequest

MAX_SEED = 2**32 - 1  # a uint32 seed is portable across every generator implementation

_TOP_FIELDS = {"request_id", "kind", "model", "prompt", "negative_prompt", "seed", "params",
               "pipeline", "init_image", "strength", "control"}
_PARAM_FIELDS = {"steps", "guidance", "width", "height", "num_frames", "fps", "scheduler"}
_CONTROL_FIELDS = {"type", "image", "conditioning_scale", "guidance_start", "guidance_end"}
KINDS = ("challenge", "inference")
DEFAULT_STRENGTH = 0.75  # img2img: how much of the init image is noised away (0 keeps it, 1 replaces it)
MAX_CONDITIONING_SCALE = 2.0


@dataclass(frozen=True)
class GenerationParams:
    steps: int
    guidance: float
    width: int
    height: int
    scheduler: str
    num_frames: int | None = None
    fps: int | None = None

    @property
    def cost(self) -> float:
        return request_cost(self.steps, self.width, self.height, self.num_frames)


@dataclass(frozen=True)
class Control:
    """A ControlNet's conditioning: its type, the image (base64, as sent) and how strongly and when it guides."""

    type: str  # canny (the engine makes the edge map), depth or normal (the image is the map)
    image: str
    conditioning_scale: float = 1.0
    guidance_start: float = 0.0
    guidance_end: float = 1.0


@dataclass(frozen=True)
class GenerationRequest:
    request_id: str
    kind: str
    model: str
    prompt: str
    negative_prompt: str
    seed: int
    params: GenerationParams
    pipeline: str = ""  # parse_request fills in the model type's default (txt2img, txt2vid)
    init_image: str | None = None  # img2img: base64 PNG, JPEG or WebP, as sent
    strength: float | None = None  # img2img
    control: Control | None = None  # controlnet

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; parse_request(r.to_dict()) == r. A request of the model type's default
        pipeline has no conditioning fields and no `pipeline`: the same bytes as before
        pipelines existed, so miners of an earlier release still read it."""
        data = asdict(self)
        data["params"] = {k: v for k, v in data["params"].items() if v is not None}
        for name in ("init_image", "strength", "control"):
            if data[name] is None:
                del data[name]
        if not self.pipeline or self.pipeline == CATALOGUE[self.model].pipeline.value:
            del data["pipeline"]
        return data


def _int(value: Any, field: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise InvalidRequest(field, f"must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise InvalidRequest(field, f"must be between {lo} and {hi}, got {value}")
    return value


def _number(value: Any, field: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequest(field, f"must be a number, got {value!r}")
    if not lo <= value <= hi:
        raise InvalidRequest(field, f"must be between {lo} and {hi}, got {value}")
    return float(value)


def _text(value: Any, field: str, max_chars: int, required: bool) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(field, f"must be a string, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(field, "is not valid Unicode text (it holds a lone surrogate escape such as \\ud800)") from None
    if required and not value.strip():
        raise InvalidRequest(field, "must not be empty")
    if len(value) > max_chars:
        raise InvalidRequest(field, f"is {len(value)} characters long; the limit is {max_chars}")
    return value


def _size(value: Any, field: str, spec: ModelSpec) -> int:
    b = spec.bounds
    size = _int(value, field, b.min_size, b.max_size)
    if size % b.size_multiple:
        raise InvalidRequest(
            field, f"must be a multiple of {b.size_multiple} for {spec.name}, got {size} "
            f"(nearest: {size - size % b.size_multiple} or {size - size % b.size_multiple + b.size_multiple})"
        )
    return size


def _unknown(given: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
    extra = sorted(set(given) - allowed)
    if extra:
        raise InvalidRequest(prefix + extra[0], f"is not a known field; known fields: {', '.join(sorted(allowed))}")


def parse_params(raw: Any, spec: ModelSpec) -> GenerationParams:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise InvalidRequest("params", f"must be an object, got {type(raw).__name__}")
    _unknown(raw, _PARAM_FIELDS, "params.")
    b = spec.bounds
    merged = {**spec.default_params(), **{k: v for k, v in raw.items() if v is not None}}
    scheduler = merged["scheduler"]
    if not isinstance(scheduler, str) or scheduler not in SCHEDULERS:
        raise InvalidRequest("params.scheduler", f"unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
    num_frames = fps = None
    if spec.is_video:
        num_frames = _int(merged["num_frames"], "params.num_frames", 1, b.max_frames)
        fps = _int(merged["fps"], "params.fps", 1, b.max_fps)
    else:
        for field in ("num_frames", "fps"):
            if raw.get(field) is not None:
                raise InvalidRequest(f"params.{field}", f"applies to video models only; {spec.name} makes images")
    return GenerationParams(
        steps=_int(merged["steps"], "params.steps", 1, b.max_steps),
        guidance=_number(merged["guidance"], "params.guidance", 0.0, b.max_guidance),
        width=_size(merged["width"], "params.width", spec),
        height=_size(merged["height"], "params.height", spec),
        scheduler=scheduler,
        num_frames=num_frames,
        fps=fps,
    )


def parse_request(raw: Any) -> GenerationRequest:
    """Validate a request dict; raise InvalidRequest naming the first wrong field."""
    if not isinstance(raw, Mapping):
        raise InvalidRequest("body", f"must be a JSON object, got {type(raw).__name__}")
    _unknown(raw, _TOP_FIELDS, "")
    if "model" not in raw:
        raise InvalidRequest("model", "is required")
    if not isinstance(raw["model"], str):
        raise InvalidRequest("model", f"must be a string, got {type(raw['model']).__name__}")
    spec = get_spec(raw["model"])
    if spec.payload is not Payload.DIFFUSION:
        seeded = ", ".join(n for n, s in CATALOGUE.items() if s.payload is Payload.DIFFUSION)
        raise InvalidRequest("model", f"model type {spec.name!r} takes a {spec.payload.value} request, not a seeded "
                                      f"image or video request; those model types: {seeded}")
    if "prompt" not in raw:
        raise InvalidRequest("prompt", "is required")
    kind, request_id = parse_envelope(raw)
    b = spec.bounds
    pipeline = parse_pipeline(raw.get("pipeline"), spec)
    params = parse_params(raw.get("params"), spec)
    return GenerationRequest(
        request_id=request_id,
        kind=kind,
        model=spec.name,
        prompt=_text(raw["prompt"], "prompt", b.max_prompt_chars, required=True),
        negative_prompt=_text(raw.get("negative_prompt") or "", "negative_prompt", b.max_prompt_chars, required=False),
        seed=_int(raw["seed"], "seed", 0, MAX_SEED),
        params=params,
        pipeline=pipeline,
        **parse_conditioning(raw, pipeline, params),
    )


def parse_envelope(raw: Mapping[str, Any]) -> tuple[str, str]:
    """What every payload's request carries: (kind, request_id, a fresh one when absent); its seed must be there."""
    if "seed" not in raw:
        raise InvalidRequest("seed", "is required")
    kind = raw.get("kind") or "challenge"
    if kind not in KINDS:
        raise InvalidRequest("kind", f"must be one of {', '.join(KINDS)}, got {str(kind)[:40]!r}")
    request_id = raw.get("request_id") or uuid.uuid4().hex
    if not isinstance(request_id, str) or not 1 <= len(request_id) <= 128 or not request_id.isprintable():
        raise InvalidRequest("request_id", "must be a printable string of 1 to 128 characters")
    return kind, request_id


def parse_pipeline(raw: Any, spec: ModelSpec) -> str:
    """The request's pipeline: the model type's default when not given, else one it serves."""
    served = [p.value for p in spec.pipelines]
    if raw is None:
        return served[0]
    if not isinstance(raw, str) or raw not in served:
        shown = raw if isinstance(raw, str) else type(raw).__name__
        raise InvalidRequest("pipeline", f"{spec.name} serves {', '.join(served)}; got {str(shown)[:40]!r}")
    return raw


def parse_conditioning(raw: Mapping[str, Any], pipeline: str, params: GenerationParams) -> dict[str, Any]:
    """init_image and strength (img2img) or control (controlnet), each checked, images decoded
    once to be sure they can be (app/protocol/conditioning.py); a field of another pipeline is refused."""
    from app.protocol import conditioning

    for name, owner in (("init_image", Pipeline.IMAGE_TO_IMAGE), ("strength", Pipeline.IMAGE_TO_IMAGE),
                        ("control", Pipeline.CONTROLNET)):
        if raw.get(name) is not None and pipeline != owner.value:
            raise InvalidRequest(name, f"applies to the {owner.value} pipeline only; this request's is {pipeline}")
    if pipeline == Pipeline.IMAGE_TO_IMAGE.value:
        if raw.get("init_image") is None:
            raise InvalidRequest("init_image", "is required for img2img: the image to start from, base64 PNG, JPEG "
                                               "or WebP")
        conditioning.check_image(raw["init_image"], "init_image")
        strength = _number(raw.get("strength", DEFAULT_STRENGTH), "strength", 0.0, 1.0)
        if int(params.steps * strength) < 1:
            raise InvalidRequest("strength", f"{strength:g} of {params.steps} steps runs no denoising step; "
                                             f"at least {1 / params.steps:.3g} at {params.steps} steps")
        return {"init_image": raw["init_image"], "strength": strength}
    if pipeline == Pipeline.CONTROLNET.value:
        return {"control": parse_control(raw.get("control"))}
    return {}


def parse_control(raw: Any) -> Control:
    from app.protocol import conditioning

    if raw is None:
        raise InvalidRequest("control", "is required for controlnet: {type, image[, conditioning_scale, "
                                        "guidance_start, guidance_end]}")
    if not isinstance(raw, Mapping):
        raise InvalidRequest("control", f"must be an object, got {type(raw).__name__}")
    _unknown(raw, _CONTROL_FIELDS, "control.")
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in conditioning.CONTROL_TYPES:
        raise InvalidRequest("control.type", f"must be one of {', '.join(conditioning.CONTROL_TYPES)} (for depth "
                                             f"and normal, the image is the map itself: no estimator runs here)")
    if raw.get("image") is None:
        raise InvalidRequest("control.image", "is required: base64 PNG, JPEG or WebP")
    conditioning.check_image(raw["image"], "control.image")
    start = _number(raw.get("guidance_start", 0.0), "control.guidance_start", 0.0, 1.0)
    end = _number(raw.get("guidance_end", 1.0), "control.guidance_end", 0.0, 1.0)
    if start >= end:
        raise InvalidRequest("control.guidance_end", f"must be above guidance_start ({start:g}), got {end:g}")
    return Control(type=kind, image=raw["image"],
                   conditioning_scale=_number(raw.get("conditioning_scale", 1.0), "control.conditioning_scale", 0.0,
                                              MAX_CONDITIONING_SCALE),
                   guidance_start=start, guidance_end=end)
