"""Rollover happens exactly once per epoch and outcomes count once, on SQLite and Postgres."""

import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError

from app import migrations
from app.db import session_scope
from app.models import Challenge, Epoch, MinerState, Outcome, Response, TierChange
from app.protocol.request import parse_request
from app.scoring.tiers import TierTable
from app.validator import records
from app.validator.records import rollover


def seed_db(url):
    migrations.upgrade(url)
    with session_scope(url) as s:
        for i in range(5):
            records.upsert_miner(s, hotkey=f"hk{i}", uid=i, default_tier="Bronze", model="RealisticVision",
                                 axon="127.0.0.1:1", reachable=True, total_volume=40, quota=10)
        req = parse_request({"model": "RealisticVision", "prompt": "a cat", "seed": 1, "request_id": "c1"})
        records.create_challenge(s, request=req, block=10)
        miner = s.get(MinerState, "hk0")
        response = records.add_response(s, challenge_id="c1", miner=miner)
        response.status, response.latency_s = "answered", 1.0
        return response.id


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/r.db"
    return request.getfixturevalue("postgres_url")


def roll(url, epoch, results):
    try:
        with session_scope(url) as s:
            results.append(rollover(s, epoch=epoch, block=epoch * 360, tiers=TierTable()) is not None)
    except (IntegrityError, OperationalError):
        results.append(False)


