"""Epochs: the tier rollover once per epoch, weights once per epoch, artifact pruning.

Both epoch jobs are keyed on the epoch in the database (app/validator/records.py), so
frequent ticks, two beats or a redelivered task never roll over or set weights twice.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy.exc import IntegrityError, OperationalError

from app import storage
from app.chain.base import version_key
from app.models import Epoch
from app.protocol.catalogue import CATALOGUE
from app.validator import records
from app.validator.context import Validator

log = logging.getLogger(__name__)


def epoch_tick(v: Validator) -> dict:
    """Roll tiers over once when block // epoch_length has advanced."""
    block = v.chain.block()
    epoch = v.epoch_of(block)
    try:
        with v.sessions() as s:
            last = records.last_epoch(s)
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
                changes += records.rollover(s, epoch=e, block=block, tiers=v.tiers) or []
    except (IntegrityError, OperationalError) as exc:
        log.info("epoch %d: another process rolled over first (%s)", epoch, type(exc).__name__)
        return {"epoch": epoch, "rolled": False}
    if late:
        log.warning("epochs %s were missed (the validator was down) and rolled over late at block %d",
                    ", ".join(map(str, late)), block)
    moved = [f"epoch {c.epoch} uid {c.uid} {c.from_tier}->{c.to_tier}" for c in changes if c.from_tier != c.to_tier]
    log.info("epoch %d rolled over at block %d: %s", epoch, block, ", ".join(moved) or "no tier changes")
    return {"epoch": epoch, "rolled": True, "late": late, "changes": moved}


def set_weights(v: Validator) -> dict:
    """Once per epoch: scores -> weights -> the chain."""
    block = v.chain.block()
    epoch = v.epoch_of(block)
    shares = {name: spec.incentive_share for name, spec in CATALOGUE.items()}
    try:
        with v.sessions() as s:
            plan = records.plan_weights(s, epoch=epoch, block=block, shares=shares, version_key=version_key())
    except (IntegrityError, OperationalError):
        return {"epoch": epoch, "set": False}
    if plan is None:
        return {"epoch": epoch, "set": False}
    error = None
    if not any(w > 0 for w in plan.weights.values()):
        error = "no miner has a positive score yet"
    else:
        try:
            v.chain.set_weights(plan.weights, version_key=version_key())
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
    with v.sessions() as s:
        records.finish_weights(s, epoch=epoch, error=error)
    if error:
        log.warning("epoch %d: weights not set: %s", epoch, error)
    return {"epoch": epoch, "set": error is None, "weights": plan.weights, "error": error}


def prune_artifacts(v: Validator, *, now: float | None = None) -> int:
    """Delete the artifacts older than artifact_retention, in both areas of the store (received answers,
    reproductions): a folder or a bucket. The records stay; a pruned result is a 410 at the gateway."""
    cutoff = (now or time.time()) - v.settings.artifact_retention
    return sum(store.prune(cutoff) for store in storage.all_stores(v.settings))
