"""The trajectory path on real processes (issue 14), the default in service: a miner GPU worker on one
thread keeps each answer's trajectory, its API opens it at POST /v1/open, and the validator (two
threads) checks each answer to a text-to-image challenge by opening two random steps, re-running
them, checking the seed's noise and one tile of the final latent's decoding: no reproduction. Two
miners cheat on the wire with honest images: one refuses to open (`--cheat refuse_open`), one opens
leaves that are not the committed ones (`--cheat forged_opening`); both fail. An answer without a
root is disputed, and the challenge's full reproduction judges it. A gateway job is checked the
same way, every one of them, not a sample."""

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
CHEATS = {"refuser": "refuse_open", "forger": "forged_opening"}


@pytest.fixture(scope="module")
def grid(settings, database, module_processes, redis_url):
    from app.celery_app import celery_app
    from app.tasks import validator as validator_tasks

    env = {"SEEDGRID_NETUID": str(NETUID), "SEEDGRID_VALIDATOR_WALLET": "traj", "SEEDGRID_VALIDATOR_HOTKEY": "validator",
           "SEEDGRID_METAGRAPH_TTL": "0.5", "SEEDGRID_TOTAL_VOLUME": "1000", "SEEDGRID_REPRODUCTION_SHARE": "0",
           "SEEDGRID_CHALLENGE_PARAMS": json.dumps({MODEL: {**LOCAL_CHALLENGES[MODEL], "steps": 6}})}
    wallets = new_subnet(settings, database, NETUID, "traj", {"validator": 1_000_000, "miner": 0, **dict.fromkeys(CHEATS, 0)})
    worker = module_processes("--model", MODEL, "--name", "traj", worker=True, env={**env, "SEEDGRID_THREADS": "1"})
    for name in ("miner", *CHEATS):
        port = free_port()
        api = module_processes("miner", "serve", "--model", MODEL, "--wallet", "traj", "--hotkey", name,
                               "--port", str(port), *(("--cheat", CHEATS[name]) if name in CHEATS else ()), env=env)
        api.wait_http(f"http://127.0.0.1:{port}/healthz")
    worker.wait_ready(celery_app)
    with process_env(env):
        v = validator_tasks.validator()
        deadline = time.monotonic() + 60
        while rounds.sync_miners(v)["reachable"] < 1 + len(CHEATS) and time.monotonic() < deadline:
            time.sleep(0.5)
        yield {"v": v, **{name: w.hotkey.ss58_address for name, w in wallets.items()}}


def answered(v, seed: int) -> dict[str, int]:
    """A text-to-image challenge answered by every miner: {hotkey: response id}. It is a `trajectory`
    challenge: nothing is reproduced (rounds take the type's pipelines in turn; the others are
    answered and left to their reproduction)."""
    while True:
        [plan] = rounds.start_round(v, models=[MODEL], rng=random.Random(seed))
        with v.sessions() as s:
            txt2img = s.get(Challenge, plan.challenge_id).request.get("pipeline", "txt2img") == "txt2img"
        if txt2img:
            break
        for response_id in plan.response_ids:
            rounds.query_miner(v, response_id)
        seed += 100
    assert not plan.reproduce, "a text-to-image challenge is checked by its answers' trajectories"
    out = {}
    for response_id in plan.response_ids:
        assert rounds.query_miner(v, response_id) == "verify", "judged as soon as it is answered"
        with v.sessions() as s:
            out[s.get(Response, response_id).hotkey] = response_id
    return out


def verdict(v, response_id: int) -> Response:
    with v.sessions() as s:
        response = s.get(Response, response_id)
        s.expunge(response)
        return response


