"""Read models behind the dashboard's JSON endpoints and the terminal view."""

from __future__ import annotations

from sqlalchemy import func, select

from app import storage
from app.db import session_scope
from app.models import Challenge, Job, MinerState, Response, TierChange, WeightSet
from app.models.base import aware
from app.models.gateway import JOB_STATUSES
from app.protocol.catalogue import Payload, get_spec

__all__ = ["leaderboard", "organic", "gallery", "history", "last_weights", "recent_verdicts", "artifact_name",
           "find_artifact", "conditioning"]


def leaderboard(settings) -> list[dict]:
    """One row per miner: the current interval's rates, and the last completed interval's (its
    rollover's record in tier_history), which stay visible while a new interval has no outcome yet."""
    with session_scope(settings.sqlalchemy_url) as s:
        latest = select(TierChange.hotkey, func.max(TierChange.epoch).label("epoch")).group_by(TierChange.hotkey) \
            .subquery()
        last = {t.hotkey: t for t in s.scalars(select(TierChange).join(
            latest, (TierChange.hotkey == latest.c.hotkey) & (TierChange.epoch == latest.c.epoch)))}
        rows = []
        for m in s.scalars(select(MinerState).order_by(MinerState.score.desc(), MinerState.uid)):
            checked = m.interval_verified + m.interval_failed
            previous = last.get(m.hotkey)
            rows.append({
                "uid": m.uid, "hotkey": m.hotkey, "model": m.model, "tier": m.tier, "score": m.score,
                "weight": m.last_weight, "reachable": m.reachable, "total_successes": m.total_successes,
                "request_rate": m.interval_request_successes / m.interval_attempts if m.interval_attempts else None,
                "validation_rate": m.interval_verified / checked if checked else None,
                "last_epoch": previous.epoch if previous else None,
                "last_request_rate": previous.request_rate if previous else None,
                "last_validation_rate": previous.validation_rate if previous else None,
            })
        return rows


def rates(row: dict, pct) -> tuple[str, str]:
    """(requests, validation) as a leaderboard shows them: this interval's / the last completed one's."""
    return tuple(f"{pct(row[k])} / {pct(row['last_' + k])}" for k in ("request_rate", "validation_rate"))


def artifact_name(path: str | None) -> str | None:
    """The public name of a content-addressed artifact (its file name), or None."""
    return path.rsplit("/", 1)[-1] if path else None


def find_artifact(settings, name: str) -> str | None:
    """The ref behind a public artifact name (sha256.ext), in either area of the artifact store."""
    for store in storage.all_stores(settings):
        ref = store.ref_for(name)
        if store.exists(ref):
            return ref
    return None


_CONDITIONING_CACHE: dict[str, list[dict]] = {}  # a challenge's id (or its images' digest) -> what was stored


def conditioning(settings, request: dict, key: str | None = None) -> list[dict]:
    """An image-conditioned request's inputs as its pipeline saw them, for the gallery and W&B: the init
    or control image fitted to the request's size, and for canny the edge map made from it. Stored
    once as validator artifacts (PNG, content-addressed); [] for a text-only or unreadable request.
    `key`: what names the request for the cache (a challenge's id: its request never changes), so a
    dashboard poll does not decode and hash a client's megabytes again; else the images' digest."""
    from app.protocol.conditioning import canny, image_digest, load_image
    from app.protocol.media import MediaType, encode

    init, control = request.get("init_image"), request.get("control")
    image = init if isinstance(init, str) else (control or {}).get("image") if isinstance(control, dict) else None
    params = request.get("params") or {}
    if not isinstance(image, str) or not isinstance(params, dict):
        return []
    key = key or f"{image_digest(image)}:{params.get('width')}x{params.get('height')}"
    cached = _CONDITIONING_CACHE.get(key)
    if cached is not None and all(find_artifact(settings, item["artifact"]) for item in cached):
        return cached
    try:
        fitted = load_image(image, "image", int(params["width"]), int(params["height"]))
    except (KeyError, TypeError, ValueError):
        return []
    if isinstance(init, str):
        shown = [(fitted, f"init image, strength {request.get('strength')}")]
    else:
        kind = control.get("type")
        shown = [(fitted, f"control image ({kind}, scale {control.get('conditioning_scale', 1.0)})")]
        if kind == "canny":
            shown.append((canny(fitted), "canny edges (what the ControlNet sees)"))
    out = []
    for pixels, label in shown:
        ref, _ = storage.store_for(settings, "validator").put(encode(pixels[None], MediaType.PNG), "png")
        out.append({"artifact": artifact_name(ref), "media_type": "image/png", "label": label})
    if len(_CONDITIONING_CACHE) > 256:
        _CONDITIONING_CACHE.clear()
    _CONDITIONING_CACHE[key] = out
    return out


