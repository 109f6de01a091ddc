"""Text challenges in the validator's rounds, on real processes: the validator's own dev text
server, an honest text miner and a cheating one (their miner APIs over the same kind of server),
the chain and Redis. A round's text challenge has nothing to reproduce; each answer is judged by
one prefill and counted like an image's."""

import os
import random
import time

import pytest
from sqlalchemy import select

from app.models import Challenge, MinerState, Outcome, Response
from app.validator import judging, rounds

from ..conftest import free_port
from ..helpers.subnet import new_subnet

pytestmark = pytest.mark.slow

NETUID = 8
MODEL = "Gemma7b"


@pytest.fixture(scope="module")
def text_grid(settings, database, module_processes, redis_url):
    from app.config import get_settings
    from app.validator.context import open_validator

    llm_port = free_port()
    llm = module_processes("llm", "serve", "--model", MODEL, "--port", str(llm_port))
    llm_url = f"http://127.0.0.1:{llm_port}"
    llm.wait_http(llm_url + "/health", timeout=120)
    env = {"SEEDGRID_NETUID": str(NETUID), "SEEDGRID_VALIDATOR_WALLET": "textgrid",
           "SEEDGRID_VALIDATOR_HOTKEY": "validator", "SEEDGRID_VALIDATOR_LLM_URL": llm_url,
           "SEEDGRID_METAGRAPH_TTL": "0.5"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        wallets = new_subnet(settings, database, NETUID, "textgrid", {"validator": 1_000_000, "honest": 0, "cheat": 0})
        hotkeys = {name: w.hotkey.ss58_address for name, w in wallets.items()}
        for name, cheat in (("honest", None), ("cheat", "other_prompt")):
            port = free_port()
            proc = module_processes("miner", "serve", "--model", MODEL, "--wallet", "textgrid", "--hotkey", name,
                                    "--port", str(port), *(["--cheat", cheat] if cheat else []),
                                    env={**env, "SEEDGRID_LLM_URL": llm_url})
            proc.wait_http(f"http://127.0.0.1:{port}/healthz")
        v = open_validator(get_settings())
        deadline = time.monotonic() + 60
        while rounds.sync_miners(v)["reachable"] < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        yield {"v": v, "hotkeys": hotkeys}
    finally:
        for k, value in saved.items():
            os.environ.pop(k, None) if value is None else os.environ.__setitem__(k, value)
        get_settings.cache_clear()


def test_text_challenges_verify_honest_answers_and_fail_a_cheater(text_grid):
    v, hotkeys = text_grid["v"], text_grid["hotkeys"]
    assert MODEL in rounds.challenged_models(v.settings), "a validator with a text server challenges text types"
    rungs: dict[str, list[str]] = {"honest": [], "cheat": []}
    for seed in range(4):
        [plan] = rounds.start_round(v, models=[MODEL], rng=random.Random(seed))
        assert not plan.reproduce and len(plan.response_ids) == 2
        for response_id in plan.response_ids:
            assert rounds.query_miner(v, response_id) == "verify", "a text challenge is ready once answered"
            rung = judging.verify_response(v, response_id)
            with v.sessions() as s:
                response = s.get(Response, response_id)
                who = next(n for n, h in hotkeys.items() if h == response.hotkey)
                assert response.media_type == "text" and response.verdict_rung == rung
            rungs[who].append(rung)
        with v.sessions() as s:
            challenge = s.get(Challenge, plan.challenge_id)
            assert challenge.request["messages"] and "prompt" not in challenge.request
    assert set(rungs["honest"]) <= {"exact", "tolerant"} and len(rungs["honest"]) == 4, rungs
    assert rungs["cheat"] == ["failed"] * 4, rungs
    with v.sessions() as s:
        rewards = {name: [o.reward for o in s.scalars(select(Outcome).where(Outcome.hotkey == h))]
                   for name, h in hotkeys.items() if name != "validator"}
        assert rewards["cheat"] == [-0.01] * 4 and all(r > 0 for r in rewards["honest"]), rewards
        assert s.get(MinerState, hotkeys["honest"]).score > s.get(MinerState, hotkeys["cheat"]).score


def test_the_gallery_shows_a_text_challenges_question_and_answers(text_grid):
    from app.validator.views import gallery

    text = [c for c in gallery(text_grid["v"].settings, limit=50) if c["model"] == MODEL]
    assert text, "the text challenges of the test above are settled"
    shown = text[0]
    assert shown["media_type"] == "text" and shown["prompt"] and shown["reproduction"] is None
    assert all(r["media_type"] == "text" and r["verdict"] for r in shown["responses"])
    assert any(r["text"] for r in shown["responses"] if r["verdict"] != "failed")
