"""The external image type (GoJourney) on real processes: the fake GoAPI-style provider (tests/fakes/
goapi.py, a real HTTP server on loopback), an honest miner in turbo mode and one miner per cheat, the
validator's rounds and verification, and the gateway routing a GoJourney job (its I/O and GPU
workers), with Redis, the database and the LocalChain. Nothing is reproduced: each answer is
checked against the provider's own record of its task."""

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from app import migrations
from app.external.provider import ProviderTask
from app.gateway import keys
from app.generation.limits import model_timeout
from app.models import MinerState, Outcome, Response
from app.protocol.catalogue import CATALOGUE
from app.protocol.external import MODE_FACTORS, base_prompt, flags
from app.scoring.rewards import latency_penalty
from app.scoring.volume import reward_multiplier
from app.scoring.weights import MinerScore, compute_weights
from app.testkit.external_cheats import STRATEGIES
from app.validator import judging, rounds
from app.verification.external import verify_external

from ..conftest import ROOT, free_port
from ..helpers.env import process_env
from ..helpers.gateway import api, wait_verdict
from ..helpers.subnet import new_subnet

pytestmark = pytest.mark.slow

NETUID = 11
MODEL = "GoJourney"
MINERS = {"honest": None, **{s: s for s in STRATEGIES}}
REASONS = {"other_task": "not the challenge's prompt", "other_prompt": "not the challenge's prompt",
           "foreign_image": "not task", "replay": "already used", "failed_task": "is failed"}


