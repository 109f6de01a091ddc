"""Judging: the ground truth once per challenge, a verdict per answer, one outcome per response.

`reproduce` generates the challenge on the validator's own engine; `verify_response`
runs the media kind's verifier (app/verification/ladder.py) and counts the outcome
once; `settle_stale` settles what a lost task left behind.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import storage
from app.generation.limits import model_timeout, time_limits
from app.generation.service import generate_and_record, settle_abandoned
from app.models import Challenge, Response
from app.models.base import aware
from app.protocol import media
from app.protocol.catalogue import Payload, get_spec
from app.protocol.request import parse_request
from app.validator import records
from app.validator.context import Validator
from app.verification.ladder import verifier_for
from app.verification.thresholds import threshold_for
from app.verification.verdict import failed

log = logging.getLogger(__name__)

SETTLE_MARGIN_S = 30.0  # queue delays on a busy I/O worker before the sweep calls a query lost
# A challenge's answers are judged once it is `reproduced` (against the reproduction) or, from the
# start, when it is `trajectory` (each answer by opening its trajectory; no reproduction).
JUDGEABLE = ("reproduced", "trajectory")


@dataclass(frozen=True)
class Dispute:
    """A trajectory check that did not settle the answer (no root, or a measured tolerance exceeded):
    the challenge goes back to `open` and is reproduced in full; the reproduction judges it."""
    challenge_id: str
    reason: str


def count_outcome(v: Validator, s: Session, response: Response, *, request_success: bool, verified: bool,
                  scale: float = 1.0) -> None:
    """Record the response's outcome (once), in the epoch of its challenge's block; `scale`: see rewards.reward."""
    challenge = s.get(Challenge, response.challenge_id)
    records.record_outcome(s, response=response, kind=challenge.kind, model=challenge.model,
                           request_success=request_success, verified=verified,
                           timeout_s=model_timeout(v.settings, challenge.model), tiers=v.tiers,
                           epoch=v.epoch_of(challenge.block), scale=scale)


def reproduce(v: Validator, challenge_id: str, *, task_id: str | None = None) -> list[int]:
    """The ground truth, once per challenge; returns the answered responses to verify."""
    with v.sessions() as s:
        challenge = s.get(Challenge, challenge_id)
        request = dict(challenge.request)
        done = challenge.status == "reproduced"
    if not done:
        t0 = time.monotonic()
        try:
            result = generate_and_record(request, settings=v.settings,
                                         task_id=task_id or f"reproduce-{challenge_id}", worker="validator")
            error = None
        except Exception as exc:  # recorded on the challenge; no miner is penalised for our failure
            log.exception("reproducing challenge %s failed", challenge_id)
            result, error = {}, f"{type(exc).__name__}: {exc}"
        with v.sessions() as s:
            records.record_reproduction(s, challenge_id=challenge_id, pixel_sha256=result.get("pixel_sha256"),
                                        path=result.get("artifact_path"), frames_path=result.get("frames_path"),
                                        environment=result.get("environment"),
                                        seconds=time.monotonic() - t0, error=error)
    with v.sessions() as s:
        if s.get(Challenge, challenge_id).status != "reproduced":
            return []
        return list(s.scalars(select(Response.id).where(Response.challenge_id == challenge_id,
                                                        Response.status == "answered",
                                                        Response.verdict_rung.is_(None))))


def verify_response(v: Validator, response_id: int) -> str | Dispute | None:
    """Judge one answered response, by its trajectory or against the reproduction, and count it (once);
    a Dispute when its challenge must be reproduced first (the caller hands that to the GPU queue)."""
    with v.sessions() as s:
        response = s.get(Response, response_id)
        challenge = s.get(Challenge, response.challenge_id)
        if response.verdict_rung is not None or challenge.status not in JUDGEABLE or response.status != "answered":
            return response.verdict_rung
        by_trajectory = challenge.status == "trajectory"
        expected_path, expected_sha, model = challenge.reproduction_path, challenge.reproduction_sha256, challenge.model
        expected_frames, request = challenge.reproduction_frames_path, dict(challenge.request)
        media_type, artifact_path, challenge_id = response.media_type or "", response.artifact_path, challenge.id
        frames_path, environment = response.frames_path, response.environment
        root = response.trajectory_root
        threshold = threshold_for(model, v.settings, reference_env=challenge.reproduction_env,
                                  miner_env=response.environment, pipeline=request.get("pipeline")) \
            if get_spec(model).payload is Payload.DIFFUSION and not by_trajectory else None  # no pixel comparison
    spec = get_spec(model)
    if by_trajectory:
        if not root:
            return dispute(v, challenge_id, f"response {response_id} carries no trajectory root")
        return _verify_trajectory(v, response_id, challenge_id, request, artifact_path, frames_path, root)
    if spec.payload is Payload.CHAT:
        return _verify_text(v, response_id, challenge_id, request, artifact_path, environment)
    if spec.payload is Payload.EXTERNAL_IMAGE:
        return _verify_external(v, response_id, request, artifact_path, environment)
    if spec.is_video and not expected_frames:  # reproduced by a release before lossless frames
        with v.sessions() as s:
            challenge = s.get(Challenge, challenge_id)
            challenge.status, challenge.error = "failed", "reproduced without lossless frames (an older release)"
        log.warning("challenge %s has no lossless reproduction frames; not judged, no miner is counted", challenge_id)
        return None
    try:
        if spec.is_video:  # judged on lossless frames (app/verification/pixels.py)
            frame_count = parse_request(request).params.num_frames
            expected = media.decode_frames(storage.load(v.settings, expected_frames), frame_count)
        else:
            expected = media.decode(storage.load(v.settings, expected_path), spec.media_type)
        data = storage.load(v.settings, artifact_path) if artifact_path else b""
        frames = storage.load(v.settings, frames_path) if frames_path else None
    except storage.StoreError as exc:  # ours: nothing counted; the sweep verifies it again
        log.warning("response %d not judged now: %s", response_id, exc)
        return None

    def duplicate(pixel_sha256: str) -> str | None:
        with v.sessions() as s:
            return records.duplicate_of(s, pixel_sha256=pixel_sha256, challenge_id=challenge_id,
                                        response_id=response_id)

    verdict = verifier_for(spec.media_type)(
        data=data, media_type=media_type, expected_pixels=expected, expected_sha256=expected_sha,
        expected_media_type=spec.media_type.value, threshold=threshold.similarity, threshold_basis=threshold.basis,
        duplicate_of=duplicate, frames=frames)
    return _settle(v, response_id, verdict)


def _settle(v: Validator, response_id: int, verdict) -> str:
    """The verdict on its response and its outcome counted, once (a redelivered task counts nothing)."""
    try:
        with v.sessions() as s:
            response = records.record_verdict(s, response_id=response_id, verdict=verdict)
            count_outcome(v, s, response, request_success=verdict.well_formed, verified=verdict.verified)
    except IntegrityError:
        log.info("response %d was counted already (redelivered task)", response_id)
    return verdict.rung


def dispute(v: Validator, challenge_id: str, reason: str) -> Dispute | None:
    """Send a `trajectory` challenge back to be reproduced in full (once: a challenge reproduced already
    is judged against its reproduction). Its clock restarts for the sweep (settle_stale)."""
    with v.sessions() as s:
        challenge = s.get(Challenge, challenge_id, with_for_update=True)
        if challenge.status != "trajectory":
            return None  # another answer's dispute got there first
        challenge.status, challenge.created_at = "open", datetime.now(timezone.utc)
    log.info("challenge %s goes to a full reproduction: %s", challenge_id, reason)
    return Dispute(challenge_id, reason)


def _verify_trajectory(v: Validator, response_id: int, challenge_id: str, request: dict, artifact_path: str | None,
                       frames_path: str | None, root: str) -> str | Dispute | None:
    """The answer judged by opening its trajectory (app/validator/trajectory_judge.py), not the reproduction;
    a check that failed on a measured tolerance (not on a proof) is disputed: the reproduction decides."""
    from app.models import MinerState
    from app.validator.trajectory_judge import judge_trajectory

    with v.sessions() as s:
        response = s.get(Response, response_id)
        miner = s.get(MinerState, response.hotkey)
        axon, hotkey = (miner.axon if miner else None), response.hotkey
    if axon is None:
        log.info("response %d not judged by its trajectory: its miner left the subnet", response_id)
        return None
    try:
        data = storage.load(v.settings, artifact_path) if artifact_path else b""
        frames = storage.load(v.settings, frames_path) if frames_path else None
        verdict = judge_trajectory(v, axon=axon, hotkey=hotkey, request=request, root=root, data=data, frames=frames)
    except storage.StoreError as exc:
        log.warning("response %d not judged now: %s", response_id, exc)
        return None
    except (media.MediaError, ValueError) as exc:
        verdict = failed(f"unreadable output: {exc}", well_formed=False)
    if not verdict.verified and (verdict.detail or {}).get("disputable"):
        return dispute(v, challenge_id, f"response {response_id}: {verdict.reason}")
    return _settle(v, response_id, verdict)


def _verify_text(v: Validator, response_id: int, challenge_id: str, request: dict, artifact_path: str | None,
                 environment: dict | None) -> str | None:
    """A text answer judged by one prefill on the validator's own text server (app/validator/text_judge.py),
    with the environment its miner reported (the same class as ours: a greedy answer must be exact).
    That server failing is the validator's failure: logged, nothing counted, the sweep settles it."""
    import json

    from app.llm.client import TextServerError
    from app.protocol.text import parse_text_request
    from app.validator.text_judge import judge_text
    from app.verification.text import calibrated

    settings = v.settings
    if not settings.validator_llm_url:
        log.warning("text answer %d not judged: SEEDGRID_VALIDATOR_LLM_URL is not set", response_id)
        return None
    req = parse_text_request(request)
    try:
        raw = json.loads(storage.load(settings, artifact_path)) if artifact_path else {}
    except storage.StoreError as exc:
        log.warning("text answer %d not judged now: %s", response_id, exc)
        return None
    except (OSError, ValueError):
        raw = {}
    raw = {**raw, "environment": environment} if isinstance(raw, dict) else {}
    try:
        verdict = judge_text(settings.validator_llm_url, settings.llm_model or req.model, req, raw,
                             thresholds=calibrated(req.model))
    except TextServerError as exc:
        log.warning("text answer %d of challenge %s not judged: %s", response_id, challenge_id, exc)
        return None
    return _settle(v, response_id, verdict)


