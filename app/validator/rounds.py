"""Rounds: learn who serves what, pick miners, build a challenge, query each miner.

`sync_miners` reads the metagraph and each miner's signed /v1/info; `start_round`
builds one challenge per served model type for a group picked by `select_miners` (the
gateway's routing shares `eligible` and `take_quota`); `query_miner` sends one challenge
(or one attempt of an organic job) to one miner and
stores its answer or counts its failure at once.
"""

from __future__ import annotations

import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from sqlalchemy import select

from app import storage
from app.backends.registry import SERVED_MODELS
from app.generation.limits import model_timeout
from app.keys import validator_sent
from app.models import Challenge, MinerState, Response
from app.protocol import media
from app.protocol.catalogue import CATALOGUE, Payload, get_spec
from app.protocol.client import MinerError
from app.protocol.request import parse_request
from app.protocol.schemas import (
    MalformedAnswer,
    parse_answer,
    parse_external_reply,
    parse_text_reply,
)
from app.scoring.tiers import TierTable
from app.validator import records
from app.validator.conditioning import challenge_conditioning
from app.validator.context import Validator
from app.validator.judging import JUDGEABLE, count_outcome
from app.validator.prompts import (
    challenge_params,
    challenge_prompt,
    external_challenge,
    text_challenge,
)
from app.verification.trajectory import replayable

log = logging.getLogger(__name__)

INFO_TIMEOUT_S = 3.0  # /v1/info is a small read: a miner slower than this is unreachable this sync


# -- sync ------------------------------------------------------------------------------
def sync_miners(v: Validator) -> dict:
    """Learn each served neuron's model, volume and our quota from its signed /v1/info.

    Hotkeys that left the subnet are forgotten: no challenge, weight or leaderboard row
    names them again.
    """
    metagraph = v.chain.metagraph()
    neurons = [n for n in metagraph if n.axon and n.hotkey != v.hotkey]

    def info(n):
        try:
            return n, v.client.info(n.url, n.hotkey, timeout=INFO_TIMEOUT_S), None
        except MinerError as exc:
            return n, None, str(exc)

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(info, neurons))
    lowest = v.tiers.lowest.name
    reachable = 0
    known = set(challenged_models(v.settings))  # a text miner counts where this validator can judge text
    with v.sessions() as s:
        for n, data, error in answers:
            if data and data.get("model") in known:
                reachable += 1
                records.upsert_miner(s, hotkey=n.hotkey, uid=n.uid, default_tier=lowest, model=data["model"],
                                     axon=n.axon, reachable=True, total_volume=int(data.get("total_volume", 0)),
                                     quota=int(data.get("volume_per_validator", {}).get(v.hotkey, 0)),
                                     limit_interval=int(data.get("limit_interval", 600)))
            else:
                if error:
                    log.info("miner uid %d at %s did not answer /v1/info: %s", n.uid, n.axon, error)
                if s.get(MinerState, n.hotkey) is not None:
                    records.upsert_miner(s, hotkey=n.hotkey, uid=n.uid, default_tier=lowest, reachable=False)
        forgotten = records.forget_deregistered(s, {n.hotkey for n in metagraph}) if metagraph else []
    if forgotten:
        log.info("forgot %d miner(s) no longer registered on the subnet: %s", len(forgotten), ", ".join(forgotten))
    return {"neurons": len(neurons), "reachable": reachable, "forgotten": len(forgotten)}


# -- selection -------------------------------------------------------------------------
def take_quota(r, miner: MinerState, *, reserve: float = 0.0) -> bool:
    """Count one request against our quota at this miner for its current window.

    reserve: the share of the quota this caller leaves free. Challenge rounds leave the
    organic share (settings.organic_share) to the gateway, which may use the whole quota;
    both count in the same Redis counter.
    """
    key = _sent_key(miner.hotkey, miner.limit_interval)
    pipe = r.pipeline(transaction=False)  # one round trip
    pipe.incr(key)
    pipe.expire(key, miner.limit_interval + 60)
    used, _ = pipe.execute()
    if used > miner.quota - int(miner.quota * reserve):
        r.decr(key)
        return False
    return True


