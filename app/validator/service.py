"""The validator's work as plain functions; app/tasks/validator.py wraps each in a thin task.

A challenge's journey (DESIGN.md): `sync_miners` learns who serves what (signed
/v1/info); `start_round` builds one challenge per model type and picks its miners;
`query_miner` sends it (signed POST /v1/generate) and stores the bytes; `reproduce`
computes the ground truth once per challenge; `verify_response` judges each answer and
records its outcome; `epoch_tick` rolls tiers over once per epoch; `set_weights` sets
them on the chain once per epoch.
"""

from __future__ import annotations

import base64
import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import redis
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from app.chain import open_chain
from app.chain.bittensor_chain import version_key
from app.chain.wallets import load_wallet
from app.db import session_scope
from app.generation import artifacts, media
from app.generation.catalogue import CATALOGUE, DIFFUSION_MODELS, get_spec
from app.generation.request import parse_request
from app.models import Challenge, Epoch, MinerState, Response
from app.scoring import rollover as rollover_mod
from app.settings import Settings
from app.validator import records
from app.validator.prompts import challenge_prompt
from app.verification.thresholds import threshold_for
from app.verification.verdict import verify

log = logging.getLogger(__name__)


_identities: dict[tuple, tuple] = {}


def _identity(settings: Settings):
    """The validator's wallet and chain, loaded once per process (per identity)."""
    key = (str(settings.wallets_dir), settings.validator_wallet, settings.validator_hotkey, settings.chain,
           settings.netuid, settings.sqlalchemy_url)
    if key not in _identities:
        w = load_wallet(settings.wallets_dir, settings.validator_wallet, settings.validator_hotkey)
        _identities[key] = (w, open_chain(settings, wallet=w))
    return _identities[key]


def wallet(settings: Settings):
    return _identity(settings)[0]


def chain(settings: Settings):
    return _identity(settings)[1]


def _redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.broker_url)


def epoch_of(block: int, settings: Settings) -> int:
    return block // settings.epoch_length


# -- sync ------------------------------------------------------------------------------
def sync_miners(settings: Settings) -> dict:
    """Learn each served neuron's model, volume and our quota from its signed /v1/info."""
    from app.net.client import MinerClient, MinerError

    me = wallet(settings).hotkey.ss58_address
    neurons = [n for n in chain(settings).metagraph() if n.axon and n.hotkey != me]
    client = MinerClient(wallet(settings), timeout=3.0)

    def info(n):
        try:
            return n, client.info(n.url, n.hotkey), None
        except MinerError as exc:
            return n, None, str(exc)

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(info, neurons))
    client.close()
    lowest = settings.tiers().lowest.name
    reachable = 0
    with session_scope(settings.sqlalchemy_url) as s:
        for n, data, error in answers:
            if data and data.get("model") in DIFFUSION_MODELS:
                reachable += 1
                records.upsert_miner(s, hotkey=n.hotkey, uid=n.uid, default_tier=lowest, model=data["model"],
                                     axon=n.axon, reachable=True, total_volume=int(data.get("total_volume", 0)),
                                     quota=int(data.get("volume_per_validator", {}).get(me, 0)),
                                     limit_interval=int(data.get("limit_interval", 600)))
            else:
                if error:
                    log.info("miner uid %d at %s did not answer /v1/info: %s", n.uid, n.axon, error)
                if s.get(MinerState, n.hotkey) is not None:
                    records.upsert_miner(s, hotkey=n.hotkey, uid=n.uid, default_tier=lowest, reachable=False)
    return {"neurons": len(neurons), "reachable": reachable}


# -- rounds ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RoundPlan:
    challenge_id: str
    model: str
    response_ids: list[int]


