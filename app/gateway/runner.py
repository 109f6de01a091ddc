"""A job's attempts, on the validator's I/O worker: route, call, fail over, deliver, sample.

`run_job` claims the job (a lease, so a second worker leaves it alone and a dead
worker's job is taken over), then tries miners one at a time: each attempt is a response
of the job's organic challenge, sent and recorded by the same `call_miner` and
`record_reply` that `query_miner` uses for challenges, so an error, a timeout or a
malformed answer is recorded and counted against that miner in the same way. An answer
whose media cannot be decoded counts as a failed request too.
A 429 (the miner's concurrency or our quota there is full) is back-pressure, not a
failure: that miner is tried again after the others, with a pause when all are busy,
within the job's budget of gateway_max_attempts query deadlines.
The first readable answer is delivered at once, then judged on the GPU queue like a
challenge (the task enqueues it): every image answer that carries a trajectory root, of a
type with a step replay, by opening its trajectory (issue 14; a share `reproduction_share`
by a full reproduction instead); of the other answers a fraction `gateway_sample_rate`:
an image's by reproducing it, a text answer's by one prefill on the validator's own text
server, an external image's against its provider's task (so those are only sampled where
SEEDGRID_VALIDATOR_LLM_URL, or SEEDGRID_GOJOURNEY_URL, is set).
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from app.gateway import jobs, routing
from app.models import Job
from app.models.base import utcnow
from app.protocol import media
from app.protocol.catalogue import Payload, get_spec
from app.protocol.errors import InvalidRequest
from app.protocol.text import parse_text_answer, parse_text_request
from app.validator import records
from app.validator.context import Validator
from app.validator.judging import count_outcome
from app.validator.rounds import (
    Query,
    Reply,
    answer_pixel_sha256,
    call_miner,
    query_deadline,
    record_reply,
    release_quota,
    take_quota,
    wire_request,
)
from app.verification.trajectory import replayable

log = logging.getLogger(__name__)

LEASE_MARGIN_S = 15.0  # beyond an attempt's deadline before another worker may take the job over
REJECTED_PREFIX = "the request is beyond the model these miners serve: refused (400) by"  # the caller's to change
BUSY_PAUSE_S = 1.0  # when every miner left answered 429: about one small generation


@dataclass(frozen=True)
class Run:
    status: str  # the job's status when this run stopped
    sampled: bool = False  # delivered and drawn for verification: reproduce its challenge
    judge_response: int | None = None  # a sampled text or external answer: judged directly (nothing to reproduce)
    view: dict | None = None  # a delivered job's view as committed (relative links), carried by its hint


@dataclass(frozen=True)
class Attempt(Query):
    limit_interval: int = 600  # the miner's quota window, to give back a unit on a 429


def run_job(v: Validator, job_id: str, *, rng: random.Random | None = None) -> Run:
    """Run the job's attempts until it is delivered, failed or cancelled; waiting clients are woken on each change."""
    run = Run("changed")  # when the run fails on our side: the waiting calls read the row
    try:
        run = _run(v, job_id, rng or random.SystemRandom())
        return run
    finally:
        jobs.notify(v.redis, job_id, run.status, view=run.view)


def _run(v: Validator, job_id: str, rng: random.Random) -> Run:
    """Each pass is one transaction to claim or hold the job and open an attempt, the call, and one
    transaction to record the answer and deliver it: two commits per attempt, none idle."""
    settings = v.settings
    give_up: float | None = None  # busy miners: the job waits this long for one at most
    busy: set[str] = set()  # miners that answered 429 since the last pause
    while True:
        with v.sessions() as s:
            if give_up is None:
                job = jobs.claim(s, job_id, lease_s=lambda model: query_deadline(v, model) + LEASE_MARGIN_S,
                                 block=v.recent_block)
                if job is None:
                    held = s.get(Job, job_id)
                    return Run(held.status if held is not None else "unknown")
                give_up = time.monotonic() + settings.gateway_max_attempts * query_deadline(v, job.model)
            else:
                job = s.scalar(select(Job).where(Job.id == job_id).with_for_update())
                if job.status != "running":  # cancelled meanwhile
                    return Run(job.status)
                job.lease_until = utcnow() + timedelta(seconds=query_deadline(v, job.model) + LEASE_MARGIN_S)
            step = _next_attempt(v, s, job, busy, give_up, rng)
        if isinstance(step, Run):
            return step
        if step is None:  # every miner left is busy: give them a moment, then try them again
            busy.clear()
            time.sleep(BUSY_PAUSE_S)
            continue
        jobs.notify(v.redis, job_id, "running")  # an attempt started
        reply = call_miner(v, step, busy_ok=True)
        if reply.status == "busy":
            busy.add(step.hotkey)
            release_quota(v.redis, step.hotkey, step.limit_interval)
        done = _settle(v, job_id, step, reply, rng)
        if done is not None:
            return done


