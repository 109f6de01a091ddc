"""Calls to an OpenAI-compatible text server (vLLM, SGLang, TGI, or `seedgrid llm serve`).

The miner's side: `chat_answer` sends a text request as a chat completion (seed,
temperature, top_p, max_tokens, top-k logprobs, vLLM's token ids) and returns the
protocol's answer. The validator's side: `tokenize_chat` (vLLM's /tokenize through the
chat template), `score` (one teacher-forced pass: /v1/completions over token ids with
echo, logprobs and max_tokens 0) and `detokenize`. A server that fails or answers
something unreadable raises TextServerError saying which server and what happened.
"""

from __future__ import annotations

from functools import lru_cache

import httpx

from app.protocol.text import TextRequest
from app.verification.text import Scored

VALIDATOR_TOP_K = 20  # the validator scores with the widest top-k: the sampling check needs the tail


class TextServerError(RuntimeError):
    """The text server did not give a usable answer; `status` is its HTTP status when it refused (else None)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@lru_cache(maxsize=1)
def _http() -> httpx.Client:
    """One pooled client per process: a new one per call builds an SSL context (about 20 ms) and a connection."""
    return httpx.Client(limits=httpx.Limits(max_connections=64, max_keepalive_connections=16))


def post(base_url: str, path: str, body: dict, timeout: float) -> dict:
    url = base_url.rstrip("/") + path
    try:
        r = _http().post(url, json=body, timeout=timeout)
    except httpx.HTTPError as exc:
        raise TextServerError(f"the text server at {base_url} did not answer {path} ({type(exc).__name__}: {exc}); "
                              "is it running? (`seedgrid llm serve --model ...`)") from None
    try:
        data = r.json()
    except ValueError:
        raise TextServerError(f"the text server at {base_url} answered {path} with {r.status_code} and no JSON") from None
    if r.status_code != 200:
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else str(data)[:300]
        raise TextServerError(f"the text server at {base_url} refused {path} ({r.status_code}): {message}",
                              r.status_code)
    return data


@lru_cache(maxsize=8)
def server_environment(base_url: str) -> dict | None:
    """What the server says it runs on (GET /health's `environment`), when it says; read once."""
    try:
        env = _http().get(base_url.rstrip("/") + "/health", timeout=5).json().get("environment")
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return env if isinstance(env, dict) else None


def _token_id(shown: str) -> int:
    if not isinstance(shown, str) or not shown.startswith("token_id:"):
        raise TextServerError(f"the text server named a token {str(shown)[:40]!r}, not token_id:N "
                              "(it must support vLLM's return_tokens_as_token_ids)")
    return int(shown.split(":", 1)[1])


def chat_answer(base_url: str, model: str, request: TextRequest, timeout: float) -> dict:
    """The miner's answer to a text request: text, tokens, logprobs, top_logprobs, finish_reason."""
    p = request.params
    data = post(base_url, "/v1/chat/completions", {
        "model": model, "messages": [dict(m) for m in request.messages], "max_tokens": p.max_tokens,
        "temperature": p.temperature, "top_p": p.top_p, "seed": request.seed, "logprobs": True,
        "top_logprobs": p.top_logprobs, "return_tokens_as_token_ids": True}, timeout)
    try:
        choice = data["choices"][0]
        content = choice["logprobs"]["content"]
        return {"text": choice["message"]["content"] or "",
                "tokens": [_token_id(c["token"]) for c in content],
                "logprobs": [c["logprob"] for c in content],
                "top_logprobs": [[[_token_id(t["token"]), t["logprob"]] for t in c["top_logprobs"]] for c in content],
                "finish_reason": choice["finish_reason"]}
    except (KeyError, IndexError, TypeError) as exc:
        raise TextServerError(f"the text server at {base_url} answered a chat completion without "
                              f"{exc} (logprobs with top_logprobs are required)") from None


def tokenize_chat(base_url: str, model: str, messages: list[dict], timeout: float) -> list[int]:
    data = post(base_url, "/tokenize", {"model": model, "messages": messages, "add_generation_prompt": True}, timeout)
    tokens = data.get("tokens")
    if not isinstance(tokens, list) or not tokens:
        raise TextServerError(f"the text server at {base_url} tokenized the messages into {str(tokens)[:80]}")
    return tokens


def score(base_url: str, model: str, tokens: list[int], start: int, timeout: float,
          top_k: int = VALIDATOR_TOP_K) -> list[Scored]:
    """The validator's view of tokens[start:] given everything before: one prefill, no decoding."""
    data = post(base_url, "/v1/completions", {"model": model, "prompt": tokens, "max_tokens": 0, "echo": True,
                                               "logprobs": top_k, "return_tokens_as_token_ids": True}, timeout)
    try:
        lp = data["choices"][0]["logprobs"]
        out = []
        for i in range(start, len(tokens)):
            top = sorted(((_token_id(t), v) for t, v in lp["top_logprobs"][i].items()), key=lambda x: -x[1])
            out.append(Scored(lp["token_logprobs"][i], tuple(top)))
        return out
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise TextServerError(f"the text server at {base_url} scored without echo logprobs ({exc})") from None


def detokenize(base_url: str, model: str, tokens: list[int], timeout: float) -> str:
    data = post(base_url, "/detokenize", {"model": model, "tokens": tokens}, timeout)
    if not isinstance(data.get("prompt"), str):
        raise TextServerError(f"the text server at {base_url} detokenized into {str(data)[:80]}")
    return data["prompt"]
