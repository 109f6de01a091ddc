"""Text answers verified with one prefill: honest answers pass, every cheat fails; a text miner
on the wire (real LLM server, real miner API, signed requests, real Redis and chain)."""

import time

import httpx
import pytest

from app.llm.devworld import challenge_messages
from app.miner.text import text_answer
from app.protocol.client import MinerClient, MinerError
from app.protocol.errors import InvalidRequest
from app.protocol.text import parse_text_request
from app.settings import Settings
from app.testkit.text_cheats import STRATEGIES, text_cheat_answer
from app.validator.text_judge import judge_text
from app.verification.text import calibrated

from ..conftest import free_port
from ..helpers.subnet import new_subnet

MODEL = "Gemma7b"
NETUID = 9  # its own subnet: its 1M-stake validator must not change other modules' quota splits


@pytest.fixture(scope="module")
def text_net(settings, database, module_processes):
    wallets = new_subnet(settings, database, NETUID, "text", {"textminer": 0, "textcheat": 0,
                                                              "textvalidator": 1_000_000})
    llm_port = free_port()
    llm = module_processes("llm", "serve", "--model", MODEL, "--port", str(llm_port))
    llm_url = f"http://127.0.0.1:{llm_port}"
    llm.wait_http(llm_url + "/health", timeout=120)
    miners = {}
    for name, cheat in (("textminer", None), ("textcheat", "fabricated_logprobs")):
        port = free_port()
        proc = module_processes("miner", "serve", "--model", MODEL, "--wallet", "text", "--hotkey", name,
                                "--port", str(port), *(["--cheat", cheat] if cheat else []),
                                env={"SEEDGRID_LLM_URL": llm_url, "SEEDGRID_METAGRAPH_TTL": "0.5",
                                     "SEEDGRID_NETUID": str(NETUID)})
        miners[name] = f"http://127.0.0.1:{port}"
        proc.wait_http(miners[name] + "/healthz")
    return {"llm": llm_url, "miners": miners, "wallets": wallets}


def request(seed: int, temperature: float, max_tokens: int = 48):
    return parse_text_request({"model": MODEL, "messages": challenge_messages(seed), "seed": seed,
                               "params": {"max_tokens": max_tokens, "temperature": temperature}})


def test_honest_answers_pass_and_every_cheat_fails(text_net):
    s = Settings(llm_url=text_net["llm"])
    answers = {"honest": text_answer(s, MODEL), **{c: text_cheat_answer(c, s, MODEL) for c in STRATEGIES
                                                   if c != "error"}}
    rungs: dict[str, list[str]] = {name: [] for name in answers}
    for seed in range(6):
        req = request(100 + seed, (0.0, 0.7, 1.0)[seed % 3])
        honest_tokens = None
        for name, answer in answers.items():
            raw = answer(req, 0, 60, time.perf_counter())
            if name == "honest":
                honest_tokens = raw["tokens"]
            elif raw["tokens"] == honest_tokens and name != "fabricated_logprobs":
                continue  # the very answer an honest miner gives (a peaked greedy turn sampled hotter): no cheat
            rungs[name].append(judge_text(text_net["llm"], MODEL, req, raw, thresholds=calibrated(MODEL)).rung)
    assert rungs["honest"] == ["exact", "tolerant", "tolerant"] * 2, "greedy answers of one environment class are exact"
    for name in answers:
        if name != "honest":
            assert len(rungs[name]) >= 4 and set(rungs[name]) == {"failed"}, (name, rungs[name])
    with pytest.raises(ValueError, match="unknown text strategy"):
        text_cheat_answer("nope", s, MODEL)


def test_a_text_miner_answers_signed_requests_that_verify(text_net):
    miner = text_net["wallets"]["textminer"].hotkey.ss58_address
    client = MinerClient(text_net["wallets"]["textvalidator"], timeout=60)
    req = request(7, 0.7)
    answer = client.generate(text_net["miners"]["textminer"], miner, req.wire())
    assert answer["media_type"] == "text" and answer["environment"]["class"]
    assert judge_text(text_net["llm"], MODEL, req, answer, thresholds=calibrated(MODEL)).rung == "tolerant"
    cheat = text_net["wallets"]["textcheat"].hotkey.ss58_address
    caught = client.generate(text_net["miners"]["textcheat"], cheat, req.wire())
    verdict = judge_text(text_net["llm"], MODEL, req, caught, thresholds=calibrated(MODEL))
    assert verdict.rung == "failed" and "overlap" in verdict.reason
    with pytest.raises(MinerError) as bad:
        client.generate(text_net["miners"]["textminer"], miner, {**req.wire(), "params": {"temperature": "hot"}})
    assert bad.value.status == 400 and bad.value.field == "params.temperature"
    with pytest.raises(MinerError) as image:
        client.generate(text_net["miners"]["textminer"], miner, {"model": MODEL, "prompt": "a cat", "seed": 1})
    assert image.value.status == 400 and image.value.field == "prompt"
    assert httpx.post(text_net["miners"]["textminer"] + "/v1/generate", json=req.wire()).status_code == 401
    health = httpx.get(text_net["miners"]["textminer"] + "/healthz").json()
    assert health["dependencies"]["text_server"] == "ok"
    info = client.info(text_net["miners"]["textminer"], miner)
    assert info["model"] == MODEL and info["pipelines"] == ["chat"] and info["environment"]["engine"] == "seedgrid-llm"


@pytest.mark.parametrize("raw, field", [
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "user", "content": ""}]}, "messages.0.content"),
    ({"messages": [{"role": "user", "content": "hi", "name": "x"}]}, "messages.0.name"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, "messages.0.role"),
    ({"params": {"max_tokens": 5000}}, "params.max_tokens"),
    ({"params": {"top_p": 0}}, "params.top_p"),
    ({"params": {"top_logprobs": 50}}, "params.top_logprobs"),
    ({"params": {"steps": 5}}, "params.steps"),
    ({"seed": -3}, "seed"),
    ({"model": "RealisticVision"}, "model"),
])
def test_a_text_request_names_its_wrong_field(raw, field):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "seed": 1, **raw}
    with pytest.raises(InvalidRequest) as err:
        parse_text_request(body)
    assert err.value.field == field, err.value