def test_honest_answers_pass_by_their_trajectories_and_the_cheats_on_the_wire_fail(grid):
    v = grid["v"]
    for seed in (1, 2):
        ids = answered(v, seed)
        honest = ids[grid["miner"]]
        assert verdict(v, honest).trajectory_root, "the answer carries its commitment"
        assert judging.verify_response(v, honest) == "trajectory"
        r = verdict(v, honest)
        assert "re-run within" in r.verdict_reason and "the seed's noise" in r.verdict_reason, r.verdict_reason
        detail = r.verdict_detail
        assert detail["path"] == "trajectory" and len(detail["steps"]) == 2 and len(detail["distances"]) == 2
        assert max(detail["distances"]) < 1e-4 and detail["pixel_gap"] < 0.1, detail
        assert detail["tile"] is None or len(detail["tile"]) == 4, detail
        with v.sessions() as s:
            assert s.get(Challenge, r.challenge_id).reproduction_path is None, "nothing was reproduced"
        for name, expected in (("refuser", "was not opened"), ("forger", "do not match the committed")):
            response_id = ids[grid[name]]
            assert judging.verify_response(v, response_id) == "failed", name
            r = verdict(v, response_id)
            assert expected in r.verdict_reason, (name, r.verdict_reason)
            assert r.verdict_detail["path"] == "trajectory" and not r.verdict_detail["disputable"]


def test_a_trajectory_that_cannot_be_opened_or_does_not_match_fails(grid):
    v = grid["v"]
    gone = answered(v, 3)[grid["miner"]]
    root = verdict(v, gone).trajectory_root
    for key in v.redis.scan_iter(f"seedgrid:miner:{grid['miner']}:trajectory:*:{root}"):
        v.redis.delete(key)  # the miner no longer has it: its /v1/open refuses
    assert judging.verify_response(v, gone) == "failed"
    assert "was not opened" in verdict(v, gone).verdict_reason
    other = answered(v, 4)[grid["miner"]]
    with v.sessions() as s:
        s.get(Response, other).trajectory_root = "0" * 64  # a commitment the openings do not match
    assert judging.verify_response(v, other) == "failed"
    reason = verdict(v, other).verdict_reason
    assert "not opened" in reason or "do not match" in reason, reason


def test_an_answer_without_a_root_is_disputed_and_the_reproduction_judges_it(grid):
    v = grid["v"]
    ids = answered(v, 5)
    honest = ids[grid["miner"]]
    with v.sessions() as s:
        s.get(Response, honest).trajectory_root = None  # as an older miner answers
    result = judging.verify_response(v, honest)
    assert isinstance(result, judging.Dispute), result
    with v.sessions() as s:
        assert s.get(Challenge, result.challenge_id).status == "open", "back to be reproduced"
    pending = judging.reproduce(v, result.challenge_id)
    assert honest in pending
    assert judging.verify_response(v, honest) in ("exact", "tolerant"), verdict(v, honest).verdict_reason  # 1 vs 2 threads


def test_every_gateway_job_is_checked_by_its_trajectory(grid):
    from app.gateway import jobs, keys, runner
    from app.protocol.request import parse_request

    v = grid["v"]
    expected = {grid["miner"]: "trajectory", grid["refuser"]: "failed", grid["forger"]: "failed"}
    with v.sessions() as s:
        key, _ = keys.create_key(s, name="traj", rate_per_minute=600, daily_quota=1000)
        ids = []
        for seed in range(3):
            request = parse_request({"model": MODEL, "prompt": "a lighthouse at dusk", "seed": seed, "kind": "inference",
                                     "request_id": jobs.new_job_id(),
                                     "params": {**LOCAL_CHALLENGES[MODEL], "steps": 6}})
            ids.append(jobs.create_job(s, key=key, request=request)[0].id)
    for seed, job_id in enumerate(ids):
        run = runner.run_job(v, job_id, rng=random.Random(seed))
        assert run.status == "done" and run.sampled and run.judge_response is not None, "every job is checked"
        hotkey = verdict(v, run.judge_response).hotkey
        assert judging.verify_response(v, run.judge_response) == expected[hotkey], \
            verdict(v, run.judge_response).verdict_reason
