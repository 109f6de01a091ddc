"""The miner's HTTP API (FastAPI): signed requests in, generation on the GPU queue, media out.

Every request but /healthz is verified with bittensor's btauth/1 against this miner's
hotkey (replays refused through a Redis nonce store shared by all API processes). Then,
in this order: blacklist (403), input (400), an in-flight slot within the caller's GPU
share (429), quota (429); then the request goes to the model's GPU queue with a
priority from the caller's stake, and the API waits at most the model's timeout (504).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Callable

import redis
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from app import __version__
from app.backends.registry import served_spec
from app.chain.base import Chain
from app.generation.limits import model_timeout, time_limits
from app.keys import WORKER_ENVIRONMENT as ENV_KEY
from app.keys import miner_trajectory
from app.llm.client import server_environment
from app.miner.admission import Admission, AdmissionPolicy, MetagraphCache
from app.miner.external import external_answer
from app.miner.nonces import RedisNonceStore
from app.miner.text import text_answer, text_server_up
from app.protocol.catalogue import Payload, get_spec
from app.protocol.conditioning import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, body_caps
from app.protocol.errors import CheckpointError, GenerationTimeout, InvalidRequest
from app.protocol.external import parse_external_request
from app.protocol.request import GenerationRequest, parse_request
from app.protocol.schemas import ErrorBody, GenerateBody, GenerateResponse, InfoResponse
from app.protocol.text import parse_text_request
from app.settings import Settings
from app.web import (
    Refused,
    decode_capped,
    install_error_handlers,
    read_body,
)

log = logging.getLogger(__name__)


def worker_environment(redis_client: redis.Redis, model: str) -> dict | None:
    """The environment fingerprint a GPU worker of this model type published at start, if any."""
    env = redis_client.get(ENV_KEY.format(model=model))
    return json.loads(env) if env else None


def _responses(*codes: int) -> dict:
    return {c: {"model": ErrorBody} for c in codes}


# How the API turns an admitted request into its answer: (request, priority, timeout, started) -> reply.
Answer = Callable[[GenerationRequest, int, float, float], GenerateResponse]


def honest_answer(req: GenerationRequest, priority: int, timeout: float, started: float) -> GenerateResponse:
    """Generate on the GPU queue and answer with the artifact, its pixel hash and environment."""
    result = run_generation(req, priority, timeout)
    data = read_artifact(result["artifact_path"])
    frames = read_artifact(result["frames_path"]) if result.get("frames_path") else None
    timings = {**result["timings"], "total_ms": round((time.perf_counter() - started) * 1000, 1)}
    return GenerateResponse(request_id=req.request_id, model=req.model, media_type=result["media_type"],
                            data=base64.b64encode(data).decode(), pixel_sha256=result["pixel_sha256"],
                            frames=base64.b64encode(frames).decode() if frames else None,
                            timings=timings, environment=result["environment"],
                            trajectory_root=result.get("trajectory_root"), trajectory_ref=result.get("trajectory_ref"))


def create_miner_app(*, settings: Settings, model: str, hotkey: str, chain: Chain,
                     redis_client: redis.Redis, answer: Answer | None = None,
                     open_leaves: Callable[[str, list[int]], dict] | None = None) -> FastAPI:
    """The miner's app. Only test equipment passes another `answer` (app/testkit/cheats.py,
    app/testkit/text_cheats.py, app/testkit/external_cheats.py) or another `open_leaves` (a
    trajectory's openings, `openings`: app/testkit/cheats.py). A text model type forwards to
    its OpenAI-compatible server (app/miner/text.py), an external image type to its provider
    (app/miner/external.py), instead of the GPU queue."""
    spec = get_spec(model)
    open_leaves = open_leaves or openings
    text = spec.payload is Payload.CHAT
    external = spec.payload is Payload.EXTERNAL_IMAGE
    if text:
        answer = answer or text_answer(settings, spec.name)
    elif external:
        answer = answer or external_answer(settings, spec.name)
    else:
        spec, answer = served_spec(model), answer or honest_answer
    timeout = model_timeout(settings, spec.name)
    caps = body_caps([p.value for p in spec.pipelines], settings.max_body_bytes)  # per pipeline: images are large
    admission = Admission(
        policy=AdmissionPolicy(min_stake=settings.min_stake, require_permit=settings.require_validator_permit,
                               total_volume=settings.total_volume, limit_interval=settings.limit_interval,
                               max_concurrent=settings.max_concurrent_requests,
                               slot_ttl=time_limits(settings, spec.name)[1] + 30),
        metagraph=MetagraphCache(chain, settings.metagraph_ttl), redis_client=redis_client, miner_hotkey=hotkey,
    )
    nonces = RedisNonceStore(redis_client, namespace=hotkey)
    app = FastAPI(title="Seedgrid miner", version=__version__,
                  description=f"Serves {spec.name}: {', '.join(caps)}. Every request but /healthz is btauth/1-signed "
                              f"for hotkey {hotkey}. The largest request body per pipeline, in bytes (413 above it): "
                              + ", ".join(f"{p} {cap:,}" for p, cap in caps.items()) + ".")

    install_error_handlers(app, "miner API", log)

    async def authenticated(request: Request) -> tuple[str, bytes]:
        import bittensor as bt

        body = await read_body(request, max_bytes=max(caps.values()), timeout=settings.body_read_timeout)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        try:
            caller = bt.http_auth.verify(dict(request.headers), body, method=request.method, path=target,
                                         self_hotkey_ss58=hotkey, nonce_store=nonces)
        except bt.http_auth.AuthError as exc:
            raise Refused(401, "unauthorized", f"{type(exc).__name__}: {exc}") from None
        return caller.hotkey_ss58, body

    @app.get("/healthz")
    async def healthz():
        """Liveness and dependencies: 503 when Redis (the queue to the GPU workers) is down."""
        try:
            redis_ok = bool(await run_in_threadpool(redis_client.ping))
            worker_seen = bool(await run_in_threadpool(redis_client.exists, ENV_KEY.format(model=spec.name)))
        except redis.RedisError as exc:
            redis_ok, worker_seen = False, False
            log.warning("healthz: Redis is not answering: %s", exc)
        dependencies = {"redis": "ok" if redis_ok else "down"}
        if text:  # the engine is the text server: is it answering?
            dependencies["text_server"] = "ok" if await run_in_threadpool(text_server_up, settings.llm_url) else "down"
        elif external:
            dependencies["provider"] = settings.gojourney_url
        else:
            dependencies["gpu_worker_seen"] = worker_seen
        body = {"status": "ok" if redis_ok else "unavailable", "model": spec.name, "hotkey": hotkey,
                "version": __version__, "dependencies": dependencies}
        return JSONResponse(body, status_code=200 if redis_ok else 503)

    @app.get("/v1/info", response_model=InfoResponse, responses=_responses(401, 403, 503))
    async def info(request: Request):
        caller, _ = await authenticated(request)
        admission.check_registered(caller)  # quotas and usage are for the subnet's members only
        return InfoResponse(
            model=spec.name, total_volume=settings.total_volume, limit_interval=settings.limit_interval,
            max_concurrent=settings.max_concurrent_requests, min_stake=settings.min_stake,
            volume_per_validator=admission.quotas(), used_per_validator=admission.used(), version=__version__,
            environment=server_environment(settings.llm_url) if text else
            {"provider": "goapi", "mode": settings.gojourney_mode} if external else
            worker_environment(redis_client, spec.name),
            pipelines=[p.value for p in spec.pipelines], max_body_bytes=max(caps.values()), body_caps=caps,
            max_image_bytes=MAX_IMAGE_BYTES, max_image_pixels=MAX_IMAGE_PIXELS,
        )

    @app.post("/v1/generate", response_model=GenerateResponse,
              responses=_responses(400, 401, 403, 408, 413, 415, 429, 503, 504),
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": GenerateBody.model_json_schema(ref_template="#/components/schemas/{model}")}}}})
    async def generate(request: Request):
        started = time.perf_counter()
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise Refused(415, "unsupported_media_type",
                          f"send the body as application/json, not {content_type or 'no Content-Type'}")
        caller, body = await authenticated(request)
        admission.check_caller(caller)
        raw = decode_capped(body, caps, spec.pipeline.value)
        if text:  # cost in tokens; a caller's share is counted in the same units
            req = parse_text_request(raw)
            cost, budget_of = req.params.max_tokens, (spec.text.challenge_max_tokens, spec.text.max_tokens)
        elif external:  # one provider task each
            req = parse_external_request(raw)
            cost, budget_of = 1.0, (1.0, 1.0)
        else:
            req = parse_request(raw)
            cost, budget_of = req.params.cost, (spec.default_cost, spec.max_cost)
        if req.model != spec.name:
            raise InvalidRequest("model", f"this miner serves {spec.name}, not {req.model}")
        budget = admission.gpu_budget(caller, default_cost=budget_of[0], max_cost=budget_of[1])
        with admission.slot(caller, cost, budget):  # concurrency and GPU share before quota
            admission.take_quota(caller)  # counted only for requests that go to the GPU queue
            priority = admission.priority(caller)
            try:
                result = await run_in_threadpool(answer, req, priority, timeout, started)
            except (InvalidRequest, Refused) as exc:
                if isinstance(exc, InvalidRequest) or exc.status != 504:  # the caller got nothing for it
                    admission.refund_quota(caller)
                raise
        if isinstance(result, GenerateResponse) and result.trajectory_root and result.trajectory_ref:
            await run_in_threadpool(redis_client.set, miner_trajectory(hotkey, caller, result.trajectory_root),
                                    result.trajectory_ref, ex=settings.trajectory_ttl_s)  # for this caller only
        return JSONResponse(result) if text or external else result

    @app.post("/v1/open", responses=_responses(400, 401, 403, 404, 413, 415))
    async def open_trajectory(request: Request):
        """Open a kept trajectory at the steps the caller chose: {root, steps: [i, ...]} -> each step's
        leaf and the next one, leaf 0 and the final leaf, each with its Merkle proof (issue 14)."""
        caller, body = await authenticated(request)
        admission.check_caller(caller)
        raw = decode_capped(body, {"open": 4096}, "open")
        root, steps = (raw.get("root"), raw.get("steps")) if isinstance(raw, dict) else (None, None)
        if not isinstance(root, str) or len(root) != 64:
            raise InvalidRequest("root", "must be the answer's trajectory_root (64 hex characters)")
        if not isinstance(steps, list) or not 1 <= len(steps) <= 8 or not all(
                isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 1000 for i in steps):
            raise InvalidRequest("steps", "must be a list of 1 to 8 step indices")
        ref = await run_in_threadpool(redis_client.get, miner_trajectory(hotkey, caller, root))
        if ref is None:
            raise Refused(404, "not_kept", f"no trajectory {root[:16]}... kept for you (it is kept "
                                           f"{settings.trajectory_ttl_s} s after its answer)")
        return JSONResponse(await run_in_threadpool(open_leaves, ref.decode(), steps))

    return app


def openings(ref: str, steps: list[int]) -> dict:
    """The leaves a validator asked for, read from the store, with their proofs."""
    from app.backends.diffusers.trajectory import Trajectory

    traj = Trajectory.from_bytes(read_artifact(ref))
    n = len(traj.latents) - 1
    bad = [i for i in steps if i >= n]
    if bad:
        raise InvalidRequest("steps", f"step {bad[0]} is beyond this run's {n} steps")
    levels = traj.levels()
    wanted = sorted({0, n, *steps, *(i + 1 for i in steps)})
    return {"steps": n, "leaves": [traj.opening(i, levels).to_wire() for i in wanted]}


def run_generation(req: GenerationRequest, priority: int, timeout: float) -> dict:
    """Enqueue and wait, in a worker thread (Celery's result backend is per thread)."""
    from celery.exceptions import TimeoutError as CeleryTimeout
    from kombu.exceptions import OperationalError as BrokerDown

    from app.tasks.generation import enqueue

    try:
        # expires: a request not started when we stop waiting is never run
        async_result = enqueue(req, priority=priority, expires=timeout)
        return async_result.get(timeout=timeout, propagate=True)
    except CeleryTimeout:
        async_result.revoke()
        raise Refused(504, "timeout", f"no {req.model} result within {timeout:g} s "
                                      f"(is a GPU worker running? `seedgrid worker gpu --model {req.model}`)") from None
    except GenerationTimeout as exc:
        raise Refused(504, "timeout", f"the generation was stopped at its time limit: {exc}") from None
    except InvalidRequest:
        raise
    except CheckpointError as exc:
        raise Refused(503, "model_unavailable", str(exc)) from None
    except (redis.RedisError, BrokerDown) as exc:
        raise Refused(503, "unavailable", f"the GPU queue is unreachable ({type(exc).__name__}); retry later",
                      retry_after=5) from None
    except Exception as exc:
        log.exception("generation %s failed", req.request_id)
        raise Refused(503, "generation_failed", f"the GPU worker failed ({type(exc).__name__}); "
                                                f"the miner's operator should read its log") from None


def read_artifact(ref: str) -> bytes:
    """The GPU worker's output, from the artifact store they share (a folder on one host, S3 across hosts)."""
    from app import storage
    from app.config import get_settings

    try:
        return storage.load(get_settings(), ref)
    except (storage.StoreError, OSError, ValueError) as exc:
        raise Refused(503, "artifact_unreadable",
                      f"the worker stored {ref} but this API cannot read it ({exc}); the API and its GPU workers "
                      f"need the same SEEDGRID_ARTIFACT_STORE (one state folder, or one S3 bucket)") from None
