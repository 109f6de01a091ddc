"""`seedgrid llm serve` as a real process: the openai package against it, vLLM's echo and logprobs, seeds, streams, bad input."""

import json

import httpx
import pytest

from app.llm.devworld import challenge_messages

from ..conftest import free_port

MODEL = "Gemma7b"


@pytest.fixture(scope="module")
def server(module_processes):
    port = free_port()
    proc = module_processes("llm", "serve", "--model", MODEL, "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    proc.wait_http(url + "/health", timeout=120)
    return url


@pytest.fixture(scope="module")
def client(server):
    import openai

    return openai.OpenAI(base_url=server + "/v1", api_key="unused")


def test_the_openai_client_chats_with_seeded_reproducible_answers_and_logprobs(client):
    ask = dict(model=MODEL, messages=challenge_messages(7), max_tokens=40, logprobs=True, top_logprobs=3)
    greedy = [client.chat.completions.create(**ask, temperature=0) for _ in range(2)]
    assert greedy[0].choices[0].message.content == greedy[1].choices[0].message.content != ""
    sampled = [client.chat.completions.create(**ask, temperature=1.0, top_p=0.95, seed=s) for s in (5, 5, 6)]
    texts = [c.choices[0].message.content for c in sampled]
    assert texts[0] == texts[1], "the same seed samples the same tokens"
    content = sampled[0].choices[0].logprobs.content
    assert len(content) == sampled[0].usage.completion_tokens and all(len(t.top_logprobs) == 3 for t in content)
    assert all(t.logprob <= 0 and t.top_logprobs[0].logprob >= t.top_logprobs[-1].logprob for t in content)
    assert sampled[0].choices[0].finish_reason in ("stop", "length")
    assert [m.id for m in client.models.list().data] == [MODEL]


def test_echo_scores_prompt_and_answer_as_generation_reported_them(server):
    """The validator's teacher-forced pass: prompt + answer as token ids, echo, max_tokens 0."""
    asked = {"model": MODEL, "prompt": "<start_of_turn>user\nDescribe Kenun.<end_of_turn>\n<start_of_turn>model\n",
             "max_tokens": 24, "temperature": 0.8, "seed": 3, "logprobs": 5, "return_tokens_as_token_ids": True}
    made = httpx.post(server + "/v1/completions", json=asked, timeout=60).json()["choices"][0]["logprobs"]
    answer = [int(t.split(":")[1]) for t in made["tokens"]]
    prompt_ids = httpx.post(server + "/v1/completions", json={**asked, "max_tokens": 0, "echo": True},
                            timeout=60).json()["choices"][0]["logprobs"]["tokens"]
    prompt_ids = [int(t.split(":")[1]) for t in prompt_ids]
    scored = httpx.post(server + "/v1/completions", json={"model": MODEL, "prompt": prompt_ids + answer,
                                                          "max_tokens": 0, "echo": True, "logprobs": 5,
                                                          "return_tokens_as_token_ids": True}, timeout=60).json()
    lp = scored["choices"][0]["logprobs"]
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None, "a sequence's first token has none"
    tail = lp["token_logprobs"][len(prompt_ids):]
    assert len(tail) == len(answer)
    assert max(abs(a - b) for a, b in zip(tail, made["token_logprobs"])) < 1e-4, "one pass = token by token"
    assert [list(t) for t in lp["top_logprobs"][len(prompt_ids):]] == [list(t) for t in made["top_logprobs"]]
    assert scored["usage"]["completion_tokens"] == 0


def test_a_stream_sends_the_same_tokens_as_one_answer(client):
    ask = dict(model=MODEL, messages=challenge_messages(11), max_tokens=30, temperature=0.7, seed=9)
    whole = client.chat.completions.create(**ask).choices[0].message.content
    pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(**ask, stream=True)]
    assert "".join(pieces) == whole and len(pieces) > 1
    legacy = client.completions.create(model=MODEL, prompt="The sky in Kenun", max_tokens=8, seed=1, stream=True)
    assert len([c.choices[0].text for c in legacy]) >= 1


@pytest.mark.parametrize("body, field", [
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "bot", "content": "hi"}]}, "messages.0.role"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
    ({"max_tokens": "ten"}, "max_tokens"),
    ({"max_tokens": 100_000}, "max_tokens"),
    ({"temperature": 5}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"seed": -1}, "seed"),
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"logprobs": "yes"}, "logprobs"),
    ({"n": 2}, "n"),
    ({"stop": ["\n"]}, "stop"),
    ({"stream": 1}, "stream"),
])
def test_every_wrong_field_is_a_400_naming_it(server, body, field):
    sent = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **body}
    r = httpx.post(server + "/v1/chat/completions", json=sent, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == field, r.text


def test_malformed_requests_are_4xx_never_5xx(server):
    post = lambda path, **kw: httpx.post(server + path, timeout=30, **kw)  # noqa: E731
    assert post("/v1/chat/completions", json={"model": "other", "messages": [{"role": "user", "content": "x"}]}
                ).status_code == 404
    assert post("/v1/completions", content=b"{not json", headers={"Content-Type": "application/json"}
                ).json()["error"]["param"] == "body"
    assert post("/v1/completions", content=b"x", headers={"Content-Type": "text/plain"}).status_code == 415
    assert post("/v1/completions", content=b"x" * 200_000, headers={"Content-Type": "application/json"}
                ).status_code == 413
    for prompt in ([], [10**9], "", [1.5], {"a": 1}, ["a", "b"]):
        r = post("/v1/completions", json={"model": MODEL, "prompt": prompt})
        assert r.status_code == 400 and r.json()["error"]["param"] == "prompt", (prompt, r.text)
    r = post("/v1/completions", json={"model": MODEL, "prompt": "x", "max_tokens": 0})
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"
    long = post("/v1/completions", json={"model": MODEL, "prompt": list(range(3, 500)), "max_tokens": 100})
    assert long.status_code == 400 and "context" in long.json()["error"]["message"]
    assert httpx.get(server + "/v1/nothing", timeout=10).status_code == 404
    assert json.loads(httpx.get(server + "/v1/models", timeout=10).text)["data"][0]["max_model_len"] == 512
