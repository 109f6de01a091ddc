"""Read models for operators: the leaderboard (CLI now, the dashboard later)."""

from __future__ import annotations

from sqlalchemy import select

from app.db import session_scope
from app.models import MinerState


def leaderboard(settings) -> list[dict]:
    with session_scope(settings.sqlalchemy_url) as s:
        rows = []
        for m in s.scalars(select(MinerState).order_by(MinerState.score.desc(), MinerState.uid)):
            checked = m.interval_verified + m.interval_failed
            rows.append({
                "uid": m.uid, "hotkey": m.hotkey, "model": m.model, "tier": m.tier, "score": m.score,
                "weight": m.last_weight, "reachable": m.reachable, "total_successes": m.total_successes,
                "request_rate": m.interval_request_successes / m.interval_attempts if m.interval_attempts else None,
                "validation_rate": m.interval_verified / checked if checked else None,
            })
        return rows
