"""A text miner's answers: the request forwarded to its OpenAI-compatible server (SEEDGRID_LLM_URL).

No GPU worker of ours runs here: vLLM (or SGLang, TGI, `seedgrid llm serve`) is the
engine, and the miner API is its admission: signature, blacklist, quota, slots and body
cap, exactly as for the image types. The answer carries the text, the token ids, each
token's logprob and the top-k at each position (what the validator verifies with one
prefill), and the server's environment when it reports one (the dev server does).
"""

from __future__ import annotations

import time
from typing import Callable

import httpx

from app.llm.client import TextServerError, chat_answer, server_environment
from app.protocol.text import TextRequest
from app.settings import Settings
from app.web import Refused

TextAnswerFn = Callable[[TextRequest, int, float, float], dict]


def text_server_up(base_url: str) -> bool:
    try:
        return httpx.get(base_url.rstrip("/") + "/v1/models", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def served_name(settings: Settings, model: str) -> str:
    return settings.llm_model or model


def text_answer(settings: Settings, model: str) -> TextAnswerFn:
    """The honest text answer: the server's chat completion, in the protocol's shape."""
    if not settings.llm_url:
        raise ValueError(f"{model} is a text model type: set SEEDGRID_LLM_URL to the miner's OpenAI-compatible "
                         "server (for development: `seedgrid llm serve --model " + model + "`)")
    url, name = settings.llm_url, served_name(settings, model)

    def answer(req: TextRequest, priority: int, timeout: float, started: float) -> dict:
        t0 = time.perf_counter()
        try:
            body = chat_answer(url, name, req, timeout)
        except TextServerError as exc:
            raise refused(exc) from None
        return reply(req, body, started, t0, server_environment(url))

    return answer


def refused(exc: TextServerError) -> Refused:
    """The caller's answer when the text server did not answer: its 400 (a request this model cannot
    take, as a prompt and max_tokens beyond its context) is the caller's 400, anything else a 503."""
    if exc.status == 400:
        field = "params.max_tokens" if "max_tokens" in str(exc) else "messages"
        return Refused(400, "invalid_request", f"this miner's model cannot take it: {exc}", field=field)
    return Refused(503, "text_server_failed", str(exc))


def reply(req: TextRequest, body: dict, started: float, generated_at: float, environment: dict | None) -> dict:
    now = time.perf_counter()
    return {"request_id": req.request_id, "model": req.model, "media_type": "text", **body,
            "timings": {"generate_ms": round((now - generated_at) * 1000, 1),
                        "total_ms": round((now - started) * 1000, 1)},
            "environment": environment}
