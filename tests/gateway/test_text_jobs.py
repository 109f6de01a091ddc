"""Text jobs through the gateway, on real processes: `seedgrid gateway serve`, the validator's I/O and
GPU workers, the dev text server (`seedgrid llm serve`, shared by the miners and the validator), an
honest text miner and one that fabricates its logprobs, Redis, the database and the LocalChain.
Every delivered job is sampled (p = 1): its answer is judged by one prefill, nothing reproduced."""

import json
import time

import pytest
from sqlalchemy import select

from app import migrations
from app.gateway import keys
from app.models import Job, MinerState
from app.validator import rounds

from ..conftest import free_port
from ..helpers.env import process_env
from ..helpers.gateway import api, wait_verdict
from ..helpers.subnet import new_subnet

pytestmark = pytest.mark.slow

NETUID = 10
MODEL = "Gemma7b"
ENV = {"SEEDGRID_NETUID": str(NETUID), "SEEDGRID_VALIDATOR_WALLET": "gwtext",
       "SEEDGRID_VALIDATOR_HOTKEY": "validator", "SEEDGRID_GATEWAY_SAMPLE_RATE": "1",
       "SEEDGRID_GATEWAY_EXPLORATION": "0", "SEEDGRID_METAGRAPH_TTL": "0.5", "SEEDGRID_TOTAL_VOLUME": "1000"}
MESSAGES = [{"role": "user", "content": "What is the river of Morvale called?"}]


@pytest.fixture(scope="module")
def grid(settings, database, module_processes, redis_url):
    from app.tasks import validator as validator_tasks

    llm_port = free_port()
    llm = module_processes("llm", "serve", "--model", MODEL, "--port", str(llm_port))
    llm_url = f"http://127.0.0.1:{llm_port}"
    env = {**ENV, "SEEDGRID_VALIDATOR_LLM_URL": llm_url}
    with process_env(env):
        migrations.upgrade(database)
        wallets = new_subnet(settings, database, NETUID, "gwtext", {"validator": 1_000_000, "honest": 0, "cheater": 0})
        hotkeys = {name: w.hotkey.ss58_address for name, w in wallets.items()}
        llm.wait_http(llm_url + "/health", timeout=120)
        for name, cheat in (("honest", None), ("cheater", "fabricated_logprobs")):
            port = free_port()
            proc = module_processes("miner", "serve", "--model", MODEL, "--wallet", "gwtext", "--hotkey", name,
                                    "--port", str(port), *(["--cheat", cheat] if cheat else []),
                                    env={**env, "SEEDGRID_LLM_URL": llm_url})
            proc.wait_http(f"http://127.0.0.1:{port}/healthz")
        module_processes("worker", "io", "--name", "gwtext", env=env)
        module_processes("worker", "gpu", "--role", "validator", "--model", "RealisticVision",
                         "--name", "gwtext", env=env)
        gateway_port = free_port()
        gateway = module_processes("gateway", "serve", "--port", str(gateway_port), env=env)
        url = f"http://127.0.0.1:{gateway_port}"
        gateway.wait_http(url + "/healthz")
        v = validator_tasks.validator()
        deadline = time.monotonic() + 60
        while rounds.sync_miners(v)["reachable"] < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        with v.sessions() as s:
            key = keys.create_key(s, name="gwtext", rate_per_minute=1000, daily_quota=100_000)[1]
        yield {"url": url, "v": v, "hotkeys": hotkeys, "key": key}