def eligible(miners: Iterable[MinerState], model: str, *, tiers: TierTable,
             exclude: frozenset[str] | set[str] = frozenset()) -> list[MinerState]:
    """Reachable miners of `model` under their tier's request limit, but those in `exclude`."""
    return [m for m in miners if m.model == model and m.reachable and m.axon and m.hotkey not in exclude
            and m.interval_attempts < tiers.request_limit(m.tier)]


def release_quota(r, hotkey: str, limit_interval: int) -> None:
    """Give back a unit taken by take_quota for a request the miner refused unserved (429)."""
    r.decr(_sent_key(hotkey, limit_interval))


def _sent_key(hotkey: str, limit_interval: int) -> str:
    return validator_sent(hotkey, int(time.time() // max(1, limit_interval)))


def select_miners(miners: Iterable[MinerState], model: str, *, tiers: TierTable, group_size: int,
                  rng: random.Random, take: Callable[[MinerState], bool]) -> list[MinerState]:
    """Up to `group_size` reachable miners of `model`, in random order, under their tier's
    request limit, each taking one unit of our quota there (`take`) as it is chosen."""
    candidates = eligible(miners, model, tiers=tiers)
    rng.shuffle(candidates)
    chosen: list[MinerState] = []
    for m in candidates:
        if len(chosen) >= group_size:
            break
        if take(m):
            chosen.append(m)
    return chosen


# -- rounds ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RoundPlan:
    challenge_id: str
    model: str
    response_ids: list[int]
    reproduce: bool = True  # text (a prefill) and external (the provider's record) challenges reproduce nothing


def challenged_models(settings) -> tuple[str, ...]:
    """The model types the rounds challenge: those a backend here reproduces, the text types
    when the validator has its own text server to score them (SEEDGRID_VALIDATOR_LLM_URL), and
    the external image types when it can fetch their provider's tasks (SEEDGRID_GOJOURNEY_URL)."""
    text = tuple(n for n, s in CATALOGUE.items() if s.payload is Payload.CHAT) if settings.validator_llm_url else ()
    external = tuple(n for n, s in CATALOGUE.items()
                     if s.payload is Payload.EXTERNAL_IMAGE) if settings.gojourney_url else ()
    return SERVED_MODELS + text + external


def start_round(v: Validator, *, rng: random.Random | None = None, kind: str = "challenge",
                models: Sequence[str] | None = None) -> list[RoundPlan]:
    """One challenge per model type that has reachable miners, sent to a group of them
    (`challenged_models` unless `models` says).

    The chain is read once here: the challenge's block stamps the epoch of every outcome
    its responses get.
    """
    rng = rng or random.SystemRandom()
    settings = v.settings
    block = v.chain.block()
    plans = []
    with v.sessions() as s:
        miners = list(s.scalars(select(MinerState).where(MinerState.reachable.is_(True),
                                                         MinerState.model.is_not(None))))
        for model in models or challenged_models(settings):
            chosen = select_miners(miners, model, tiers=v.tiers, group_size=settings.challenge_group_size, rng=rng,
                                   take=lambda m: take_quota(v.redis, m, reserve=settings.organic_share))
            if not chosen:
                continue
            seed = rng.randrange(2**32)
            spec = get_spec(model)
            if spec.payload in (Payload.CHAT, Payload.EXTERNAL_IMAGE):  # judged without reproducing anything
                request = text_challenge(model, seed, rng, kind) if spec.payload is Payload.CHAT else \
                    external_challenge(model, seed, rng, kind, settings.challenge_service_url)
                challenge = records.create_challenge(s, request=request, block=block)
                records.record_reproduction(s, challenge_id=challenge.id, pixel_sha256=None, path=None,
                                            environment=None, seconds=0.0)
                ids = [records.add_response(s, challenge_id=challenge.id, miner=m).id for m in chosen]
                plans.append(RoundPlan(challenge.id, model, ids, reproduce=False))
                continue
            configured = {**spec.default_params(), **settings.challenge_params.get(model, {})}
            params = challenge_params(configured, records.recent_organic_params(s, model=model), rng)
            raw = {"model": model, "kind": kind, "seed": seed, "params": params,
                   "prompt": challenge_prompt(seed, settings.challenge_service_url)}
            raw.update(_conditioning(s, spec, params, rng, kind))
            request = parse_request(raw)
            challenge = records.create_challenge(s, request=request, block=block)
            by_trajectory = replayable(model, request.pipeline) and rng.random() >= settings.reproduction_share
            if by_trajectory:  # each answer checked by opening its trajectory (judging.verify_response)
                challenge.status = "trajectory"
            ids = [records.add_response(s, challenge_id=challenge.id, miner=m).id for m in chosen]
            plans.append(RoundPlan(challenge.id, model, ids, reproduce=not by_trajectory))
    return plans


def _conditioning(s, spec, params: dict, rng: random.Random, kind: str) -> dict:
    """The pipeline of a model type's next challenge, in turn through those it serves (each is checked
    as often as the others, whatever the draw), and its conditioning images, drawn from `rng`
    (app/validator/conditioning.py): nothing for a text-only one."""
    if len(spec.pipelines) < 2:
        return {}
    pipeline = spec.pipelines[records.challenge_count(s, model=spec.name, kind=kind) % len(spec.pipelines)].value
    if pipeline == spec.pipeline.value:
        return {}
    earlier = records.recent_reproductions(s, model=spec.name)
    return {"pipeline": pipeline, **challenge_conditioning(pipeline, params["width"], params["height"],
                                                          spec.control_types, rng, earlier, params["steps"])}


# -- query -----------------------------------------------------------------------------
def query_deadline(v: Validator, model: str) -> float:
    """How long one query may take, all included: the model's timeout plus the grace."""
    return model_timeout(v.settings, model) + v.settings.query_grace


def wire_request(request: dict) -> dict:
    """The request as a miner gets it: without its kind, so a challenge and an organic job look alike."""
    return {k: v for k, v in request.items() if k != "kind"}


@dataclass(frozen=True)
class Query:
    """What one call to a miner needs, read from the rows before the call."""

    response_id: int
    hotkey: str
    axon: str
    model: str
    request: dict  # the wire request (wire_request)


@dataclass(frozen=True)
class Reply:
    """How one call to a miner ended: a status for its response row and the row's fields."""

    status: str  # answered, busy, timeout or error
    latency_s: float
    fields: dict  # for the response row
    data: bytes | None = None  # an answer's bytes as stored (its artifact_path), and its lossless frames
    frames: bytes | None = None


def query_miner(v: Validator, response_id: int, *, busy_ok: bool = False) -> str:
    """Send the challenge to one miner; store its bytes; count a failed request at once.

    Whatever the miner does (any status, any JSON shape, any size, any speed) ends here
    as an answered response or a failure recorded against that miner, within the
    model's timeout plus the grace: the client enforces one total deadline and a cap on
    the reply's size while it streams. Returns "verify" when the reproduction is ready.
    busy_ok: see `call_miner`.
    """
    with v.sessions() as s:
        response = s.get(Response, response_id)
        if response.status != "pending":
            return response.status  # a redelivered task: already sent (the sweep settles a lost one)
        query = start_query(s, response)
        if query is None:
            return response.status
    reply = call_miner(v, query, busy_ok=busy_ok)
    with v.sessions() as s:
        response = record_reply(v, s, query.response_id, reply)
        reproduced = s.get(Challenge, response.challenge_id).status in JUDGEABLE
    return "verify" if reply.status == "answered" and reproduced else reply.status


def start_query(s, response: Response) -> Query | None:
    """Mark a pending response `sent` and read what its call needs; None when its miner left the subnet."""
    miner = s.get(MinerState, response.hotkey)
    if miner is None:  # it left the subnet after the round chose it
        response.status, response.error = "lost", "the miner left the subnet before it was queried"
        return None
    challenge = s.get(Challenge, response.challenge_id)
    response.status = "sent"
    s.flush()
    return Query(response.id, response.hotkey, miner.axon, challenge.model, wire_request(challenge.request))


def answer_pixel_sha256(request: dict, media_type: str | None, data: bytes, frames: bytes | None) -> str:
    """The hash of the pixels an image or video answer shows (a PNG's, or a video's lossless frames:
    what the verifier judges); MediaError when they cannot be read or are not the model's media type."""
    spec = get_spec(request["model"])
    if media_type != spec.media_type.value:
        raise media.MediaError(f"media type {media_type!r}, expected {spec.media_type.value!r}")
    count = (request.get("params") or {}).get("num_frames") if spec.is_video else None
    return media.pixel_sha256(media.answer_pixels(data, spec.media_type, frames, count))


def _pixels_known(request: dict, parsed: dict) -> str | None:
    """An image or video answer's pixel hash when it is recorded, so that a replay is found by the
    answers recorded before it whatever order the verdicts land in; None when it cannot be read
    (the verdict says why) or is not pixels."""
    if get_spec(request["model"]).payload is not Payload.DIFFUSION:
        return None
    try:
        return answer_pixel_sha256(request, parsed["media_type"], parsed["data"], parsed["frames"])
    except (media.MediaError, ValueError, OSError):
        return None


def call_miner(v: Validator, query: Query, *, busy_ok: bool = False) -> Reply:
    """The signed call and the answer's bytes stored; no database. busy_ok (organic attempts): a
    429 (the miner's concurrency or quota is full) is back-pressure, not a failure: `busy`; a 400
    is `rejected`: a request the protocol allows that this miner's model cannot take (a prompt
    and max_tokens beyond a text model's context), the caller's, not counted against the miner
    (a challenge stays within every model's bounds, so there a 400 is a failure)."""
    t0 = time.monotonic()
    try:
        answer = v.client.generate(f"http://{query.axon}", query.hotkey, query.request,
                                   timeout=query_deadline(v, query.model))
        latency = time.monotonic() - t0
        payload = get_spec(query.model).payload
        text = payload is Payload.CHAT
        parse = {Payload.CHAT: parse_text_reply, Payload.EXTERNAL_IMAGE: parse_external_reply}.get(payload, parse_answer)
        parsed = parse(answer, request_id=query.request["request_id"], model=query.model)
        media_type = parsed["media_type"]
        ext = "json" if text else media.extension(media_type) if media_type in ("image/png", "video/mp4") else "bin"
        store = storage.store_for(v.settings, "validator")
        path, _ = store.put(parsed["data"], ext)
        frames = parsed["frames"] and store.put(parsed["frames"], media.FRAMES_EXTENSION)[0]
        return Reply("answered", latency, dict(
            media_type=media_type, artifact_path=str(path), frames_path=str(frames) if frames else None,
            claimed_sha256=parsed["claimed_sha256"], environment=parsed["environment"], http_status=200,
            trajectory_root=parsed.get("trajectory_root"), pixel_sha256=_pixels_known(query.request, parsed)),
            data=parsed["data"], frames=parsed["frames"])
    except MinerError as exc:
        status = "busy" if busy_ok and exc.status == 429 else "rejected" if busy_ok and exc.status == 400 \
            else "timeout" if exc.timed_out else "error"
        return Reply(status, time.monotonic() - t0, dict(http_status=exc.status or None, error=str(exc)[:2000]))
    except MalformedAnswer as exc:
        return Reply("error", time.monotonic() - t0, dict(http_status=200, error=f"malformed answer: {exc}"[:2000]))
    except storage.StoreError as exc:  # the answer came, and we could not keep it: our failure, not the miner's
        log.warning("an answer from %s was not stored: %s", query.hotkey, exc)
        return Reply("lost", time.monotonic() - t0, dict(
            http_status=200, error=f"the validator's artifact store failed; not the miner's failure: {exc}"[:2000]))


def record_reply(v: Validator, s, response_id: int, reply: Reply) -> Response:
    """The reply on its response row; a failure counted against the miner at once."""
    response = records.record_answer(s, response_id=response_id, status=reply.status, latency_s=reply.latency_s,
                                     **reply.fields)
    if reply.status not in ("answered", "busy", "rejected", "lost"):
        count_outcome(v, s, response, request_success=False, verified=False)
    return response