def _verify_external(v: Validator, response_id: int, request: dict, artifact_path: str | None,
                     environment: dict | None) -> str | None:
    """An external image answer checked against the provider's record of its task
    (app/validator/external_judge.py); the provider failing is the validator's failure."""
    from app.external.provider import ProviderError
    from app.validator.external_judge import fetch_claim, judge_claim

    try:
        claim = fetch_claim(v.settings, request, artifact_path, environment)
    except (ProviderError, storage.StoreError) as exc:
        log.warning("external answer %d not judged: %s", response_id, exc)
        return None
    try:
        with v.sessions() as s:
            verdict, factor = judge_claim(s, claim, response_id=response_id, model=request["model"])
            response = records.record_verdict(s, response_id=response_id, verdict=verdict)
            count_outcome(v, s, response, request_success=verdict.well_formed, verified=verdict.verified,
                          scale=factor)
    except IntegrityError:
        log.info("response %d was counted already, or its task id was claimed meanwhile (the sweep judges "
                 "it again)", response_id)
        return None
    return verdict.rung


def settle_stale(v: Validator, *, now: float | None = None) -> dict:
    """Settle what a lost task left behind (a killed worker, a broker outage); returns what to re-verify.

    - A response still pending or sent well past its query deadline: the query never
      finished on our side, so it is the validator's own failure: status `lost`, no
      outcome against the miner.
    - A challenge whose reproduction never finished: `failed`, like a failed reproduction.
    - An answered response of a reproduced challenge that was never judged: its id is
      returned, to verify again (verification is idempotent).
    """
    now_dt = datetime.fromtimestamp(now if now is not None else time.time(), timezone.utc)
    lost, failed, reverify = 0, 0, []
    with v.sessions() as s:
        rows = s.execute(select(Response, Challenge).join(Challenge, Challenge.id == Response.challenge_id)
                         .where(Response.status.in_(("pending", "sent", "answered")),
                                Response.verdict_rung.is_(None))).all()
        for response, challenge in rows:
            limit = model_timeout(v.settings, challenge.model) + v.settings.query_grace + SETTLE_MARGIN_S
            if (now_dt - aware(response.created_at)).total_seconds() < limit:
                continue
            if response.status in ("pending", "sent"):
                response.status = "lost"
                response.error = ("the validator did not finish this query in time (a lost task or an outage); "
                                  "its own failure, not counted against the miner")
                lost += 1
            elif challenge.status in JUDGEABLE:
                reverify.append(response.id)
        for challenge in s.scalars(select(Challenge).where(Challenge.status == "open")):
            hard = time_limits(v.settings, challenge.model)[1]
            if (now_dt - aware(challenge.created_at)).total_seconds() > 2 * hard + SETTLE_MARGIN_S:
                challenge.status, challenge.error = "failed", "the reproduction did not finish (a lost task)"
                failed += 1
    if lost or failed:
        log.warning("settled %d lost queries and %d lost reproductions", lost, failed)
    return {"lost": lost, "failed_reproductions": failed, "reverify": reverify}


def settle_abandoned_generations(v: Validator) -> int:
    """The validator's own reproductions that a killed GPU worker left running."""
    return settle_abandoned(v.settings)