def test_concurrent_rollovers_of_one_epoch_happen_once(url):
    seed_db(url)
    results: list[bool] = []
    threads = [threading.Thread(target=roll, args=(url, 7, results)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]
    roll(url, 7, results)  # a retried task, later
    assert results[-1] is False
    with session_scope(url) as s:
        assert s.scalar(select(func.count()).select_from(Epoch)) == 1
        assert s.scalar(select(func.count()).select_from(TierChange)) == 5


def test_an_outcome_counts_once(url):
    response_id = seed_db(url)
    for _ in range(3):  # a redelivered verify task
        try:
            with session_scope(url) as s:
                from app.models import Response

                response = s.get(Response, response_id)
                records.record_outcome(s, response=response, kind="challenge", model="RealisticVision",
                                       request_success=True, verified=True, timeout_s=12, tiers=TierTable(), epoch=1)
        except IntegrityError:
            pass
    with session_scope(url) as s:
        assert s.scalar(select(func.count()).select_from(Outcome)) == 1
        m = s.get(MinerState, "hk0")
        assert (m.interval_attempts, m.interval_verified, m.total_successes) == (1, 1, 1)
        assert m.score == pytest.approx(0.05 * (0.45 - 0.4 * (1 / 12) ** 3))


def test_rollover_resets_intervals_and_keeps_totals(url):
    seed_db(url)
    with session_scope(url) as s:
        m = s.get(MinerState, "hk1")
        m.interval_attempts, m.interval_request_successes, m.interval_verified = 10, 10, 10
        m.total_successes = 3_600
    roll(url, 3, [])
    with session_scope(url) as s:
        m = s.get(MinerState, "hk1")
        assert m.tier == "Silver" and m.interval_attempts == 0 and m.total_successes == 3_600
        change = s.scalar(select(TierChange).where(TierChange.hotkey == "hk1"))
        assert (change.from_tier, change.to_tier, change.request_rate) == ("Bronze", "Silver", 1.0)


def test_the_last_intervals_rates_stay_visible_after_a_rollover(url, tmp_path):
    """Right after a rollover the current interval has no outcome yet ("-"); the leaderboard, in
    `seedgrid validator status` and its JSON (the dashboard's and the terminal view's source), shows
    the interval just completed beside it."""
    import json
    import os
    import subprocess

    from ..helpers.commands import SEEDGRID

    seed_db(url)
    with session_scope(url) as s:
        m = s.get(MinerState, "hk1")
        m.interval_attempts, m.interval_request_successes, m.interval_verified, m.interval_failed = 10, 8, 6, 2
    roll(url, 3, [])
    env = {**os.environ, "SEEDGRID_DATABASE_URL": url, "SEEDGRID_STATE_DIR": str(tmp_path / "state")}
    shown = subprocess.run([SEEDGRID, "validator", "status", "--json"], env=env, capture_output=True, text=True,
                           timeout=60)
    assert shown.returncode == 0, shown.stderr
    row = next(r for r in json.loads(shown.stdout) if r["hotkey"] == "hk1")
    assert (row["request_rate"], row["validation_rate"]) == (None, None), "a new interval: nothing yet"
    assert (row["last_epoch"], row["last_request_rate"], row["last_validation_rate"]) == (3, 0.8, 0.75)
    table = subprocess.run([SEEDGRID, "validator", "status"], env=env, capture_output=True, text=True, timeout=60)
    line = next(ln for ln in table.stdout.splitlines() if ln.rstrip().endswith("hk1"))
    assert "- / 80.0%" in line and "- / 75.0%" in line, table.stdout
    assert "now / last" in table.stdout.splitlines()[0]


def test_a_miner_that_left_the_subnet_is_forgotten_and_its_late_answer_counts_nowhere(url):
    response_id = seed_db(url)
    with session_scope(url) as s:
        assert records.forget_deregistered(s, {"hk1", "hk2", "hk3", "hk4"}) == ["hk0"]
    with session_scope(url) as s:
        assert s.get(MinerState, "hk0") is None and s.scalar(select(func.count()).select_from(MinerState)) == 4
        response = s.get(Response, response_id)
        assert records.record_outcome(s, response=response, kind="challenge", model="RealisticVision",
                                      request_success=True, verified=True, timeout_s=12.0, tiers=TierTable(),
                                      epoch=0) is None
        assert s.scalar(select(func.count()).select_from(Outcome)) == 0
        # the same hotkey registering again starts from the lowest tier with nothing carried over
        again = records.upsert_miner(s, hotkey="hk0", uid=9, default_tier="Bronze", reachable=True)
        assert (again.uid, again.tier, again.score, again.total_successes) == (9, "Bronze", 0.0, 0)


def test_a_miners_error_text_is_stored_whatever_bytes_it_holds(url):
    response_id = seed_db(url)
    hostile = "boom\x00\x07 \ud800 " + "x" * 3000  # NUL (PostgreSQL refuses it), a bell, a lone surrogate
    with session_scope(url) as s:
        records.record_answer(s, response_id=response_id, status="error", latency_s=0.1, http_status=500,
                              error=hostile)
    with session_scope(url) as s:
        stored = s.get(Response, response_id).error
    assert stored.startswith("boom\\x00\\x07 \\ud800 ") and len(stored) <= 2000 * 6


def test_a_replay_is_judged_by_answer_order_not_verdict_order(url):
    """An honest answer to challenge A, judged late, is not flagged because a replayer's answer to a
    later challenge B carries the same pixels and was judged first; the replayer's answer is."""
    migrations.upgrade(url)
    with session_scope(url) as s:
        for i in range(2):
            records.upsert_miner(s, hotkey=f"hk{i}", uid=i, default_tier="Bronze", model="RealisticVision",
                                 axon="127.0.0.1:1", reachable=True, total_volume=40, quota=10)
        ids = {}
        for cid, seed in (("A", 1), ("B", 2)):
            req = parse_request({"model": "RealisticVision", "prompt": "a cat", "seed": seed, "request_id": cid})
            records.create_challenge(s, request=req, block=10)
            ids[cid] = records.add_response(s, challenge_id=cid, miner=s.get(MinerState, f"hk{len(ids)}")).id
        s.get(Response, ids["B"]).pixel_sha256 = "f" * 64  # the replayer's answer to B, judged first
    with session_scope(url, read_only=True) as s:
        assert records.duplicate_of(s, pixel_sha256="f" * 64, challenge_id="A", response_id=ids["A"]) is None
    with session_scope(url) as s:
        s.get(Response, ids["A"]).pixel_sha256 = "f" * 64  # the honest answer to A, judged now
    with session_scope(url, read_only=True) as s:
        assert records.duplicate_of(s, pixel_sha256="f" * 64, challenge_id="B", response_id=ids["B"]) == "challenge A"
    with session_scope(url) as s:
        s.get(Challenge, "A").reproduction_sha256 = "e" * 64
    with session_scope(url, read_only=True) as s:  # the ground truth of another challenge counts at any time
        assert records.duplicate_of(s, pixel_sha256="e" * 64, challenge_id="B", response_id=ids["B"]) == "challenge A"
    with session_scope(url) as s:  # a client sends A's job again: the same pixels are the honest answer
        req = parse_request({"model": "RealisticVision", "prompt": "a cat", "seed": 1, "request_id": "C",
                             "kind": "inference"})
        records.create_challenge(s, request=req, block=11)
        ids["C"] = records.add_response(s, challenge_id="C", miner=s.get(MinerState, "hk0")).id
    with session_scope(url, read_only=True) as s:
        assert records.duplicate_of(s, pixel_sha256="f" * 64, challenge_id="C", response_id=ids["C"]) is None
        assert records.duplicate_of(s, pixel_sha256="e" * 64, challenge_id="C", response_id=ids["C"]) is None


def test_an_answers_pixels_are_known_when_it_is_recorded(url):
    """A replay is found by the answers recorded before it, before any of them is judged."""
    import numpy as np

    from app.protocol import media
    from app.validator.rounds import _pixels_known

    picture = np.random.default_rng(0).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    png = media.encode_png(picture)
    image = {"model": "RealisticVision", "prompt": "a cat", "seed": 1}
    assert _pixels_known(image, {"media_type": "image/png", "data": png, "frames": None}) == media.pixel_sha256(picture)
    assert _pixels_known(image, {"media_type": "image/png", "data": b"not a png", "frames": None}) is None
    assert _pixels_known(image, {"media_type": "video/mp4", "data": png, "frames": None}) is None
    assert _pixels_known({"model": "Gemma7b"}, {"media_type": "application/json", "data": b"{}", "frames": None}) is None
    migrations.upgrade(url)
    with session_scope(url) as s:
        records.upsert_miner(s, hotkey="early", uid=7, default_tier="Bronze", model="RealisticVision",
                             axon="127.0.0.1:1", reachable=True, total_volume=40, quota=10)
        ids = {}
        for cid, seed in (("early-A", 1), ("early-B", 2)):
            records.create_challenge(s, request=parse_request({**image, "seed": seed, "request_id": cid}), block=20)
            ids[cid] = records.add_response(s, challenge_id=cid, miner=s.get(MinerState, "early")).id
            records.record_answer(s, response_id=ids[cid], status="answered", latency_s=0.1, media_type="image/png",
                                  pixel_sha256=media.pixel_sha256(picture))
    with session_scope(url, read_only=True) as s:  # neither judged yet: the later one is the replay
        digest = media.pixel_sha256(picture)
        assert records.duplicate_of(s, pixel_sha256=digest, challenge_id="early-B", response_id=ids["early-B"]) \
            == "challenge early-A"
        assert records.duplicate_of(s, pixel_sha256=digest, challenge_id="early-A", response_id=ids["early-A"]) is None
