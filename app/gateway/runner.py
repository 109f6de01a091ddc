"""A job's attempts, on the validator's I/O worker: route, call, fail over, deliver, sample.

`run_job` claims the job (a lease, so a second worker leaves it alone and a dead
worker's job is taken over), then tries miners one at a time: each attempt is a response
of the job's organic challenge, sent by the same `query_miner` that sends challenges,
so an error, a timeout or a malformed answer is recorded and counted against that miner
in the same way. An answer whose media cannot be decoded counts as a failed request too.
A 429 (the miner's concurrency or our quota there is full) is back-pressure, not a
failure: that miner is tried again after the others, with a pause when all are busy,
within the job's budget of gateway_max_attempts query deadlines.
The first readable answer is delivered at once; a fraction `gateway_sample_rate` of
deliveries is then judged on the GPU queue like a challenge (the task enqueues it).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from app.gateway import jobs, routing
from app.generation import artifacts
from app.models import Job, MinerState, Response
from app.models.base import utcnow
from app.protocol import media
from app.protocol.catalogue import get_spec
from app.protocol.request import parse_request
from app.validator import records
from app.validator.context import Validator
from app.validator.judging import count_outcome
from app.validator.rounds import query_deadline, query_miner, release_quota, take_quota

log = logging.getLogger(__name__)

LEASE_MARGIN_S = 15.0  # beyond an attempt's deadline before another worker may take the job over
BUSY_PAUSE_S = 1.0  # when every miner left answered 429: about one small generation


@dataclass(frozen=True)
class Run:
    status: str  # the job's status when this run stopped
    sampled: bool = False  # delivered and drawn for verification: reproduce its challenge


def run_job(v: Validator, job_id: str, *, rng: random.Random | None = None) -> Run:
    """Run the job's attempts until it is delivered, failed or cancelled; waiting clients are woken on each change."""
    try:
        return _run(v, job_id, rng or random.SystemRandom())
    finally:
        jobs.notify(v.redis, job_id)


def _run(v: Validator, job_id: str, rng: random.Random) -> Run:
    settings = v.settings
    with v.sessions(read_only=True) as s:
        job = s.get(Job, job_id)
        if job is None:
            return Run("unknown")
        model = job.model
    deadline = query_deadline(v, model)
    lease = deadline + LEASE_MARGIN_S
    with v.sessions() as s:
        job = jobs.claim(s, job_id, lease_s=lease, block=v.chain.block())
        if job is None:
            return Run(s.get(Job, job_id).status)
    give_up = time.monotonic() + settings.gateway_max_attempts * deadline  # busy miners: wait this long at most
    busy: set[str] = set()  # miners that answered 429 since the last pause
    while True:
        with v.sessions() as s:
            job = s.scalar(select(Job).where(Job.id == job_id).with_for_update())
            if job.status != "running":  # cancelled meanwhile
                return Run(job.status)
            job.lease_until = utcnow() + timedelta(seconds=lease)
            tries = jobs.attempts(s, job_id)
            failures = [r for r in tries if r.status in jobs.ATTEMPT_FAILURES]
            if len(failures) >= settings.gateway_max_attempts:
                jobs.fail(s, job=job, error=f"{len(failures)} miners failed this job; the last said: "
                                            f"{failures[-1].error}")
                return Run("failed")
            miners = list(s.scalars(select(MinerState).where(MinerState.reachable.is_(True))))
            done_with = {r.hotkey for r in tries if r.status != "busy"} | busy
            miner = routing.pick_miner(miners, model, tiers=v.tiers, rng=rng, floor=settings.gateway_score_floor,
                                       exploration=settings.gateway_exploration, exclude=done_with,
                                       take=lambda m: take_quota(v.redis, m))
            if miner is None and busy and time.monotonic() < give_up:
                pause = True
            elif miner is None:
                why = f"after {len(failures)} failed attempt(s)" if failures else "now"
                jobs.fail(s, job=job, error=f"no {model} miner can take this job {why} (all busy, over quota, "
                                            f"or below the score floor); submit it again later")
                return Run("failed")
            else:
                pause = False
                response_id = _attempt(s, job, miner, tries)
        if pause:  # every miner left is busy: give them a moment, then try them again
            busy.clear()
            time.sleep(BUSY_PAUSE_S)
            continue
        jobs.notify(v.redis, job_id)  # an attempt started
        status = query_miner(v, response_id, busy_ok=True)
        if status == "busy":
            busy.add(miner.hotkey)
            release_quota(v.redis, miner)
        elif status in ("answered", "verify"):
            done = _deliver(v, job_id, response_id, rng)
            if done is not None:
                return done


def _attempt(s, job: Job, miner: MinerState, tries: list[Response]) -> int:
    """The response row for the next attempt: a new one, or the miner's busy one sent again."""
    job.attempts += 1
    again = next((r for r in tries if r.hotkey == miner.hotkey and r.status == "busy"), None)
    if again is None:
        return records.add_response(s, challenge_id=job.id, miner=miner).id
    again.status, again.error, again.http_status, again.created_at = "pending", None, None, utcnow()
    return again.id


def _deliver(v: Validator, job_id: str, response_id: int, rng: random.Random) -> Run | None:
    """Deliver this attempt's answer; None when its media is unreadable (counted, and the next miner tries)."""
    with v.sessions() as s:
        job = s.scalar(select(Job).where(Job.id == job_id).with_for_update())
        response = s.get(Response, response_id)
        try:
            digest = media.pixel_sha256(answer_pixels(job.request, response))
        except (media.MediaError, ValueError, OSError) as exc:
            response.status, response.error = "error", f"unreadable output: {exc}"[:2000]
            count_outcome(v, s, response, request_success=False, verified=False)
            return None
        if job.status != "running":  # cancelled while the miner worked: its work still counts as delivered
            records.record_delivery(s, hotkey=response.hotkey)
            return Run(job.status)
        sampled = rng.random() < v.settings.gateway_sample_rate
        jobs.deliver(s, job=job, response=response, pixel_sha256=digest, sampled=sampled)
        if not sampled:
            records.record_delivery(s, hotkey=response.hotkey)
    return Run("done", sampled=sampled)


def answer_pixels(request: dict, response: Response):
    """The pixels an answer shows: a PNG's, or a video's lossless frames (what the verifier judges)."""
    spec = get_spec(request["model"])
    if response.media_type != spec.media_type.value:
        raise media.MediaError(f"media type {response.media_type!r}, expected {spec.media_type.value!r}")
    if spec.is_video:
        if not response.frames_path:
            raise media.MediaError("a video answer carries its lossless frames; this one has none")
        frames = parse_request(request).params.num_frames
        return media.decode_frames(artifacts.load(Path(response.frames_path)), frames)
    return media.decode(artifacts.load(Path(response.artifact_path)), spec.media_type)
