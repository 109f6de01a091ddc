"""Wire schemas of the miner protocol (SPEC.md: Protocol), for the OpenAPI document and clients.

Requests are validated by app.protocol.request.parse_request (one set of rules for
the API, the CLI and the workers); these models describe the shapes.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.protocol.catalogue import SCHEDULERS, Bounds
from app.protocol.conditioning import (
    CANNY_HIGH,
    CANNY_LOW,
    CONTROL_TYPES,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
)
from app.protocol.request import DEFAULT_STRENGTH, MAX_CONDITIONING_SCALE, MAX_SEED

# The widest bounds any model type accepts; each type's own are in the catalogue, and
# parse_request enforces them. Derived, never restated.
_B = Bounds()
_IMAGE = (f"base64 of PNG, JPEG or WebP bytes, at most {MAX_IMAGE_BYTES // (1024 * 1024)} MiB and "
          f"{MAX_IMAGE_PIXELS:,} pixels; EXIF orientation applied, alpha over white, scaled to cover the "
          f"request's size and cropped about the centre")


class GenerateParams(BaseModel):
    steps: int | None = Field(None, ge=1, le=_B.max_steps)
    guidance: float | None = Field(None, ge=0, le=_B.max_guidance)
    width: int | None = Field(None, description=f"multiple of {_B.size_multiple} within the model's range")
    height: int | None = Field(None, description=f"multiple of {_B.size_multiple} within the model's range")
    num_frames: int | None = Field(None, ge=1, le=_B.max_frames, description="video models only")
    fps: int | None = Field(None, ge=1, le=_B.max_fps, description="video models only")
    scheduler: str | None = Field(None, description=f"one of {', '.join(SCHEDULERS)}")


class ControlBody(BaseModel):
    type: str = Field(..., description=f"one of {', '.join(CONTROL_TYPES)}: canny (the edge map is made from the "
                                       f"image, OpenCV Canny {CANNY_LOW}/{CANNY_HIGH}); depth and normal (the image "
                                       f"is the map itself: no estimator runs)")
    image: str = Field(..., description=_IMAGE)
    conditioning_scale: float | None = Field(None, ge=0, le=MAX_CONDITIONING_SCALE)
    guidance_start: float | None = Field(None, ge=0, le=1)
    guidance_end: float | None = Field(None, ge=0, le=1, description="above guidance_start")


class GenerateBody(BaseModel):
    request_id: str | None = None
    model: str
    prompt: str = Field(..., max_length=_B.max_prompt_chars)
    negative_prompt: str | None = Field(None, max_length=_B.max_prompt_chars)
    seed: int = Field(..., ge=0, le=MAX_SEED)
    params: GenerateParams = Field(default_factory=GenerateParams)
    pipeline: str | None = Field(None, description="the model type's default when not given (txt2img, txt2vid); "
                                                   "/v1/info lists what it serves")
    init_image: str | None = Field(None, description="img2img only: " + _IMAGE)
    strength: float | None = Field(None, ge=0, le=1, description=f"img2img only; default {DEFAULT_STRENGTH}")
    control: ControlBody | None = Field(None, description="controlnet only")


class Timings(BaseModel):
    queued_ms: float
    generate_ms: float
    encode_ms: float | None = None
    total_ms: float | None = None


class GenerateResponse(BaseModel):
    request_id: str
    model: str
    media_type: str
    data: str = Field(..., description="base64 of the PNG or MP4 bytes")
    frames: str | None = Field(None, description="videos: base64 of one PNG of every frame stacked top to bottom, "
                                                 "the lossless pixels the answer is hashed and verified on")
    pixel_sha256: str
    timings: Timings
    environment: dict
    trajectory_root: str | None = Field(None, description="the Merkle root of the run's trajectory, which the "
                                                          "miner opens at POST /v1/open (issue 14)")
    trajectory_ref: str | None = Field(None, exclude=True)  # where the miner keeps it; never sent


class InfoResponse(BaseModel):
    model: str
    total_volume: int
    limit_interval: int
    max_concurrent: int
    min_stake: float
    volume_per_validator: dict[str, int]
    used_per_validator: dict[str, int]
    version: str
    environment: dict | None
    pipelines: list[str] = Field(..., description="what a request's `pipeline` may be, the default first")
    max_body_bytes: int = Field(..., description="the largest request body taken, of any pipeline")
    body_caps: dict[str, int] = Field(default_factory=dict, description="the largest request body per pipeline: "
                                      "text-only requests stay small, image-carrying ones (img2img, controlnet) "
                                      "add one image; a larger body is refused with 413")
    max_image_bytes: int = Field(..., description="an init or control image's largest encoded size")
    max_image_pixels: int = Field(..., description="an init or control image's largest decoded size")


class ErrorBody(BaseModel):
    error: str
    detail: str
    field: str | None = None


# -- what a validator accepts from a miner ----------------------------------------------
class MalformedAnswer(ValueError):
    """A 200 reply that is not a usable answer; the field says which part is wrong."""

    def __init__(self, field: str, message: str):
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")


MAX_ENVIRONMENT_JSON = 4096  # a fingerprint is a few hundred bytes; it is stored per response


def parse_text_reply(answer: dict, *, request_id: str, model: str) -> dict:
    """A text miner's 200 reply, checked for what is stored: the same fields as parse_answer's, with
    `data` the answer's JSON (text, tokens, logprobs, top_logprobs, finish_reason) to judge later
    against its request (app/protocol/text.parse_text_answer), and the text's sha256 as the claim."""
    import hashlib
    import json

    if answer.get("request_id") != request_id:
        raise MalformedAnswer("request_id", "does not echo the request's id")
    if answer.get("model") != model:
        raise MalformedAnswer("model", f"is {str(answer.get('model'))[:40]!r}, the request was for {model}")
    if answer.get("media_type") != "text":
        raise MalformedAnswer("media_type", f"must be text, got {str(answer.get('media_type'))[:40]!r}")
    if not isinstance(answer.get("text"), str):
        raise MalformedAnswer("text", "must be a string")
    environment = answer.get("environment")
    if environment is not None and (not isinstance(environment, dict)
                                    or len(json.dumps(environment)) > MAX_ENVIRONMENT_JSON):
        raise MalformedAnswer("environment", f"must be an object of at most {MAX_ENVIRONMENT_JSON} bytes of JSON")
    body = {k: answer.get(k) for k in ("text", "tokens", "logprobs", "top_logprobs", "finish_reason")}
    return {"media_type": "text", "data": json.dumps(body, separators=(",", ":")).encode(), "frames": None,
            "claimed_sha256": hashlib.sha256(answer["text"].encode("utf-8", "surrogatepass")).hexdigest(),
            "environment": environment}


