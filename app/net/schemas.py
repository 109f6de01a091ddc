"""Wire schemas of the miner protocol (SPEC.md: Protocol), for the OpenAPI document and clients.

Requests are validated by app.generation.request.parse_request (one set of rules for
the API, the CLI and the workers); these models describe the shapes.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class GenerateParams(BaseModel):
    steps: int | None = Field(None, ge=1, le=50)
    guidance: float | None = Field(None, ge=0, le=30)
    width: int | None = Field(None, description="multiple of 8 within the model's range")
    height: int | None = Field(None, description="multiple of 8 within the model's range")
    num_frames: int | None = Field(None, ge=1, le=64, description="video models only")
    fps: int | None = Field(None, ge=1, le=60, description="video models only")
    scheduler: str | None = None


class GenerateBody(BaseModel):
    request_id: str | None = None
    kind: str = Field("challenge", description="challenge or inference")
    model: str
    prompt: str = Field(..., max_length=1000)
    negative_prompt: str | None = Field(None, max_length=1000)
    seed: int = Field(..., ge=0, le=2**32 - 1)
    params: GenerateParams = Field(default_factory=GenerateParams)


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
    pixel_sha256: str
    timings: Timings
    environment: dict


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


class ErrorBody(BaseModel):
    error: str
    detail: str
    field: str | None = None
