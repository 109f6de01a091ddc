"""Hostile miners against a real validator I/O worker: every answer counts, nothing stalls.

A raw HTTP server (tests/fakes/hostile_miner.py) answers on one port per misbehaviour:
malformed JSON shapes, garbage behind error statuses, a 200 MB body (declared and
chunked), a gzip bomb, a byte every half second, and silence. The validator's real I/O
worker (`seedgrid worker io`) queries each one. Each response must end with exactly one
failed outcome against its miner within its deadline, and the worker's memory and
threads must stay bounded.
"""

import json
import os
import subprocess
import sys
import time

import psutil
import pytest
from sqlalchemy import func, select

from app.chain.local import LocalChain
from app.chain.wallets import create_wallet
from app.db import session_scope
from app.models import MinerState, Outcome, Response
from app.protocol.request import parse_request
from app.validator import records

from ..conftest import ROOT, free_port
from ..fakes.hostile_miner import MODES

pytestmark = pytest.mark.slow

NETUID = 6
TIMEOUT_SCALE = 0.25  # RealisticVision's 12 s timeout becomes 3 s
GRACE = 1.0
DEADLINE = 12 * TIMEOUT_SCALE + GRACE  # what the validator allows one query, all included


@pytest.fixture(scope="module")
def hostile(settings, database, module_processes, redis_url):
    env = {"SEEDGRID_NETUID": str(NETUID), "SEEDGRID_TIMEOUT_SCALE": str(TIMEOUT_SCALE),
           "SEEDGRID_QUERY_GRACE": str(GRACE), "SEEDGRID_VALIDATOR_WALLET": "hostile",
           "SEEDGRID_VALIDATOR_HOTKEY": "validator"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    from app.config import get_settings

    get_settings.cache_clear()
    ports = {free_port(): mode for mode in MODES}
    miners: dict[str, str] = {}
    server = subprocess.Popen([sys.executable, "-m", "tests.fakes.hostile_miner", json.dumps(ports)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        chain = LocalChain(database, NETUID)
        chain.init(block_time=0.5)
        w, _ = create_wallet(settings.wallets_dir, "hostile", "validator")
        chain.register(w.hotkey.ss58_address, w.coldkeypub.ss58_address)
        with session_scope(database) as s:
            for i, (port, mode) in enumerate(ports.items()):
                mw, _ = create_wallet(settings.wallets_dir, "hostile", mode)
                miners[mode] = mw.hotkey.ss58_address
                records.upsert_miner(s, hotkey=mw.hotkey.ss58_address, uid=100 + i, default_tier="Bronze",
                                     model="RealisticVision", axon=f"127.0.0.1:{port}", reachable=True,
                                     total_volume=40, quota=40, limit_interval=600)
        worker = module_processes("worker", "io", "--name", "hostile", env=env)
        from app.celery_app import celery_app

        deadline = time.monotonic() + 90
        while not any(n.startswith("hostile-io@") for r in (celery_app.control.ping(timeout=0.5) or []) for n in r):
            assert worker.proc.poll() is None and time.monotonic() < deadline, worker.output()[-3000:]
        yield {"miners": miners, "worker": worker, "url": database}
    finally:
        server.kill()
        with session_scope(database) as s:  # gone with this module: no later round or leaderboard sees them
            for m in s.scalars(select(MinerState).where(MinerState.hotkey.in_(list(miners.values())))):
                s.delete(m)
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        get_settings.cache_clear()


def test_every_hostile_answer_ends_in_one_failed_outcome_in_time(hostile):
    from app.tasks.validator import query_miner

    proc = psutil.Process(hostile["worker"].proc.pid)
    rss_before = proc.memory_info().rss
    request = parse_request({"model": "RealisticVision", "prompt": "a hostile test", "seed": 7,
                             "params": {"steps": 2, "width": 256, "height": 256}})
    with session_scope(hostile["url"]) as s:
        challenge = records.create_challenge(s, request=request, block=0)
        ids = {mode: records.add_response(s, challenge_id=challenge.id, miner=s.get(MinerState, hk)).id
               for mode, hk in hostile["miners"].items()}
    sent = time.monotonic()
    for response_id in ids.values():
        query_miner.apply_async((response_id,), queue="io")
    # 15 queries run at once on the worker's 16 threads: all done within one deadline, plus queueing
    limit = sent + DEADLINE + 10
    while time.monotonic() < limit:
        with session_scope(hostile["url"]) as s:
            counted = s.scalar(select(func.count()).select_from(Outcome).where(Outcome.response_id.in_(ids.values())))
        if counted == len(ids):
            break
        time.sleep(0.25)
    peak_rss = proc.memory_info().rss
    with session_scope(hostile["url"]) as s:
        for mode, response_id in ids.items():
            response = s.get(Response, response_id)
            outcomes = list(s.scalars(select(Outcome).where(Outcome.response_id == response_id)))
            assert len(outcomes) == 1, f"{mode}: {len(outcomes)} outcomes; status {response.status}, {response.error}"
            assert response.status in ("error", "timeout"), (mode, response.status, response.error)
            assert not outcomes[0].request_success and not outcomes[0].verified and outcomes[0].reward < 0, mode
            assert response.latency_s <= DEADLINE + 0.5, (mode, response.latency_s)
            assert response.artifact_path is None, f"{mode}: an unusable answer was stored"
            miner = s.get(MinerState, hostile["miners"][mode])
            assert miner.interval_attempts == 1 and miner.interval_request_successes == 0 and miner.score < 0, mode
        errors = {mode: s.get(Response, rid).error for mode, rid in ids.items()}
    assert "reply_too_large" in errors["huge"] and "reply_too_large" in errors["huge_declared"], errors
    assert "client_timeout" in errors["trickle"] and "client_timeout" in errors["silent"], errors
    assert "malformed answer" in errors["media_type_object"] and "media_type" in errors["media_type_object"]
    assert "400" in errors["error_list"] and "500" in errors["garbage_500"], errors
    # bounded: the 200 MB replies were cut at the cap while streaming, and no thread was left behind
    assert peak_rss - rss_before < 150 * 2**20, f"the worker grew by {(peak_rss - rss_before) / 2**20:.0f} MiB"
    from workers.validator import IO_CONCURRENCY

    assert proc.num_threads() <= IO_CONCURRENCY + 4, f"{proc.num_threads()} threads (pool of {IO_CONCURRENCY})"
    assert hostile["worker"].proc.poll() is None, "the I/O worker survived"


def test_a_response_lost_on_our_side_is_settled_as_our_failure(hostile, settings):
    from datetime import timedelta

    from app.config import get_settings
    from app.models.base import utcnow
    from app.validator.context import open_validator
    from app.validator.judging import settle_stale

    request = parse_request({"model": "RealisticVision", "prompt": "a lost query", "seed": 8,
                             "params": {"steps": 2, "width": 256, "height": 256}})
    hotkey, other = hostile["miners"]["list"], hostile["miners"]["null"]
    with session_scope(hostile["url"]) as s:
        challenge = records.create_challenge(s, request=request, block=0)
        lost = records.add_response(s, challenge_id=challenge.id, miner=s.get(MinerState, hotkey))
        fresh = records.add_response(s, challenge_id=challenge.id, miner=s.get(MinerState, other))
        lost.created_at = utcnow() - timedelta(minutes=10)  # its query task never ran (a killed worker)
        attempts = s.get(MinerState, hotkey).interval_attempts
    result = settle_stale(open_validator(get_settings()))
    assert result["lost"] >= 1
    with session_scope(hostile["url"]) as s:
        assert s.get(Response, lost.id).status == "lost" and "its own failure" in s.get(Response, lost.id).error
        assert s.get(Response, fresh.id).status == "pending", "a response within its deadline is left alone"
        assert s.scalar(select(func.count()).select_from(Outcome).where(Outcome.response_id == lost.id)) == 0
        assert s.get(MinerState, hotkey).interval_attempts == attempts, "not counted against the miner"