def parse_answer(answer: dict, *, request_id: str, model: str) -> dict:
    """Check a miner's 200 reply field by field (the miner is untrusted); the fields to store.

    Returns {media_type, data (bytes), frames (bytes or None), claimed_sha256, environment}.
    Media that decodes to the wrong thing is the verifier's business; this only makes sure
    there is something of the right shape to verify.
    """
    import base64
    import binascii
    import json

    def text(name: str, limit: int) -> str:
        value = answer.get(name)
        if not isinstance(value, str):
            raise MalformedAnswer(name, f"must be a string, got {type(value).__name__}")
        if len(value) > limit:
            raise MalformedAnswer(name, f"is {len(value)} characters; at most {limit}")
        return value

    if text("request_id", 128) != request_id:
        raise MalformedAnswer("request_id", "does not echo the request's id")
    if text("model", 100) != model:
        raise MalformedAnswer("model", f"is {answer['model']!r}, the request was for {model}")
    media_type = text("media_type", 32)
    claimed = text("pixel_sha256", 64)
    def decoded(name: str) -> bytes:
        encoded = answer.get(name)
        if not isinstance(encoded, str) or not encoded:
            raise MalformedAnswer(name, "must be a non-empty base64 string")
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedAnswer(name, "is not valid base64") from None

    data = decoded("data")
    frames = decoded("frames") if answer.get("frames") is not None else None  # a video's lossless frames
    environment = answer.get("environment")
    if environment is not None:
        if not isinstance(environment, dict):
            raise MalformedAnswer("environment", f"must be an object, got {type(environment).__name__}")
        if len(json.dumps(environment)) > MAX_ENVIRONMENT_JSON:
            raise MalformedAnswer("environment", f"is larger than {MAX_ENVIRONMENT_JSON} bytes of JSON")
    root = answer.get("trajectory_root")
    if root is not None and not (isinstance(root, str) and len(root) == 64
                                 and all(c in "0123456789abcdef" for c in root)):
        raise MalformedAnswer("trajectory_root", "must be 64 lowercase hex characters (a sha256), or absent")
    return {"media_type": media_type, "data": data, "frames": frames, "claimed_sha256": claimed,
            "environment": environment, "trajectory_root": root}


def parse_external_reply(answer: dict, *, request_id: str, model: str) -> dict:
    """An external image miner's 200 reply: parse_answer's fields, with the task id and mode it
    claims as its `environment` (what the validator checks against the provider)."""
    from app.protocol.errors import InvalidRequest
    from app.protocol.external import parse_task_claim

    parsed = parse_answer(answer, request_id=request_id, model=model)
    try:
        task_id, mode = parse_task_claim(answer)
    except InvalidRequest as exc:
        raise MalformedAnswer(exc.field, exc.message) from None
    return {**parsed, "environment": {"task_id": task_id, "mode": mode}}