def _take_send(r: redis.Redis, miner: MinerState) -> bool:
    """Count one request against our quota at this miner for its current window."""
    window = int(time.time() // max(1, miner.limit_interval))
    key = f"seedgrid:validator:sent:{miner.hotkey}:{window}"
    used = r.incr(key)
    r.expire(key, miner.limit_interval + 60)
    if used > miner.quota:
        r.decr(key)
        return False
    return True


def start_round(settings: Settings, *, rng: random.Random | None = None, kind: str = "challenge") -> list[RoundPlan]:
    """One challenge per model type that has reachable miners, sent to a group of them."""
    rng = rng or random.SystemRandom()
    tiers = settings.tiers()
    block = chain(settings).block()
    r = _redis(settings)
    plans = []
    with session_scope(settings.sqlalchemy_url) as s:
        miners = list(s.scalars(select(MinerState).where(MinerState.reachable.is_(True),
                                                         MinerState.model.is_not(None))))
        for model in DIFFUSION_MODELS:
            candidates = [m for m in miners if m.model == model and m.axon
                          and m.interval_attempts < tiers.request_limit(m.tier)]
            rng.shuffle(candidates)
            chosen = []
            for m in candidates:
                if len(chosen) >= settings.challenge_group_size:
                    break
                if _take_send(r, m):
                    chosen.append(m)
            if not chosen:
                continue
            seed = rng.randrange(2**32)
            params = {**get_spec(model).default_params(), **settings.challenge_params.get(model, {})}
            request = parse_request({"model": model, "kind": kind, "seed": seed, "params": params,
                                     "prompt": challenge_prompt(seed, settings.challenge_service_url)})
            challenge = records.create_challenge(s, request=request, block=block)
            ids = [records.add_response(s, challenge_id=challenge.id, miner=m).id for m in chosen]
            plans.append(RoundPlan(challenge.id, model, ids))
    return plans


# -- query -----------------------------------------------------------------------------
def query_miner(settings: Settings, response_id: int) -> str:
    """Send the challenge to one miner; store its bytes; count a failed request at once."""
    from app.net.client import MinerClient, MinerError

    with session_scope(settings.sqlalchemy_url) as s:
        response = s.get(Response, response_id)
        if response.status != "pending":
            return response.status  # a redelivered task: already sent
        challenge = s.get(Challenge, response.challenge_id)
        miner = s.get(MinerState, response.hotkey)
        request, model, axon = dict(challenge.request), challenge.model, miner.axon
    timeout = settings.model_timeout(model)
    t0 = time.monotonic()
    fields: dict = {}
    try:
        with MinerClient(wallet(settings), timeout=timeout + settings.query_grace) as client:
            answer = client.generate(f"http://{axon}", response.hotkey, request)
        latency = time.monotonic() - t0
        data = base64.b64decode(answer.get("data") or "", validate=False)
        media_type = answer.get("media_type")
        ext = media.extension(media_type) if media_type in ("image/png", "video/mp4") else "bin"
        path, _ = artifacts.store(settings.validator_artifacts_dir, data, ext)
        status = "answered" if latency <= timeout + settings.query_grace else "timeout"
        fields = dict(media_type=answer.get("media_type"), artifact_path=str(path),
                      claimed_sha256=answer.get("pixel_sha256"), environment=answer.get("environment"), http_status=200)
    except MinerError as exc:
        latency = time.monotonic() - t0
        status = "timeout" if exc.status in (0, 504) and "time" in exc.error else "error"
        fields = dict(http_status=exc.status or None, error=str(exc)[:2000])
    except (ValueError, TypeError) as exc:  # a malformed body (bad base64, wrong shapes)
        latency = time.monotonic() - t0
        status, fields = "error", dict(error=f"malformed answer: {exc}")
    epoch = epoch_of(chain(settings).block(), settings)
    with session_scope(settings.sqlalchemy_url) as s:
        response = records.record_answer(s, response_id=response_id, status=status, latency_s=latency, **fields)
        if status != "answered":
            _count(s, settings, response, request_success=False, verified=False, epoch=epoch)
        reproduced = s.get(Challenge, response.challenge_id).status == "reproduced"
    return "verify" if status == "answered" and reproduced else status


def _count(s, settings: Settings, response: Response, *, request_success: bool, verified: bool, epoch: int) -> None:
    """Record the outcome. `epoch` is read before the session opens: a chain read inside it
    would need a second connection while this one holds SQLite's write lock."""
    challenge = s.get(Challenge, response.challenge_id)
    records.record_outcome(s, response=response, kind=challenge.kind, model=challenge.model,
                           request_success=request_success, verified=verified,
                           timeout_s=settings.model_timeout(challenge.model), tiers=settings.tiers(), epoch=epoch)


# -- reproduce and verify --------------------------------------------------------------
def reproduce(settings: Settings, challenge_id: str, *, task_id: str | None = None) -> list[int]:
    """The ground truth, once per challenge; returns the answered responses to verify."""
    from app.generation.service import generate_and_record

    with session_scope(settings.sqlalchemy_url) as s:
        challenge = s.get(Challenge, challenge_id)
        request = dict(challenge.request)
        done = challenge.status == "reproduced"
    if not done:
        t0 = time.monotonic()
        try:
            result = generate_and_record(request, settings=settings, task_id=task_id or f"reproduce-{challenge_id}",
                                         worker="validator")
            error = None
        except Exception as exc:  # recorded on the challenge; no miner is penalised for our failure
            log.exception("reproducing challenge %s failed", challenge_id)
            result, error = {}, f"{type(exc).__name__}: {exc}"
        with session_scope(settings.sqlalchemy_url) as s:
            records.record_reproduction(s, challenge_id=challenge_id, pixel_sha256=result.get("pixel_sha256"),
                                        path=result.get("artifact_path"), environment=result.get("environment"),
                                        seconds=time.monotonic() - t0, error=error)
    with session_scope(settings.sqlalchemy_url) as s:
        if s.get(Challenge, challenge_id).status != "reproduced":
            return []
        return list(s.scalars(select(Response.id).where(Response.challenge_id == challenge_id,
                                                        Response.status == "answered",
                                                        Response.verdict_path.is_(None))))


def verify_response(settings: Settings, response_id: int) -> str | None:
    """Judge one answered response against the reproduction and count it (once)."""
    with session_scope(settings.sqlalchemy_url) as s:
        response = s.get(Response, response_id)
        challenge = s.get(Challenge, response.challenge_id)
        if response.verdict_path is not None or challenge.status != "reproduced" or response.status != "answered":
            return response.verdict_path
        expected_path, expected_sha, model = challenge.reproduction_path, challenge.reproduction_sha256, challenge.model
        media_type, artifact_path = response.media_type or "", response.artifact_path
    spec = get_spec(model)
    expected = media.decode(artifacts.load(Path(expected_path)), spec.media_type)
    data = Path(artifact_path).read_bytes() if artifact_path else b""

    def duplicate(pixel_sha256: str) -> str | None:
        with session_scope(settings.sqlalchemy_url) as s:
            return records.duplicate_of(s, pixel_sha256=pixel_sha256, challenge_id=challenge.id)

    verdict = verify(data=data, media_type=media_type, expected_pixels=expected, expected_sha256=expected_sha,
                     expected_media_type=spec.media_type.value, threshold=threshold_for(model, settings),
                     duplicate_of=duplicate)
    epoch = epoch_of(chain(settings).block(), settings)
    try:
        with session_scope(settings.sqlalchemy_url) as s:
            response = records.record_verdict(s, response_id=response_id, verdict=verdict)
            _count(s, settings, response, request_success=verdict.well_formed, verified=verdict.verified,
                   epoch=epoch)
    except IntegrityError:
        log.info("response %d was counted already (redelivered task)", response_id)
    return verdict.path


# -- epochs and weights ----------------------------------------------------------------
def epoch_tick(settings: Settings) -> dict:
    """Roll tiers over once when block // epoch_length has advanced."""
    block = chain(settings).block()
    epoch = epoch_of(block, settings)
    try:
        with session_scope(settings.sqlalchemy_url) as s:
            last = rollover_mod.last_epoch(s)
            if last is None:  # the first tick opens epoch accounting without judging anyone
                s.add(Epoch(epoch=epoch, block=block, miners=0))
                return {"epoch": epoch, "rolled": False, "opened": True}
            if epoch <= last:
                return {"epoch": epoch, "rolled": False}
            changes = rollover_mod.rollover(s, epoch=epoch, block=block, tiers=settings.tiers())
    except (IntegrityError, OperationalError) as exc:
        log.info("epoch %d: another process rolled over first (%s)", epoch, type(exc).__name__)
        return {"epoch": epoch, "rolled": False}
    moved = [f"uid {c.uid} {c.from_tier}->{c.to_tier}" for c in changes or [] if c.from_tier != c.to_tier]
    log.info("epoch %d rolled over at block %d: %s", epoch, block, ", ".join(moved) or "no tier changes")
    return {"epoch": epoch, "rolled": changes is not None, "changes": moved}


def set_weights(settings: Settings) -> dict:
    """Once per epoch: scores -> weights -> the chain."""
    c = chain(settings)
    block = c.block()
    epoch = epoch_of(block, settings)
    shares = {name: spec.incentive_share for name, spec in CATALOGUE.items()}
    try:
        with session_scope(settings.sqlalchemy_url) as s:
            plan = rollover_mod.plan_weights(s, epoch=epoch, block=block, shares=shares, version_key=version_key())
    except (IntegrityError, OperationalError):
        return {"epoch": epoch, "set": False}
    if plan is None:
        return {"epoch": epoch, "set": False}
    error = None
    if not any(w > 0 for w in plan.weights.values()):
        error = "no miner has a positive score yet"
    else:
        try:
            c.set_weights(plan.weights, version_key=version_key())
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
    with session_scope(settings.sqlalchemy_url) as s:
        rollover_mod.finish_weights(s, epoch=epoch, error=error)
    if error:
        log.warning("epoch %d: weights not set: %s", epoch, error)
    return {"epoch": epoch, "set": error is None, "weights": plan.weights, "error": error}


def prune_artifacts(settings: Settings) -> int:
    """Delete validator artifacts older than artifact_retention; the records stay."""
    cutoff = time.time() - settings.artifact_retention
    removed = 0
    for path in settings.validator_artifacts_dir.rglob("*"):
        if path.is_file() and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