@pytest.fixture(scope="module")
def grid(settings, database, module_processes, redis_url):
    from app.tasks import validator as validator_tasks

    port = free_port()
    fake = subprocess.Popen([sys.executable, "-m", "tests.fakes.goapi", "--port", str(port), "--keys",
                             ",".join(f"key-{m}" for m in MINERS)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert fake.stdout.readline().strip() == "ready"
    url = f"http://127.0.0.1:{port}"
    env = {"SEEDGRID_NETUID": str(NETUID), "SEEDGRID_VALIDATOR_WALLET": "gj", "SEEDGRID_VALIDATOR_HOTKEY": "validator",
           "SEEDGRID_GOJOURNEY_URL": url, "SEEDGRID_METAGRAPH_TTL": "0.5", "SEEDGRID_TOTAL_VOLUME": "1000",
           "SEEDGRID_CHALLENGE_GROUP_SIZE": str(len(MINERS)), "SEEDGRID_GATEWAY_SAMPLE_RATE": "1",
           "SEEDGRID_GATEWAY_EXPLORATION": "0"}
    try:
        with process_env(env):
            migrations.upgrade(database)
            wallets = new_subnet(settings, database, NETUID, "gj", {"validator": 1_000_000, **{m: 0 for m in MINERS}})
            for name, cheat in MINERS.items():
                miner_port = free_port()
                proc = module_processes(
                    "miner", "serve", "--model", MODEL, "--wallet", "gj", "--hotkey", name, "--port", str(miner_port),
                    *(["--cheat", cheat] if cheat else []),
                    env={**env, "SEEDGRID_GOJOURNEY_API_KEY": f"key-{name}",
                         "SEEDGRID_GOJOURNEY_MODE": "turbo" if name == "honest" else "fast"})
                proc.wait_http(f"http://127.0.0.1:{miner_port}/healthz")
            module_processes("worker", "io", "--name", "gj", env=env)
            module_processes("worker", "gpu", "--role", "validator", "--model", "RealisticVision", "--name", "gj", env=env)
            gateway_port = free_port()
            gateway = module_processes("gateway", "serve", "--port", str(gateway_port), env=env)
            gateway.wait_http(f"http://127.0.0.1:{gateway_port}/healthz")
            v = validator_tasks.validator()
            deadline = time.monotonic() + 60
            while rounds.sync_miners(v)["reachable"] < len(MINERS) and time.monotonic() < deadline:
                time.sleep(0.5)
            with v.sessions() as s:
                key = keys.create_key(s, name="gj", rate_per_minute=1000, daily_quota=100_000)[1]
            yield {"v": v, "hotkeys": {n: w.hotkey.ss58_address for n, w in wallets.items()},
                   "url": f"http://127.0.0.1:{gateway_port}", "key": key}
    finally:
        fake.kill()


def run_round(v, seed: int) -> dict[str, Response]:
    import random

    [plan] = rounds.start_round(v, models=[MODEL], rng=random.Random(seed))
    assert not plan.reproduce and len(plan.response_ids) == len(MINERS)
    with ThreadPoolExecutor(len(MINERS)) as pool:
        statuses = list(pool.map(lambda r: rounds.query_miner(v, r), plan.response_ids))
    assert statuses == ["verify"] * len(MINERS), statuses
    for response_id in plan.response_ids:
        judging.verify_response(v, response_id)
    with v.sessions() as s:
        responses = [s.get(Response, r) for r in plan.response_ids]
        s.expunge_all()
    return responses


def test_the_honest_answer_passes_and_every_cheat_fails_for_its_reason(grid):
    v, hotkeys = grid["v"], grid["hotkeys"]
    assert MODEL in rounds.challenged_models(v.settings)
    by_name = {}
    for seed in (1, 2):  # the replay cheat's first task is honest: its second answer replays it
        for response in run_round(v, seed):
            by_name.setdefault(next(n for n, h in hotkeys.items() if h == response.hotkey), []).append(response)
    for name, (first, second) in by_name.items():
        if name == "honest":
            assert first.verdict_rung == second.verdict_rung == "exact", first.verdict_reason
            assert "turbo" in second.verdict_reason
        else:
            judged = second if name == "replay" else first
            assert judged.verdict_rung == "failed" and REASONS[name] in judged.verdict_reason, \
                (name, judged.verdict_reason)
    with v.sessions() as s:
        rewards = {n: s.scalar(select(Outcome.reward).where(Outcome.response_id == r[0].id)) for n, r in by_name.items()}
        states = list(s.scalars(select(MinerState).where(MinerState.hotkey.in_(list(hotkeys.values())))))
    honest = next(m for m in states if m.hotkey == hotkeys["honest"])
    full = v.tiers.factor(honest.tier) - latency_penalty(by_name["honest"][0].latency_s, model_timeout(v.settings, MODEL))
    assert rewards["honest"] == pytest.approx(full, rel=0.05), "turbo: the whole reward (relax would be a tenth)"
    assert all(rewards[n] < 0 for n in STRATEGIES if n != "replay"), rewards
    shares = {name: spec.incentive_share for name, spec in CATALOGUE.items()}
    weights = compute_weights([MinerScore(m.uid, m.model, m.score, 1000) for m in states], shares)
    honest_uid = next(m.uid for m in states if m.hotkey == hotkeys["honest"])
    assert sum(weights.values()) == pytest.approx(0.03 * reward_multiplier(1000)), "GoJourney's incentive share"
    assert weights[honest_uid] == max(weights.values()) > 0.5 * sum(weights.values()), weights
    assert all(weights.get(m.uid, 0) == 0 for m in states if m.hotkey not in (hotkeys["honest"], hotkeys["replay"]))


def test_the_reward_follows_the_providers_mode_not_the_claim():
    data = b"png bytes"
    for mode, factor in MODE_FACTORS.items():
        task = ProviderTask("t1", "finished", "a red fox --ar 16:9", mode, "http://x/t1.png")
        verdict, got = verify_external(prompt="a  red fox --ar 16:9", task_id="t1", data=data, task=task,
                                       served=data, replay_of=None)
        assert verdict.rung == "exact" and got == factor
    task = ProviderTask("t1", "finished", "a red fox --ar 1:1", "turbo", "http://x/t1.png")
    verdict, _ = verify_external(prompt="a red fox --ar 16:9", task_id="t1", data=data, task=task, served=data,
                                 replay_of=None)
    assert verdict.rung == "failed" and "--ar 16:9" in verdict.reason
    assert base_prompt("a red  fox --ar 16:9 --v 6") == "a red fox" and flags("x --ar 3:2 --v 6") == {"ar": "3:2",
                                                                                                      "v": "6"}


def test_the_gateway_routes_a_gojourney_job_and_checks_its_sample(grid):
    with grid["v"].sessions() as s:
        for name, hotkey in grid["hotkeys"].items():
            if name != "validator":
                state = s.get(MinerState, hotkey)
                state.reachable, state.score, state.total_successes = name == "honest", 0.3, 10
    with api(grid) as c:
        r = c.post("/v1/jobs?wait=60", json={"model": MODEL, "prompt": "a lighthouse at dusk --ar 4:3", "seed": 1})
        assert r.status_code == 200 and r.json()["status"] == "done", r.text
        image = c.get(f"/v1/jobs/{r.json()['id']}/result")
        assert image.headers["content-type"] == "image/png" and image.content[:8] == b"\x89PNG\r\n\x1a\n"
        bad = c.post("/v1/jobs", json={"model": MODEL, "prompt": "x", "seed": 1, "params": {"steps": 2}})
        assert bad.status_code == 400 and bad.json()["field"] == "params", bad.text
    judged = wait_verdict(grid, r.json()["id"])
    assert judged["verification"]["verdict"] == "exact", judged["verification"]
