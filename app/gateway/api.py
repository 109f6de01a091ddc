"""The gateway's HTTP API (FastAPI): organic jobs for API consumers, behind API keys.

Every route but /healthz needs `Authorization: Bearer <key>` (`seedgrid gateway keys
create`), and a key sees only its own jobs (another key's job is a 404). POST /v1/jobs
validates the request with the protocol's own `parse_request` (a 400 names the field),
checks the model has a miner that may take it now (503 with Retry-After when none), takes
one call from the key's rate and daily quota (429 with Retry-After), stores the job and
hands it to the I/O workers (`enqueue`); the job row is the source of truth, and a job
whose hand-over was lost is resumed by the beat sweep. A text model type's job takes
messages instead of a prompt (app/protocol/text.py); an external image type's (GoJourney)
takes a prompt and seed only (app/protocol/external.py). POST /v1/images/generations and
/v1/images/edits (img2img) speak OpenAI's Images API over the same jobs
(app/gateway/openai_images.py), and /v1/chat/completions and /v1/completions its text APIs
(app/gateway/openai_text.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import random
import time
from contextlib import asynccontextmanager
from functools import partial
from typing import Callable

import redis
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy import select

from app import __version__, storage
from app.backends.registry import SERVED_MODELS
from app.db import Sessions
from app.gateway import jobs, keys, openai_images, openai_text, routing
from app.gateway.hints import RESYNC, Hints, Watch
from app.gateway.recent import Recent
from app.gateway.runner import REJECTED_PREFIX
from app.models import ApiKey, Job
from app.models.gateway import FINISHED
from app.protocol.catalogue import CATALOGUE, Payload, get_spec
from app.protocol.conditioning import body_caps
from app.protocol.errors import InvalidRequest
from app.protocol.external import parse_external_request
from app.protocol.request import MAX_SEED, parse_request
from app.protocol.text import parse_text_request
from app.scoring.tiers import TierTable
from app.settings import Settings
from app.web import (
    Refused,
    decode_capped,
    error_response,
    install_error_handlers,
    openai_error_response,
    read_body,
    read_form,
)

log = logging.getLogger(__name__)

CLIENT_FIELDS = ("model", "prompt", "negative_prompt", "seed", "params", "pipeline", "init_image", "strength",
                 "control")
TEXT_FIELDS = ("model", "messages", "seed", "params")
EXTERNAL_FIELDS = ("model", "prompt", "seed")
EXTERNAL_MODELS = tuple(n for n, s in CATALOGUE.items() if s.payload is Payload.EXTERNAL_IMAGE)
# the text types run on the miners' own text servers, the external ones at their provider
GATEWAY_MODELS = SERVED_MODELS + openai_text.text_models() + EXTERNAL_MODELS
IDEMPOTENCY_MAX = 255
POLL_S = 1.0  # an event stream reads its job at least this often (pub/sub wakes it sooner; verdicts are not hinted)
WAIT_POLL_S = 5.0  # ?wait= and the OpenAI route read it at least this often: the floor when a hint is lost
NO_MINER_RETRY_S = 30  # Retry-After when no miner may take a model's job (about a metagraph sync)


def sign_result(job: Job, key: ApiKey) -> str:
    """An unguessable token for a job's result URL (OpenAI's `url` format is fetched without a key)."""
    return hmac.new(key.key_hash.encode(), job.id.encode(), hashlib.sha256).hexdigest()[:32]


def create_gateway_app(*, settings: Settings, sessions: Sessions,
                       redis_client: redis.Redis, tiers: TierTable, enqueue: Callable[[str], None]) -> FastAPI:
    hints = Hints(redis_client)
    checked_keys: Recent[ApiKey] = Recent(settings.gateway_cache_s)  # a submit's key and capacity, reused briefly
    capacities: Recent[dict] = Recent(settings.gateway_cache_s)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        hints.stop()

    # the largest body per pipeline (413 above it): text-only jobs stay small, image-carrying ones add an image
    job_caps = body_caps(sorted({p.value for m in SERVED_MODELS for p in get_spec(m).pipelines}),
                         settings.max_body_bytes)
    text_caps = {"txt2img": settings.max_body_bytes}
    app = FastAPI(title="Seedgrid gateway", version=__version__, lifespan=lifespan,
                  description="Organic jobs on the grid. Every route but /healthz needs Authorization: Bearer <key>. "
                              "The largest POST /v1/jobs body per pipeline, in bytes (413 above it): "
                              + ", ".join(f"{p} {cap:,}" for p, cap in job_caps.items())
                              + f"; other routes take {settings.max_body_bytes:,}.")
    base_url = (settings.gateway_public_url or "").rstrip("/")
    results = storage.store_for(settings, "validator")  # where delivered answers are kept
    install_error_handlers(app, "gateway", log)

    @app.exception_handler(storage.StoreError)
    async def _store(_request: Request, exc: storage.StoreError):
        status = 410 if isinstance(exc, storage.ArtifactMissing) else 503
        return error_response(status, "result_gone" if status == 410 else "store_unavailable", str(exc))

    @app.exception_handler(jobs.JobConflict)
    async def _conflict(_request: Request, exc: jobs.JobConflict):
        return error_response(409, "idempotency_conflict", str(exc), field="Idempotency-Key")

    def base(request: Request) -> str:
        return base_url or str(request.base_url).rstrip("/")

    def bearer(request: Request) -> str:
        """The request's key (401 when it sends none); checked against the database by `authenticated`."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refused(401, "unauthorized", "send Authorization: Bearer <key>; an operator creates keys with "
                                               "`seedgrid gateway keys create --name NAME`")
        return token.strip()

    def authenticated(s, token: str) -> ApiKey:
        key = keys.authenticate(s, token)
        if key is None:
            raise Refused(401, "unauthorized", "this API key is unknown or revoked")
        return key

    def key_of(request: Request) -> ApiKey:
        token = bearer(request)
        with sessions(read_only=True) as s:
            return authenticated(s, token)

    def own_job(request: Request, job_id: str, *, with_view: bool = False) -> tuple[ApiKey, Job, dict | None]:
        """The caller's key, its job (another key's is a 404) and, when asked, the job's view: one read."""
        token = bearer(request)
        with sessions(read_only=True) as s:
            key = authenticated(s, token)
            job = s.get(Job, job_id) if len(job_id) <= 64 else None
            if job is None or job.key_id != key.id:
                raise Refused(404, "not_found", f"no job {job_id[:80]!r} for this key")
            return key, job, jobs.view(s, job, base_url=base(request)) if with_view else None

    def view(job_id: str, request: Request) -> dict:
        with sessions(read_only=True) as s:
            return jobs.view(s, s.get(Job, job_id), base_url=base(request))

    def submit(token: str, raw: dict, idempotency_key: str | None,
               before_hand_over: Callable[[str], None] | None = None) -> tuple[Job, bool]:
        """Validate, authenticate, check capacity and limits, store and hand over one job; (job, created).
        before_hand_over(job_id) runs for a new job between storing it and handing it over."""
        if not isinstance(raw, dict):
            raise InvalidRequest("body", "must be a JSON object with model, prompt and optional seed and params")
        unknown = sorted(set(raw) - set(CLIENT_FIELDS) - set(TEXT_FIELDS))
        if unknown:
            raise InvalidRequest(unknown[0], f"is not a job field; a job takes {', '.join(CLIENT_FIELDS)} "
                                             f"(a text model type's: {', '.join(TEXT_FIELDS)})")
        model = raw.get("model")
        if model not in GATEWAY_MODELS:
            raise InvalidRequest("model", f"must be one of {', '.join(GATEWAY_MODELS)}, got {str(model)[:80]!r}")
        payload = get_spec(model).payload
        fields, parse = {Payload.CHAT: (TEXT_FIELDS, parse_text_request),
                         Payload.EXTERNAL_IMAGE: (EXTERNAL_FIELDS, parse_external_request)}.get(
            payload, (CLIENT_FIELDS, parse_request))
        wrong = sorted(set(raw) - set(fields))
        if wrong:
            raise InvalidRequest(wrong[0], f"is not a {model} job's field; it takes {', '.join(fields)}")
        seed_given = raw.get("seed") is not None
        request = parse({**raw, "request_id": jobs.new_job_id(), "kind": "inference",
                                 "seed": raw["seed"] if seed_given else random.SystemRandom().randint(0, MAX_SEED)})
        key, capacity = checked_keys.get(token), capacities.get(model)
        if key is None or capacity is None or idempotency_key is not None:
            with sessions(read_only=True) as s:
                if key is None:
                    key = checked_keys.put(token, authenticated(s, token))
                earlier = jobs.earlier_job(s, key=key, request=request, idempotency_key=idempotency_key,
                                           seed_given=seed_given)
                if earlier is not None:
                    return earlier, False
                if capacity is None:
                    capacity = capacities.put(model, routing.capacity(
                        jobs.serving_miners(s, model), model, tiers=tiers, floor=settings.gateway_score_floor))
        if capacity["miners"] == 0:
            raise Refused(503, "no_capacity", f"no {model} miner can take a job now; try again shortly",
                          retry_after=NO_MINER_RETRY_S)
        limited = keys.take_call(redis_client, key)
        if limited is not None:
            raise Refused(429, "rate_limited", limited.reason, retry_after=limited.retry_after_s)
        with sessions() as s:
            job, created = jobs.create_job(s, key=key, request=request, idempotency_key=idempotency_key,
                                           seed_given=seed_given)
        if created:
            if before_hand_over is not None:
                before_hand_over(job.id)
            try:
                enqueue(job.id)
            except Exception as exc:  # the job is stored: the resume sweep hands it over later
                log.warning("job %s stored but not handed to the I/O workers (%s); the sweep will resume it",
                            job.id, exc)
        return job, created

    def wait_view(job_id: str, seconds: float, until, base_url: str, *, watch: Watch | None = None,
                  fresh: bool = False, poll_s: float = POLL_S, wake=lambda status: True,
                  final_view: bool = False) -> dict:
        """The job's view once until(job) holds or `seconds` pass (in a worker thread), read in one
        session with that last check. Woken by the runner's hints that wake(status) accepts (app/
        gateway/hints.py), with a read every poll_s as the floor (every POLL_S while hints are
        down). `watch`: the caller's; `fresh`: made before the job could change (a new job's,
        before its hand-over) while hints flowed, so no read is needed before a hint;
        `final_view`: a finished job's view carried by its hint is the answer (no read)."""
        deadline = time.monotonic() + seconds
        own = watch is None and seconds > 0
        if own:
            watch = hints.watch(job_id)
        try:
            while True:
                remaining = deadline - time.monotonic()
                if not fresh or remaining <= 0:
                    with sessions(read_only=True) as s:
                        job = s.get(Job, job_id)
                        if remaining <= 0 or until(job):
                            return jobs.view(s, job, base_url=base_url)
                status = next_hint(watch, min(remaining, poll_s if hints.live else POLL_S), wake)
                if final_view and status in FINISHED and watch.view is not None:
                    return jobs.rebased(watch.view, base_url)
                fresh = False
        finally:
            if own:
                watch.close()

    def next_hint(watch: Watch, seconds: float, wake) -> str | None:
        """Until a hint that wake(status) accepts (or a resync) arrives: its status; None when
        `seconds` pass first (then the caller reads the row anyway)."""
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0:
            status = watch.next(left)
            if status is not None and (status == RESYNC or wake(status)):
                return status
        return None

    def finished(job_id: str, seconds: float, base_url: str, *, watch: Watch | None = None,
                 fresh: bool = False) -> dict:
        """wait_view until the job has finished: attempts starting do not wake it, and a delivery's
        hint brings the view."""
        return wait_view(job_id, seconds, lambda j: j.status in FINISHED, base_url, watch=watch, fresh=fresh,
                         poll_s=WAIT_POLL_S, wake=lambda status: status != "running", final_view=True)

    def submit_and_view(token: str, raw, idempotency_key: str | None, wait: float, base_url: str) -> dict:
        """POST /v1/jobs in one worker thread: the job stored and handed over, then its view, at
        once or when it finishes within `wait` (watched before the hand-over: no hint missed)."""
        watch = None

        def before_hand_over(job_id: str) -> None:
            nonlocal watch
            if wait:
                watch = hints.watch(job_id)

        try:
            job, _ = submit(token, raw, idempotency_key, before_hand_over=before_hand_over)
            return finished(job.id, wait, base_url, watch=watch, fresh=watch is not None and watch.live_at_start)
        finally:
            if watch is not None:
                watch.close()

    async def json_body(request: Request, caps: dict[str, int] = text_caps):
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise Refused(415, "unsupported_media_type",
                          f"send the body as application/json, not {content_type or 'no Content-Type'}")
        body = await read_body(request, max_bytes=max(caps.values()), timeout=settings.body_read_timeout)
        return decode_capped(body, caps, "txt2img")

    def wait_param(request: Request) -> float:
        raw = request.query_params.get("wait")
        if raw is None:
            return 0.0
        try:
            value = float(raw)
        except ValueError:
            raise InvalidRequest("wait", f"must be a number of seconds, got {raw[:40]!r}") from None
        if not 0 <= value <= settings.gateway_max_wait:
            raise InvalidRequest("wait", f"must be between 0 and {settings.gateway_max_wait:g} seconds, got {raw[:40]}")
        return value

    @app.get("/healthz")
    async def healthz():
        try:
            redis_ok = bool(await run_in_threadpool(redis_client.ping))
        except redis.RedisError:
            redis_ok = False
        return JSONResponse({"status": "ok" if redis_ok else "unavailable", "version": __version__,
                             "dependencies": {"redis": "ok" if redis_ok else "down"}},
                            status_code=200 if redis_ok else 503)

    @app.post("/v1/jobs", status_code=202)
    async def create(request: Request):
        token = bearer(request)  # the key itself is checked with the job's first read, after the body
        wait = wait_param(request)
        idem = request.headers.get("idempotency-key")
        if idem is not None and not (0 < len(idem) <= IDEMPOTENCY_MAX and idem.isprintable()):
            raise InvalidRequest("Idempotency-Key", f"must be 1 to {IDEMPOTENCY_MAX} printable characters")
        raw = await json_body(request, job_caps)
        body = await run_in_threadpool(submit_and_view, token, raw, idem, wait, base(request))
        return JSONResponse(body, status_code=200 if body["status"] in FINISHED else 202)

    @app.get("/v1/jobs/{job_id}")
    async def get_job(job_id: str, request: Request):
        return (await run_in_threadpool(partial(own_job, request, job_id, with_view=True)))[2]

    @app.get("/v1/jobs/{job_id}/result")
    async def result(job_id: str, request: Request):
        token = request.query_params.get("token")
        if token is not None:  # an OpenAI-style URL: the token stands for the key
            with sessions(read_only=True) as s:
                job = s.get(Job, job_id) if len(job_id) <= 64 else None
                key = s.get(ApiKey, job.key_id) if job else None
            if job is None or key is None or key.revoked_at or not hmac.compare_digest(token, sign_result(job, key)):
                raise Refused(404, "not_found", f"no result at this URL for job {job_id[:80]!r}")
        else:
            key, job, _ = await run_in_threadpool(own_job, request, job_id)
        if job.status != "done":
            raise Refused(409, "not_done", f"job {job.id} is {job.status}; its result exists once it is done"
                          + (f" ({job.error})" if job.error else ""))
        try:
            data = await run_in_threadpool(storage.load, settings, job.result_path)
        except storage.ArtifactMissing as exc:
            raise Refused(410, "result_gone", f"the result is gone ({exc}); results are kept "
                                              f"{settings.artifact_retention / 3600:g} h") from None
        except storage.StoreError as exc:
            raise Refused(503, "store_unavailable", f"the result could not be read now ({exc}); try again",
                          retry_after=5) from None
        media_type = "application/json" if job.media_type == "text" else job.media_type  # the answer with its logprobs
        return Response(content=data, media_type=media_type,
                        headers={"X-Pixel-SHA256": job.pixel_sha256 or ""})

    @app.get("/v1/jobs/{job_id}/events")
    async def events(job_id: str, request: Request):
        _, job, first = await run_in_threadpool(partial(own_job, request, job_id, with_view=True))

        async def stream():
            last, quiet, body = None, 0.0, first
            while True:
                state = (body["status"], len(body["attempts"]), body["verification"]["verdict"])
                if state != last:
                    last, quiet = state, 0.0
                    yield f"event: status\ndata: {json.dumps(body)}\n\n"
                    settled = body["verification"]["verdict"] not in ("pending",)
                    if body["status"] in FINISHED and settled:
                        return
                elif quiet >= 15:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
                if await request.is_disconnected():
                    return
                t0 = time.monotonic()  # until the row moves (status or attempts); a verdict shows within POLL_S
                row = (body["status"], body["attempt_count"])
                body = await run_in_threadpool(wait_view, job.id, POLL_S,
                                               lambda j, seen=row: (j.status, j.attempts) != seen, base(request))
                quiet += time.monotonic() - t0

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.delete("/v1/jobs/{job_id}")
    async def cancel(job_id: str, request: Request):
        _, job, _ = await run_in_threadpool(own_job, request, job_id)

        def do() -> bool:
            with sessions() as s:
                return jobs.cancel(s, s.scalar(select(Job).where(Job.id == job.id).with_for_update()))

        if not await run_in_threadpool(do):
            raise Refused(409, "finished", f"job {job.id} has finished ({job.status}); nothing to cancel")
        await run_in_threadpool(jobs.notify, redis_client, job.id, "cancelled")
        return await run_in_threadpool(view, job.id, request)

    @app.get("/v1/models")
    async def models(request: Request):
        await run_in_threadpool(key_of, request)

        def read():
            with sessions(read_only=True) as s:
                return jobs.serving_miners(s)

        miners = await run_in_threadpool(read)
        data = []
        for name in GATEWAY_MODELS:
            spec = get_spec(name)
            served = ({"messages": True, "max_tokens": spec.text.max_tokens, "top_logprobs": spec.text.max_top_logprobs}
                      if spec.payload is Payload.CHAT else {"external": True} if name in EXTERNAL_MODELS else
                      {"pipelines": [p.value for p in spec.pipelines], "control_types": list(spec.control_types),
                       "default_params": spec.default_params()})
            data.append({"id": name, "object": "model", "owned_by": "seedgrid", "media_type": spec.media_type.value,
                         **served,
                         "capacity": routing.capacity(miners, name, tiers=tiers, floor=settings.gateway_score_floor)})
        return {"object": "list", "data": data}

    async def openai_text_route(request: Request, *, chat: bool):
        """/v1/chat/completions and /v1/completions: one text job, waited for, as OpenAI's object."""
        try:
            await run_in_threadpool(key_of, request)
            call = openai_text.parse_call(await json_body(request), chat=chat)
            job, _ = await run_in_threadpool(submit, bearer(request), call.job, None)
        except (Refused, InvalidRequest) as exc:
            return openai_error(exc)
        deadline = max(settings.gateway_max_wait, 1.0)
        await run_in_threadpool(finished, job.id, deadline, base(request))
        with sessions(read_only=True) as s:
            job = s.get(Job, job.id)
        if job.status != "done":
            why = job.error or f"not done within {deadline:g} s; follow it at /v1/jobs/{job.id}"
            if why.startswith(REJECTED_PREFIX):  # the request, not the grid: the caller's 400
                return openai_error(InvalidRequest("max_tokens", why))
            return openai_error(Refused(502 if job.status == "failed" else 504, "generation_failed", why))
        try:
            answer = json.loads(await run_in_threadpool(storage.load, settings, job.result_path))
        except storage.StoreError as exc:
            return openai_error(Refused(503, "store_unavailable", f"the answer could not be read now ({exc})"))
        body = openai_text.render(call, job.id, job.model, answer)
        headers = {"X-Seedgrid-Job": job.id}  # follow its sampled verification at /v1/jobs/{id}
        if call.stream:
            return StreamingResponse(openai_text.stream_events(call, body), media_type="text/event-stream",
                                     headers={**headers, "Cache-Control": "no-cache"})
        return JSONResponse(body, headers=headers)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        """OpenAI's Chat Completions API on a text model type: messages, max_tokens, temperature, top_p,
        seed, logprobs, top_logprobs, stream."""
        return await openai_text_route(request, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request):
        """OpenAI's legacy Completions API: the prompt is sent as one user message (the grid serves chat models)."""
        return await openai_text_route(request, chat=False)

    async def openai_images_route(request: Request, parse):
        """One job per image asked for, waited for; OpenAI's images object (b64_json or url)."""
        try:
            key = await run_in_threadpool(key_of, request)
            bodies, fmt = await parse(request)
            created = []
            for body in bodies:
                job, _ = await run_in_threadpool(submit, bearer(request), body, None)
                created.append(job.id)
        except InvalidRequest as exc:
            return openai_error(InvalidRequest(openai_images.openai_field(exc.field), exc.message))
        except Refused as exc:
            return openai_error(exc)
        deadline = max(settings.gateway_max_wait, 1.0)
        for job_id in created:
            await run_in_threadpool(finished, job_id, deadline, base(request))
        data = []
        with sessions(read_only=True) as s:
            for job_id in created:
                job = s.get(Job, job_id)
                if job.status != "done":
                    why = job.error or f"not done within {deadline:g} s; follow it at /v1/jobs/{job.id}"
                    return openai_error(Refused(502 if job.status == "failed" else 504, "generation_failed", why))
                if fmt == "url":  # the store's presigned URL (S3), else our signed one
                    presigned = results.url(job.result_path, settings.result_url_s) \
                        if job.result_path.startswith("s3://") else None
                    data.append({"url": presigned or
                                 f"{base(request)}/v1/jobs/{job.id}/result?token={sign_result(job, key)}"})
                else:
                    data.append({"b64_json": base64.b64encode(storage.load(settings, job.result_path)).decode()})
        return {"created": int(time.time()), "data": data}

    async def generation_bodies(request: Request):
        return openai_images.generation_jobs(await json_body(request))

    async def edit_bodies(request: Request):
        form = await read_form(request, max_bytes=max(job_caps.values()), timeout=settings.body_read_timeout,
                               max_fields=openai_images.EDIT_MAX_FIELDS, max_part_size=settings.max_body_bytes,
                               what="the image and the prompt (as OpenAI's images.edit sends them)")
        try:
            return openai_images.edit_jobs(form)
        finally:
            await form.close()  # the uploads' spooled files

    @app.post("/v1/images/generations")
    async def images(request: Request):
        """OpenAI's Images API: prompt, model, n, size, response_format (b64_json or url)."""
        return await openai_images_route(request, generation_bodies)

    @app.post("/v1/images/edits")
    async def image_edits(request: Request):
        """OpenAI's image edits as img2img: image (a file), prompt, model, n, size, response_format, and
        our strength and seed (form fields); a mask is refused (no inpainting)."""
        return await openai_images_route(request, edit_bodies)

    return app


def openai_error(exc: Exception) -> JSONResponse:
    """OpenAI's error shape, so the openai package raises its own typed errors."""
    if isinstance(exc, InvalidRequest):
        return openai_error_response(400, "invalid_request_error", exc.message, exc.field)
    return openai_error_response(exc.status, exc.error, exc.detail, exc.field, exc.retry_after)
