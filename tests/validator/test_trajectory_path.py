"""The trajectory path on real processes (issue 14): a miner GPU worker on one thread keeps each
answer's trajectory, its API opens it at POST /v1/open, and the validator (two threads) opens two
random steps, re-runs them and checks the seed's noise and the final latent instead of comparing
with its reproduction. A miner that cannot open (its trajectory gone) and an opening that does not
match the committed root both fail."""

import json
import random
import time

import pytest

from app.local_plan import LOCAL_CHALLENGES
from app.models import Challenge, Response
from app.validator import judging, rounds

from ..conftest import free_port
from ..helpers.env import process_env
from ..helpers.subnet import new_subnet

pytestmark = pytest.mark.slow

NETUID = 16
MODEL = "RealisticVision"


@pytest.fixture(scope="module")
def grid(settings, database, module_processes, redis_url):
    from app.celery_app import celery_app
    from app.tasks import validator as validator_tasks

    env = {"SEEDGRID_NETUID": str(NETUID), "SEEDGRID_VALIDATOR_WALLET": "traj", "SEEDGRID_VALIDATOR_HOTKEY": "validator",
           "SEEDGRID_METAGRAPH_TTL": "0.5", "SEEDGRID_TOTAL_VOLUME": "1000", "SEEDGRID_TRAJECTORY_SHARE": "1",
           "SEEDGRID_CHALLENGE_PARAMS": json.dumps({MODEL: {**LOCAL_CHALLENGES[MODEL], "steps": 6}})}
    wallets = new_subnet(settings, database, NETUID, "traj", {"validator": 1_000_000, "miner": 0})
    worker = module_processes("--model", MODEL, "--name", "traj", worker=True, env={**env, "SEEDGRID_THREADS": "1"})
    port = free_port()
    api = module_processes("miner", "serve", "--model", MODEL, "--wallet", "traj", "--hotkey", "miner",
                           "--port", str(port), env=env)
    api.wait_http(f"http://127.0.0.1:{port}/healthz")
    worker.wait_ready(celery_app)
    with process_env(env):
        v = validator_tasks.validator()
        deadline = time.monotonic() + 60
        while rounds.sync_miners(v)["reachable"] < 1 and time.monotonic() < deadline:
            time.sleep(0.5)
        yield {"v": v, "miner": wallets["miner"].hotkey.ss58_address}


def answered(v, seed: int) -> int:
    """A text-to-image challenge answered and reproduced (rounds take the type's pipelines in turn; the
    trajectory replay is text-to-image's, so the others are answered and left to the reproduction)."""
    while True:
        [plan] = rounds.start_round(v, models=[MODEL], rng=random.Random(seed))
        [response_id] = plan.response_ids
        with v.sessions() as s:
            if s.get(Challenge, plan.challenge_id).request.get("pipeline", "txt2img") == "txt2img":
                break
        rounds.query_miner(v, response_id)
        seed += 100
    assert rounds.query_miner(v, response_id) in ("answered", "verify")
    judging.reproduce(v, plan.challenge_id)
    return response_id


def test_an_honest_answer_passes_by_its_trajectory_across_thread_counts(grid):
    v = grid["v"]
    for seed in (1, 2):
        response_id = answered(v, seed)
        with v.sessions() as s:
            root = s.get(Response, response_id).trajectory_root
        assert root and len(root) == 64, "the answer carries its commitment"
        assert judging.verify_response(v, response_id) == "trajectory"
        with v.sessions() as s:
            reason = s.get(Response, response_id).verdict_reason
        assert "re-run within" in reason and "the seed's noise" in reason, reason


def test_a_trajectory_that_cannot_be_opened_or_does_not_match_fails(grid):
    v = grid["v"]
    gone = answered(v, 3)
    with v.sessions() as s:
        root = s.get(Response, gone).trajectory_root
    for key in v.redis.scan_iter(f"seedgrid:miner:{grid['miner']}:trajectory:*:{root}"):
        v.redis.delete(key)  # the miner no longer has it: its /v1/open refuses
    assert judging.verify_response(v, gone) == "failed"
    with v.sessions() as s:
        assert "was not opened" in s.get(Response, gone).verdict_reason
    other = answered(v, 4)
    with v.sessions() as s:
        response = s.get(Response, other)
        response.trajectory_root = "0" * 64  # a commitment the openings do not match
    assert judging.verify_response(v, other) == "failed"
    with v.sessions() as s:
        reason = s.get(Response, other).verdict_reason
    assert "not opened" in reason or "do not match" in reason, reason
