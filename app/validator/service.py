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
    metagraph = chain(settings).metagraph()
    neurons = [n for n in metagraph if n.axon and n.hotkey != me]
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
        forgotten = records.forget_deregistered(s, {n.hotkey for n in metagraph}) if metagraph else []
    if forgotten:
        log.info("forgot %d miner(s) no longer registered on the subnet: %s", len(forgotten), ", ".join(forgotten))
    return {"neurons": len(neurons), "reachable": reachable, "forgotten": len(forgotten)}


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
SETTLE_MARGIN_S = 30.0  # queue delays on a busy I/O worker before the sweep calls a query lost


def query_miner(settings: Settings, response_id: int) -> str:
    """Send the challenge to one miner; store its bytes; count a failed request at once.

    Whatever the miner does (any status, any JSON shape, any size, any speed) ends here
    as an answered response or a failure recorded against that miner, within the
    model's timeout plus the grace: the client enforces one total deadline and a cap on
    the reply's size while it streams.
    """
    from app.net.client import MinerClient, MinerError
    from app.net.schemas import MalformedAnswer, parse_answer

    with session_scope(settings.sqlalchemy_url) as s:
        response = s.get(Response, response_id)
        if response.status != "pending":
            return response.status  # a redelivered task: already sent (the sweep settles a lost one)
        challenge = s.get(Challenge, response.challenge_id)
        miner = s.get(MinerState, response.hotkey)
        if miner is None:  # it left the subnet after the round chose it
            response.status, response.error = "lost", "the miner left the subnet before it was queried"
            return response.status
        response.status = "sent"
        request, model, axon = dict(challenge.request), challenge.model, miner.axon
    deadline = settings.model_timeout(model) + settings.query_grace
    t0 = time.monotonic()
    fields: dict = {}
    try:
        answer = MinerClient(wallet(settings)).generate(f"http://{axon}", response.hotkey, request,
                                                        timeout=deadline)
        latency = time.monotonic() - t0
        parsed = parse_answer(answer, request_id=request["request_id"], model=model)
        media_type = parsed["media_type"]
        ext = media.extension(media_type) if media_type in ("image/png", "video/mp4") else "bin"
        path, _ = artifacts.store(settings.validator_artifacts_dir, parsed["data"], ext)
        status = "answered"
        fields = dict(media_type=media_type, artifact_path=str(path), claimed_sha256=parsed["claimed_sha256"],
                      environment=parsed["environment"], http_status=200)
    except MinerError as exc:
        latency = time.monotonic() - t0
        status = "timeout" if exc.timed_out else "error"
        fields = dict(http_status=exc.status or None, error=str(exc)[:2000])
    except MalformedAnswer as exc:
        latency = time.monotonic() - t0
        status, fields = "error", dict(http_status=200, error=f"malformed answer: {exc}"[:2000])
    epoch = epoch_of(chain(settings).block(), settings)
    with session_scope(settings.sqlalchemy_url) as s:
        response = records.record_answer(s, response_id=response_id, status=status, latency_s=latency, **fields)
        if status != "answered":
            _count(s, settings, response, request_success=False, verified=False, epoch=epoch)
        reproduced = s.get(Challenge, response.challenge_id).status == "reproduced"
    return "verify" if status == "answered" and reproduced else status


def settle_stale(settings: Settings, *, now: float | None = None) -> dict:
    """Settle what a lost task left behind (a killed worker, a broker outage); returns what to re-verify.

    - A response still pending or sent well past its query deadline: the query never
      finished on our side, so it is the validator's own failure: status `lost`, no
      outcome against the miner.
    - A challenge whose reproduction never finished: `failed`, like a failed reproduction.
    - An answered response of a reproduced challenge that was never judged: its id is
      returned, to verify again (verification is idempotent).
    """
    from datetime import datetime, timezone

    now_dt = datetime.fromtimestamp(now if now is not None else time.time(), timezone.utc)
    lost, failed, reverify = 0, 0, []
    with session_scope(settings.sqlalchemy_url) as s:
        rows = s.execute(select(Response, Challenge).join(Challenge, Challenge.id == Response.challenge_id)
                         .where(Response.status.in_(("pending", "sent", "answered")),
                                Response.verdict_path.is_(None))).all()
        for response, challenge in rows:
            limit = settings.model_timeout(challenge.model) + settings.query_grace + SETTLE_MARGIN_S
            if (now_dt - _aware(response.created_at)).total_seconds() < limit:
                continue
            if response.status in ("pending", "sent"):
                response.status = "lost"
                response.error = ("the validator did not finish this query in time (a lost task or an outage); "
                                  "its own failure, not counted against the miner")
                lost += 1
            elif challenge.status == "reproduced":
                reverify.append(response.id)
        stale = s.scalars(select(Challenge).where(Challenge.status == "open"))
        for challenge in stale:
            hard = settings.time_limits(challenge.model)[1]
            if (now_dt - _aware(challenge.created_at)).total_seconds() > 2 * hard + SETTLE_MARGIN_S:
                challenge.status, challenge.error = "failed", "the reproduction did not finish (a lost task)"
                failed += 1
    if lost or failed:
        log.warning("settled %d lost queries and %d lost reproductions", lost, failed)
    return {"lost": lost, "failed_reproductions": failed, "reverify": reverify}


def settle_abandoned_generations(settings: Settings) -> int:
    """The validator's own reproductions that a killed GPU worker left running."""
    from app.generation.service import settle_abandoned

    return settle_abandoned(settings)


def _aware(value):
    from datetime import timezone

    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


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
            # Epochs whose window passed while we were down (a Redis or database outage, a
            # stopped beat) are rolled now, in order, never skipped: the first judges the
            # interval the outage cut short, the others had no requests and keep the tiers.
            changes, late = [], list(range(last + 1, epoch))
            for e in (*late, epoch):
                changes += rollover_mod.rollover(s, epoch=e, block=block, tiers=settings.tiers()) or []
    except (IntegrityError, OperationalError) as exc:
        log.info("epoch %d: another process rolled over first (%s)", epoch, type(exc).__name__)
        return {"epoch": epoch, "rolled": False}
    if late:
        log.warning("epochs %s were missed (the validator was down) and rolled over late at block %d",
                    ", ".join(map(str, late)), block)
    moved = [f"epoch {c.epoch} uid {c.uid} {c.from_tier}->{c.to_tier}" for c in changes if c.from_tier != c.to_tier]
    log.info("epoch %d rolled over at block %d: %s", epoch, block, ", ".join(moved) or "no tier changes")
    return {"epoch": epoch, "rolled": True, "late": late, "changes": moved}


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
