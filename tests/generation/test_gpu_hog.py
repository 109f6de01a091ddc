"""A low-stake caller cannot hog a miner's GPU: a real miner API and GPU worker, real Redis, btauth.

- Costly requests beyond the caller's share of the GPU are refused (429) before they
  reach the queue, so the highest-stake caller's ordinary request is served in time.
- A request whose sender stopped waiting never starts (Celery's expires), and one that
  runs past its limit is stopped between steps: no generation outlives its hard limit.
"""

import threading
import time

import pytest
from sqlalchemy import select

from app.db import session_scope
from app.generation.limits import model_timeout, time_limits
from app.models import Generation
from app.protocol.client import MinerClient, MinerError

from ..conftest import free_port
from ..helpers.small_requests import small_request
from ..helpers.subnet import new_subnet

pytestmark = pytest.mark.slow

NETUID = 7
ENV = {"SEEDGRID_NETUID": str(NETUID), "SEEDGRID_TOTAL_VOLUME": "40", "SEEDGRID_MAX_CONCURRENT_REQUESTS": "4",
       "SEEDGRID_METAGRAPH_TTL": "0.5"}


@pytest.fixture(scope="module")
def miner(settings, database, module_processes):
    wallets = new_subnet(settings, database, NETUID, "hog", {"miner": 0, "small": 20_000, "big": 1_000_000})
    worker = module_processes("--model", "RealisticVision", "--name", "hog", env=ENV, worker=True)
    port = free_port()
    server = module_processes("miner", "serve", "--model", "RealisticVision", "--wallet", "hog", "--hotkey", "miner",
                              "--port", str(port), "--no-announce", env=ENV)
    from app.celery_app import celery_app

    worker.wait_ready(celery_app)
    url = f"http://127.0.0.1:{port}"
    server.wait_http(url + "/healthz")
    return {"url": url, "hotkey": wallets["miner"].hotkey.ss58_address, "wallets": wallets}


def call(miner, who, raw, results, key):
    started = time.monotonic()
    try:
        out = MinerClient(miner["wallets"][who], timeout=60).generate(miner["url"], miner["hotkey"], raw)
        results[key] = ("ok", time.monotonic() - started, out)
    except MinerError as exc:
        results[key] = (exc, time.monotonic() - started, None)


def test_a_low_stake_burst_no_longer_times_out_the_high_stake_caller(settings, miner):
    results: dict = {}
    # the largest valid request is refused outright: it is far beyond a minimum-stake caller's share
    call(miner, "small", small_request("RealisticVision", seed=1, steps=50, width=1024, height=1024), results, "max")
    assert isinstance(results["max"][0], MinerError) and results["max"][0].status == 429
    assert results["max"][0].error == "gpu_budget_exceeded" and "retry" in results["max"][0].detail
    # a burst of three costly requests (each within the share alone) at once, then the big caller's ordinary one
    hogs = [threading.Thread(target=call, args=(miner, "small", small_request(
        "RealisticVision", seed=10 + i, steps=12, width=1024, height=1024), results, f"hog{i}")) for i in range(3)]
    for t in hogs:
        t.start()
    time.sleep(0.5)
    call(miner, "big", small_request("RealisticVision", seed=99), results, "big")
    for t in hogs:
        t.join(90)
    status, seconds, out = results["big"]
    assert status == "ok", f"the high-stake caller's request failed: {status}"
    assert seconds < model_timeout(settings, "RealisticVision")
    outcomes = [results[f"hog{i}"][0] for i in range(3)]
    admitted = [o for o in outcomes if o == "ok"]
    refused = [o for o in outcomes if isinstance(o, MinerError)]
    assert len(admitted) == 1, outcomes
    assert all(e.status == 429 and e.error == "gpu_budget_exceeded" for e in refused), refused


def test_an_expired_request_never_runs_and_none_outlives_its_hard_limit(settings, miner, database):
    from app.tasks.generation import enqueue

    hog = enqueue(small_request("RealisticVision", seed=50, steps=12, width=1024, height=1024))
    time.sleep(0.3)  # the hog holds the only worker
    late = enqueue(small_request("RealisticVision", seed=51), expires=0.5)  # its sender waits 0.5 s
    hog.get(timeout=60)
    # Sent once the worker is free, so it starts at once (however long the hog took) and runs
    # into its sender's 2.5 s while generating: it must stop at a step, not finish.
    stopped = enqueue(small_request("RealisticVision", seed=52, steps=50, width=1024, height=1024), expires=2.5)
    with pytest.raises(Exception) as err:
        stopped.get(timeout=60)
    assert "GenerationTimeout" in type(err.value).__name__ or "time limit" in str(err.value), repr(err.value)
    deadline = time.monotonic() + 30
    while late.state not in ("REVOKED", "FAILURE", "SUCCESS") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert late.state == "REVOKED", late.state
    _soft, hard = time_limits(settings, "RealisticVision")
    with session_scope(database) as s:
        assert s.scalar(select(Generation).where(Generation.task_id == late.id)) is None, "the expired request ran"
        rows = list(s.scalars(select(Generation).where(Generation.worker.like("hog@%"))))
        row = next(r for r in rows if r.task_id == stopped.id)
        assert row.status == "failed" and "time limit" in row.error
        for r in rows:
            assert r.finished_at is not None
            ran = (r.finished_at - r.created_at).total_seconds()
            assert ran <= hard, f"task {r.task_id} ran {ran:.1f} s past its {hard:g} s hard limit"
