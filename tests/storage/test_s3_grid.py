"""A challenge end to end with artifacts in S3-compatible stores (moto's server, real processes): the
miner's GPU worker and its API run on separate state folders and exchange the output only through
the miner's bucket; the validator keeps answers and reproductions in its own store. Then the
validator's store goes down mid-round: the answers it could not keep are its own failure (`lost`),
its reproduction fails, no miner is counted, and what was verified before stays."""

import json
import random
import subprocess
import time

import pytest
from sqlalchemy import func, select

from app import migrations
from app.local_plan import LOCAL_CHALLENGES
from app.models import Challenge, Outcome, Response
from app.validator import judging, rounds

from ..conftest import free_port
from ..helpers.env import process_env
from ..helpers.s3 import make_bucket, s3_env, s3_server
from ..helpers.subnet import new_subnet

pytestmark = pytest.mark.slow

NETUID = 12
MODEL = "RealisticVision"


@pytest.fixture(scope="module")
def grid(settings, database, module_processes, redis_url, tmp_path_factory):
    from app.celery_app import celery_app
    from app.tasks import validator as validator_tasks

    with s3_server() as miner_s3, s3_server() as validator_s3:
        make_bucket(miner_s3, "miner")
        make_bucket(validator_s3, "validator")
        base = {"SEEDGRID_NETUID": str(NETUID), "SEEDGRID_VALIDATOR_WALLET": "s3grid",
                "SEEDGRID_VALIDATOR_HOTKEY": "validator", "SEEDGRID_METAGRAPH_TTL": "0.5",
                "SEEDGRID_TOTAL_VOLUME": "1000", "SEEDGRID_DATABASE_URL": database,
                "SEEDGRID_CHALLENGE_PARAMS": json.dumps(LOCAL_CHALLENGES)}
        miner_env = {**base, **s3_env(miner_s3, "miner")}
        worker_state = tmp_path_factory.mktemp("gpu-host")
        migrations.upgrade(database)
        wallets = new_subnet(settings, database, NETUID, "s3grid", {"validator": 1_000_000, "miner": 0})
        worker = module_processes("--model", MODEL, "--name", "s3grid", worker=True,
                                  env={**miner_env, "SEEDGRID_STATE_DIR": str(worker_state)})
        port = free_port()
        api = module_processes("miner", "serve", "--model", MODEL, "--wallet", "s3grid", "--hotkey", "miner",
                               "--port", str(port), env=miner_env)
        api.wait_http(f"http://127.0.0.1:{port}/healthz")
        worker.wait_ready(celery_app)
        with process_env({**base, **s3_env(validator_s3, "validator")}):
            v = validator_tasks.validator()
            deadline = time.monotonic() + 60
            while rounds.sync_miners(v)["reachable"] < 1 and time.monotonic() < deadline:
                time.sleep(0.5)
            yield {"v": v, "worker_state": worker_state, "hotkey": wallets["miner"].hotkey.ss58_address,
                   "validator_s3": validator_s3}


def one_round(v, seed):
    [plan] = rounds.start_round(v, models=[MODEL], rng=random.Random(seed))
    [response_id] = plan.response_ids
    status = rounds.query_miner(v, response_id)
    judging.reproduce(v, plan.challenge_id)
    rung = judging.verify_response(v, response_id)
    return plan.challenge_id, response_id, status, rung


def test_a_challenge_runs_and_is_verified_through_the_stores(grid):
    v = grid["v"]
    challenge_id, response_id, status, rung = one_round(v, 1)
    assert rung == "exact", status
    with v.sessions() as s:
        response, challenge = s.get(Response, response_id), s.get(Challenge, challenge_id)
        assert response.artifact_path.startswith("s3://validator/grid/validator/")
        assert challenge.reproduction_path.startswith("s3://validator/grid/artifacts/")
    written = [p for p in grid["worker_state"].rglob("*") if p.is_file() and "artifacts" in p.parts]
    assert not written, f"the GPU host wrote media to its own folder: {written}"
    from app import storage
    from app.validator import epochs

    assert epochs.prune_artifacts(v) == 0, "nothing is older than the retention yet"
    assert epochs.prune_artifacts(v, now=time.time() + v.settings.artifact_retention + 60) >= 2
    with v.sessions() as s:
        assert not storage.exists(v.settings, s.get(Response, response_id).artifact_path), "pruned from the bucket"


def test_the_validators_store_down_is_its_own_failure_and_loses_nothing(grid):
    v = grid["v"]
    _, verified_id, _, rung = one_round(v, 2)
    assert rung == "exact"
    with v.sessions() as s:
        counted = s.scalar(select(func.count()).select_from(Outcome).where(Outcome.hotkey == grid["hotkey"]))
    subprocess.run(["pkill", "-f", f"moto.server -H 127.0.0.1 -p {grid['validator_s3'].rsplit(':', 1)[1]}"])
    time.sleep(0.5)
    challenge_id, response_id, status, rung = one_round(v, 3)
    with v.sessions() as s:
        response, challenge = s.get(Response, response_id), s.get(Challenge, challenge_id)
        assert response.status == "lost" and "artifact store" in response.error, (response.status, response.error)
        assert challenge.status == "failed" and "artifact store" in challenge.error
        assert s.scalar(select(func.count()).select_from(Outcome).where(Outcome.hotkey == grid["hotkey"])) == counted
        assert s.get(Response, verified_id).verdict_rung == "exact", "what was verified stays verified"
    assert status == "lost" and rung is None