def gallery(settings, limit: int = 12) -> list[dict]:
    """Recent settled challenges (reproduced or checked by trajectories, no answer still pending):
    the validator's reproduction, where there is one, beside each miner's answer."""
    with session_scope(settings.sqlalchemy_url) as s:
        pending = select(Response.challenge_id).where(Response.status == "pending") \
            .union(select(Response.challenge_id).where(Response.status == "answered", Response.verdict_rung.is_(None)))
        challenges = list(s.scalars(select(Challenge).where(Challenge.status.in_(("reproduced", "trajectory")),
                                                            Challenge.id.not_in(pending))
                                    .order_by(Challenge.created_at.desc()).limit(limit)))
        uids = {m.hotkey: m.uid for m in s.scalars(select(MinerState))}
        out = []
        for c in challenges:
            responses = list(s.scalars(select(Response).where(Response.challenge_id == c.id).order_by(Response.uid)))
            text = get_spec(c.model).payload is Payload.CHAT
            out.append({
                "challenge": c.id, "model": c.model, "kind": c.kind,
                "prompt": (c.request.get("messages") or [{}])[-1].get("content") if text else c.request.get("prompt"),
                "seed": c.request.get("seed"), "params": c.request.get("params"), "block": c.block,
                "pipeline": c.request.get("pipeline") or get_spec(c.model).pipeline.value,
                "conditioning": conditioning(settings, c.request, key=c.id),
                "reproduction": artifact_name(c.reproduction_path),
                "media_type": "text" if text else get_spec(c.model).media_type.value,
                "responses": [{
                    "uid": uids.get(r.hotkey, r.uid), "hotkey": r.hotkey, "status": r.status,
                    "artifact": artifact_name(r.artifact_path) if r.media_type in ("image/png", "video/mp4") else None,
                    "media_type": r.media_type, "verdict": r.verdict_rung, "similarity": r.verdict_similarity,
                    "reason": r.verdict_reason or r.error, "detail": r.verdict_detail, "latency_s": r.latency_s,
                    "text": answer_text(settings, r.artifact_path) if text else None,
                } for r in responses],
            })
        return out


TEXT_SHOWN = 400  # characters of a text answer the gallery shows


def answer_text(settings, path: str | None) -> str | None:
    """A stored text answer's text (its JSON artifact), cut for the gallery; None when unreadable."""
    import json

    try:
        text = json.loads(storage.load(settings, path)).get("text") if path else None
    except (storage.StoreError, OSError, ValueError, AttributeError):
        return None
    return text[:TEXT_SHOWN] if isinstance(text, str) else None


def history(settings) -> list[dict]:
    """Tiers and scores per epoch, per miner (from tier_history)."""
    with session_scope(settings.sqlalchemy_url) as s:
        epochs: dict[int, list] = {}
        for t in s.scalars(select(TierChange).order_by(TierChange.epoch, TierChange.uid)):
            epochs.setdefault(t.epoch, []).append({"uid": t.uid, "hotkey": t.hotkey, "from": t.from_tier,
                                                   "to": t.to_tier, "score": t.score, "reason": t.reason})
        return [{"epoch": e, "miners": rows} for e, rows in sorted(epochs.items())]


def last_weights(settings) -> dict | None:
    with session_scope(settings.sqlalchemy_url) as s:
        ws = s.scalar(select(WeightSet).where(WeightSet.status == "set").order_by(WeightSet.epoch.desc()).limit(1))
        if ws is None:
            return None
        return {"epoch": ws.epoch, "block": ws.block, "version_key": ws.version_key,
                "weights": {int(k): v for k, v in ws.weights.items()}}


def recent_verdicts(settings, limit: int = 8) -> list[dict]:
    with session_scope(settings.sqlalchemy_url) as s:
        rows = s.execute(select(Response, Challenge.model).join(Challenge, Challenge.id == Response.challenge_id)
                         .where((Response.verdict_rung.is_not(None)) | (Response.status.in_(("error", "timeout"))))
                         .order_by(Response.id.desc()).limit(limit)).all()
        return [{"uid": r.uid, "model": model, "verdict": r.verdict_rung or r.status, "similarity": r.verdict_similarity,
                 "latency_s": r.latency_s, "reason": r.verdict_reason or r.error, "detail": r.verdict_detail}
                for r, model in rows]


def recent_tier_changes(settings, limit: int = 6) -> list[dict]:
    with session_scope(settings.sqlalchemy_url) as s:
        rows = s.scalars(select(TierChange).where(TierChange.from_tier != TierChange.to_tier)
                         .order_by(TierChange.id.desc()).limit(limit))
        return [{"epoch": t.epoch, "uid": t.uid, "from": t.from_tier, "to": t.to_tier, "reason": t.reason}
                for t in rows]


def organic(settings, window_s: float = 600.0) -> dict:
    """The gateway's traffic over the last `window_s` seconds: jobs per minute, success rate,
    p50/p95 latency of done jobs, failovers (failed attempts) and the sampled verdicts."""
    from datetime import datetime, timedelta, timezone

    import numpy as np

    since = datetime.now(timezone.utc) - timedelta(seconds=window_s)
    with session_scope(settings.sqlalchemy_url) as s:
        jobs = list(s.scalars(select(Job).where(Job.created_at >= since)))
        ids = [j.id for j in jobs]
        attempts = list(s.scalars(select(Response).where(Response.challenge_id.in_(ids)))) if ids else []
    finished = [j for j in jobs if j.status in ("done", "failed")]
    latencies = [(aware(j.finished_at) - aware(j.created_at)).total_seconds() for j in jobs
                 if j.status == "done" and j.finished_at]
    verdicts: dict[str, int] = {}
    delivered = {j.response_id for j in jobs if j.sampled}
    for r in attempts:
        if r.id in delivered:
            key = r.verdict_rung or "pending"
            verdicts[key] = verdicts.get(key, 0) + 1
    return {
        "window_s": window_s, "jobs": len(jobs), "jobs_per_minute": len(jobs) / (window_s / 60),
        "success_rate": sum(j.status == "done" for j in finished) / len(finished) if finished else None,
        "latency_p50_s": float(np.percentile(latencies, 50)) if latencies else None,
        "latency_p95_s": float(np.percentile(latencies, 95)) if latencies else None,
        "failovers": sum(r.status in ("error", "timeout") for r in attempts),
        "by_status": {st: sum(j.status == st for j in jobs) for st in JOB_STATUSES},
        "verdicts": verdicts,
    }