def only(grid, name):
    """Only this miner takes jobs (earlier jobs finished first)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with grid["v"].sessions() as s:
            if not s.scalar(select(Job.id).where(Job.status.in_(("queued", "running"))).limit(1)):
                break
        time.sleep(0.3)
    with grid["v"].sessions() as s:
        for who, hotkey in grid["hotkeys"].items():
            if who != "validator":
                s.get(MinerState, hotkey).reachable = who == name


def test_a_text_job_is_answered_and_its_sample_verified_by_a_prefill(grid):
    only(grid, "honest")
    with api(grid) as c:
        models = {m["id"]: m for m in c.get("/v1/models").json()["data"]}
        assert models[MODEL]["media_type"] == "text" and models[MODEL]["capacity"]["miners"] == 1
        r = c.post("/v1/jobs?wait=60", json={"model": MODEL, "messages": MESSAGES, "seed": 7,
                                              "params": {"max_tokens": 24, "temperature": 0.7}})
        assert r.status_code == 200, r.text
        job = r.json()
        assert job["status"] == "done" and job["result"]["media_type"] == "text"
        result = c.get(f"/v1/jobs/{job['id']}/result")
        assert result.headers["content-type"] == "application/json"
        answer = result.json()
        assert answer["text"] and len(answer["tokens"]) == len(answer["logprobs"]) <= 24
    judged = wait_verdict(grid, job["id"])
    assert judged["verification"]["verdict"] in ("exact", "tolerant"), judged["verification"]


def test_a_fabricating_miners_sampled_answer_fails(grid):
    only(grid, "cheater")
    with api(grid) as c:
        r = c.post("/v1/jobs?wait=60", json={"model": MODEL, "messages": MESSAGES, "seed": 8})
        assert r.status_code == 200 and r.json()["status"] == "done", r.text
    judged = wait_verdict(grid, r.json()["id"])
    assert judged["verification"]["verdict"] == "failed", judged["verification"]
    assert "fabricated logprobs" in judged["verification"]["reason"]


def test_the_openai_package_chats_and_completes_through_the_gateway(grid):
    from openai import OpenAI

    only(grid, "honest")
    client = OpenAI(base_url=grid["url"] + "/v1", api_key=grid["key"], max_retries=0)
    chat = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, max_tokens=16, temperature=0, seed=3, logprobs=True, top_logprobs=2)
    job_id = chat.headers["x-seedgrid-job"]
    chat = chat.parse()
    choice = chat.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert all(t.token.startswith("token_id:") and len(t.top_logprobs) == 2 for t in choice.logprobs.content)
    with api(grid) as c:
        answer = c.get(f"/v1/jobs/{job_id}/result").json()
    assert answer["text"] == choice.message.content
    assert wait_verdict(grid, job_id)["verification"]["verdict"] == "exact", "greedy in one environment is exact"

    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=16, temperature=0, seed=3, stream=True))
    assert streamed == choice.message.content, "a stream carries the same answer"

    completion = client.completions.create(model=MODEL, prompt="Name a town.", max_tokens=8, seed=1, logprobs=1)
    assert completion.object == "text_completion" and completion.choices[0].text is not None
    assert len(completion.choices[0].logprobs.tokens) <= 8


def test_bad_text_requests_are_named_400s(grid):
    import openai
    from openai import OpenAI

    with api(grid) as c:
        for body, field in (({"model": MODEL, "prompt": "hi"}, "prompt"),
                            ({"model": MODEL, "messages": []}, "messages"),
                            ({"model": MODEL, "messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
                            ({"model": MODEL, "messages": MESSAGES, "params": {"max_tokens": 10**6}},
                             "params.max_tokens"),
                            ({"model": MODEL, "messages": MESSAGES, "params": {"steps": 3}}, "params.steps")):
            r = c.post("/v1/jobs", json=body)
            assert r.status_code == 400 and r.json()["field"] == field, (body, r.text)
        r = c.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 400 and "error" in r.json()
    client = OpenAI(base_url=grid["url"] + "/v1", api_key=grid["key"], max_retries=0)
    for kwargs, param in (({"n": 2}, "n"), ({"stop": ["."]}, "stop"), ({"temperature": 9}, "params.temperature"),
                          ({"model": "RealisticVision"}, "model")):
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(**{"model": MODEL, "messages": MESSAGES, **kwargs})
        assert json.loads(caught.value.response.text)["error"]["param"] == param


ODD = [None, True, -1, 2.5, 10**30, "", "x" * 5000, "\ud800", [], {}, [{"role": "user"}], {"a": 1}]
ROUTES = {"/v1/jobs": {"model": MODEL, "messages": MESSAGES, "seed": 1, "params": {"max_tokens": 4}},
          "/v1/chat/completions": {"model": MODEL, "messages": MESSAGES, "max_tokens": 4, "seed": 1, "logprobs": True,
                                   "top_logprobs": 2, "temperature": 0.5, "top_p": 0.9, "stream": False, "n": 1},
          "/v1/completions": {"model": MODEL, "prompt": "Name a town.", "max_tokens": 4, "seed": 1, "logprobs": 2,
                              "temperature": 0.5, "echo": False, "suffix": None}}


def test_every_field_given_odd_values_is_never_a_5xx(grid):
    """Each field of each text route, set to each odd value (and dropped): a 2xx or a 4xx that names it."""
    only(grid, "honest")
    statuses = []
    with api(grid) as c:
        for route, base in ROUTES.items():
            for field in [*base, "messages.0", "messages.0.content", "extra"]:
                for value in [*ODD, "<drop>"]:
                    body = json.loads(json.dumps(base))
                    outer, _, inner = field.partition(".0")
                    if field.startswith("messages.0") and isinstance(body.get(outer), list):
                        item = body[outer][0]
                        body[outer][0] = value if not inner else {**item, inner.lstrip("."): value}
                    elif value == "<drop>":
                        body.pop(field, None)
                    else:
                        body[field] = value
                    data = json.dumps(body).encode("utf-8", "surrogatepass")
                    r = c.post(route, content=data, headers={"content-type": "application/json"})
                    statuses.append(r.status_code)
                    assert r.status_code < 500, (route, field, repr(value)[:60], r.text[:300])
                    if r.status_code == 400:
                        error = r.json()
                        assert error.get("field") or error.get("error", {}).get("param"), (route, field, r.text[:300])
    assert statuses.count(400) > len(statuses) // 2 and any(s in (200, 202) for s in statuses)
