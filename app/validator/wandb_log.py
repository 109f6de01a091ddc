"""Weights & Biases logging of samples and scores (optional; works offline).

Enabled with SEEDGRID_WANDB=true (`seedgrid up --wandb`). Each call logs the challenges
settled since the last call: the conditioning image (and the canny map) of an image-conditioned
one, the reproduction and every miner's answer as wandb.Image or
wandb.Video (from their files; MP4 needs no extra media packages that way), captioned
with the verdict, plus the leaderboard as a table. With WANDB_MODE=offline the run is
written under WANDB_DIR for a later `wandb sync`.
"""

from __future__ import annotations

import logging
import threading

from app.validator import views

log = logging.getLogger(__name__)

_run = None
_lock = threading.Lock()
_logged: set[str] = set()


def _ensure_run(settings):
    global _run
    if _run is None:
        import wandb

        _run = wandb.init(project=settings.wandb_project, name=f"validator-netuid{settings.netuid}",
                          config={"netuid": settings.netuid, "chain": settings.chain,
                                  "epoch_length": settings.epoch_length}, reinit="finish_previous")
    return _run


def _media(settings, name: str | None, media_type: str | None, caption: str):
    import wandb

    path = views.find_artifact(settings, name) if name else None
    if path is None:
        return None
    try:
        if path.startswith("s3://"):  # W&B uploads files: a local copy of the stored bytes
            from app import storage

            local = settings.state_path / "wandb-media" / name
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(storage.load(settings, path))
            path = str(local)
        if media_type == "video/mp4":
            return wandb.Video(str(path), caption=caption, format="mp4")
        return wandb.Image(str(path), caption=caption)
    except Exception as exc:  # an unreadable answer (error text in place of media): its verdict says so
        log.info("not logging %s to W&B: %s", name, exc)
        return None


def log_round(settings) -> int:
    """Log newly settled challenges and the leaderboard; returns how many challenges were logged."""
    import wandb

    with _lock:
        run = _ensure_run(settings)
        fresh = [c for c in views.gallery(settings, limit=20) if c["challenge"] not in _logged]
        samples: dict[str, list] = {}
        for c in reversed(fresh):
            items = [_media(settings, i["artifact"], i["media_type"], f"{c['model']} {c['pipeline']}: {i['label']}")
                     for i in c["conditioning"]]
            items.append(_media(settings, c["reproduction"], c["media_type"], f"{c['model']} reproduction: {c['prompt']}"))
            for r in c["responses"]:
                items.append(_media(settings, r["artifact"], r["media_type"],
                                    f"uid {r['uid']}: {r['verdict'] or r['status']} {r['reason'] or ''}"[:200]))
            samples.setdefault(c["model"], []).extend(i for i in items if i is not None)
            _logged.add(c["challenge"])
        board = views.leaderboard(settings)
        table = wandb.Table(columns=["uid", "hotkey", "model", "tier", "score", "weight"],
                            data=[[r["uid"], r["hotkey"], r["model"], r["tier"], r["score"], r["weight"]] for r in board])
        payload = {"leaderboard": table, **{f"score/uid{r['uid']}": r["score"] for r in board}}
        payload.update({f"samples/{model}": items for model, items in samples.items()})
        run.log(payload)
        return len(fresh)


def finish() -> None:
    global _run
    with _lock:
        if _run is not None:
            _run.finish()
            _run = None