def _next_attempt(v: Validator, s, job: Job, busy: set[str], give_up: float,
                  rng: random.Random) -> Attempt | Run | None:
    """The next attempt's call (its response row already `sent`), the job's end when it has
    none left, or None when every miner left is busy for now."""
    settings = v.settings
    tries = jobs.attempts(s, job.id) if job.attempts else []  # every attempt counts in job.attempts
    failures = [r for r in tries if r.status in jobs.ATTEMPT_FAILURES]
    if len(failures) >= settings.gateway_max_attempts:
        jobs.fail(s, job=job, error=f"{len(failures)} miners failed this job; the last said: {failures[-1].error}")
        return Run("failed")
    miners = jobs.serving_miners(s, job.model)
    done_with = {r.hotkey for r in tries if r.status != "busy"} | busy
    miner = routing.pick_miner(miners, job.model, tiers=v.tiers, rng=rng, floor=settings.gateway_score_floor,
                               exploration=settings.gateway_exploration, exclude=done_with,
                               take=lambda m: take_quota(v.redis, m))
    if miner is None and busy and time.monotonic() < give_up:
        return None
    rejected = [r for r in tries if r.status == "rejected"]
    if miner is None and rejected and not failures:
        jobs.fail(s, job=job, error=f"{REJECTED_PREFIX} {len(rejected)} miner(s); the last said: {rejected[-1].error}")
        return Run("failed")
    if miner is None:
        why = f"after {len(failures)} failed attempt(s), the last saying: {failures[-1].error}" if failures else "now"
        jobs.fail(s, job=job, error=f"no {job.model} miner can take this job {why} (all busy, over quota, "
                                    f"or below the score floor); submit it again later")
        return Run("failed")
    job.attempts += 1
    response = next((r for r in tries if r.hotkey == miner.hotkey and r.status == "busy"), None)
    if response is None:
        response = records.add_response(s, challenge_id=job.id, miner=miner, status="sent")
    else:  # the miner's busy attempt, sent again
        response.status, response.error, response.http_status, response.created_at = "sent", None, None, utcnow()
        s.flush()
    return Attempt(response.id, miner.hotkey, miner.axon, job.model, wire_request(job.request),
                   limit_interval=miner.limit_interval)


def _settle(v: Validator, job_id: str, attempt: Attempt, reply: Reply, rng: random.Random) -> Run | None:
    """Record the reply and, when it is readable, deliver it, in one transaction; None when the
    next miner should try (a failure, a 429, or media that cannot be decoded, counted against it).
    The answer is decoded before the transaction, which then holds no lock while it decodes
    (decoding it on another thread beside the transaction measured no faster on 2 cores)."""
    digest, unreadable = None, None
    if reply.status == "answered":
        try:
            digest = pixel_hash(attempt.request, reply)
        except (media.MediaError, InvalidRequest, ValueError, OSError) as exc:
            unreadable = exc
    with v.sessions() as s:
        response = record_reply(v, s, attempt.response_id, reply)
        if reply.status != "answered":
            return None
        job = s.scalar(select(Job).where(Job.id == job_id).with_for_update())
        if unreadable is not None:
            response.status, response.error = "error", f"unreadable output: {unreadable}"[:2000]
            count_outcome(v, s, response, request_success=False, verified=False)
            return None
        if job.status != "running":  # cancelled while the miner worked: its work still counts as delivered
            records.record_delivery(s, hotkey=response.hotkey)
            return Run(job.status)
        sampled, ready = _checked(v, job, response, rng)
        jobs.deliver(s, job=job, response=response, pixel_sha256=digest, sampled=sampled, ready=ready)
        if not sampled:
            records.record_delivery(s, hotkey=response.hotkey)
        view = jobs.view(s, job)  # as committed: the waiting calls answer with it, reading no row
    return Run("done", sampled=sampled, view=view, judge_response=response.id if sampled and ready else None)


def _checked(v: Validator, job: Job, response, rng: random.Random) -> tuple[bool, str | None]:
    """(whether the delivered answer is judged, the status its organic challenge takes to be judged
    at once, or None: reproduced first). An image answer with a trajectory root is judged (a share
    `gateway_check_rate`, every one by default): by its trajectory, or in a share
    `reproduction_share` against a full reproduction. Other diffusion answers are sampled at
    `gateway_sample_rate` and reproduced; a text or external answer, sampled where the validator
    has its judge, is judged directly."""
    settings = v.settings
    payload = get_spec(job.model).payload
    if payload is Payload.DIFFUSION and replayable(job.model, job.request.get("pipeline")) \
            and response.trajectory_root:
        if rng.random() >= settings.gateway_check_rate:
            return False, None
        return True, None if rng.random() < settings.reproduction_share else "trajectory"
    if payload is Payload.DIFFUSION:
        return rng.random() < settings.gateway_sample_rate, None
    judge = {Payload.CHAT: settings.validator_llm_url, Payload.EXTERNAL_IMAGE: settings.gojourney_url}[payload]
    return (rng.random() < settings.gateway_sample_rate and bool(judge)), "reproduced"


def pixel_hash(request: dict, reply: Reply) -> str:
    """The hash of the pixels an answer shows: a PNG's, or a video's lossless frames (what the
    verifier judges); MediaError when they cannot be read. A text answer: its shape checked
    against its request (InvalidRequest names the field), and its text's sha256."""
    spec = get_spec(request["model"])
    if spec.payload is Payload.CHAT:
        parse_text_answer(json.loads(reply.data), parse_text_request(request))
        return reply.fields["claimed_sha256"]
    if reply.fields.get("pixel_sha256") and reply.fields.get("media_type") == spec.media_type.value:
        return reply.fields["pixel_sha256"]  # read when the answer came (rounds.call_miner)
    return answer_pixel_sha256(request, reply.fields.get("media_type"), reply.data, reply.frames)
