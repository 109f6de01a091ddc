"""OpenAI's text routes over the gateway's jobs: /v1/chat/completions and /v1/completions.

A request becomes one text job (app/protocol/text.py: messages, seed, params); its answer
(the miner's text, token ids, logprobs and top-k) becomes OpenAI's completion object.
The grid serves chat models, so a legacy completion's prompt is sent as one user
message. The gateway has no tokenizer: tokens are shown as vLLM's
`return_tokens_as_token_ids` shows them, "token_id:N". Fields the grid cannot honour
(n > 1, stop, tools, echo, penalties, ...) are refused by name rather than ignored;
fields that only shape billing or logging (user, metadata, store) are ignored.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Iterator

from app.protocol.catalogue import CATALOGUE, Payload, get_spec
from app.protocol.errors import InvalidRequest
from app.protocol.request import MAX_SEED

COMPLETION_DEFAULT_TOKENS = 16  # OpenAI's default for /v1/completions
CHAT_DEFAULT_TOKENS = 256  # a chat's when none is given (vLLM's "up to the context" has no wire form here)
REFUSED = {"n": "only n = 1 is served", "stop": "stop sequences are not served; the answer ends at the model's end token",
           "tools": "tool calls are not served", "tool_choice": "tool calls are not served",
           "functions": "function calls are not served", "function_call": "function calls are not served",
           "response_format": "only text answers are served", "logit_bias": "logit_bias is not served",
           "presence_penalty": "penalties are not served", "frequency_penalty": "penalties are not served",
           "echo": "echo is not served on the grid (a miner's answer holds only what it generated)",
           "suffix": "suffix is not served", "best_of": "best_of is not served"}
NEUTRAL = {"n": 1, "presence_penalty": 0, "frequency_penalty": 0, "echo": False, "best_of": 1}  # allowed at these values


@dataclass(frozen=True)
class TextCall:
    """One OpenAI text request as a job body, and how to render its answer."""

    job: dict  # a POST /v1/jobs body: model, messages, seed, params
    chat: bool
    logprobs: int | None  # how many top logprobs to show per token; None: no logprobs
    stream: bool


def text_models() -> tuple[str, ...]:
    return tuple(n for n, s in CATALOGUE.items() if s.payload is Payload.CHAT)


def parse_call(raw: Any, *, chat: bool) -> TextCall:
    """OpenAI fields -> a text job; InvalidRequest naming the field."""
    if not isinstance(raw, dict):
        raise InvalidRequest("body", "must be a JSON object with model and " + ("messages" if chat else "prompt"))
    for name, why in REFUSED.items():
        if raw.get(name) is not None and raw.get(name) != NEUTRAL.get(name, object()):
            raise InvalidRequest(name, why)
    model = raw.get("model")
    texts = text_models()
    if model not in texts:
        raise InvalidRequest("model", f"must be a text model type ({', '.join(texts)}), got {str(model)[:80]!r}")
    bounds = get_spec(model).text
    messages = _messages(raw.get("messages")) if chat else _prompt(raw.get("prompt"))
    tokens_field = "max_completion_tokens" if chat and raw.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = raw.get(tokens_field)
    if max_tokens is None:
        max_tokens = min(CHAT_DEFAULT_TOKENS, bounds.max_tokens) if chat else COMPLETION_DEFAULT_TOKENS
    shown = _shown_logprobs(raw, chat, bounds.max_top_logprobs)
    params = {"max_tokens": _checked(max_tokens, tokens_field),
              "temperature": _checked(raw.get("temperature", 1.0), "temperature"),
              "top_p": _checked(raw.get("top_p", 1.0), "top_p"),
              "top_logprobs": max(shown or 0, bounds.top_logprobs)}  # miners always report top-k: verification uses it
    job = {"model": model, "messages": messages, "params": params}
    if raw.get("seed") is not None:
        seed = raw["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise InvalidRequest("seed", f"must be an integer from 0 to {MAX_SEED}")
        job["seed"] = seed
    stream = raw.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("stream", "must be true or false")
    return TextCall(job, chat, shown, stream)


def _checked(value: Any, field: str) -> Any:
    """Type only; the job's own parser checks the range and names `params.<field>`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequest(field, f"must be a number, got {type(value).__name__}")
    return value


def _shown_logprobs(raw: dict, chat: bool, most: int) -> int | None:
    if chat:
        wanted = raw.get("logprobs", False)
        if not isinstance(wanted, bool):
            raise InvalidRequest("logprobs", "must be true or false")
        top = raw.get("top_logprobs")
        if top is not None and (isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= most):
            raise InvalidRequest("top_logprobs", f"must be an integer from 0 to {most}")
        if top is not None and not wanted:
            raise InvalidRequest("top_logprobs", "needs logprobs: true")
        return (top or 0) if wanted else None
    top = raw.get("logprobs")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= most):
        raise InvalidRequest("logprobs", f"must be an integer from 0 to {most}")
    return top


def _messages(raw: Any) -> list[dict]:
    """OpenAI messages, with content as a string or a list of text parts; the job's parser checks the rest."""
    if not isinstance(raw, list):
        raise InvalidRequest("messages", "must be a list of {role, content} objects")
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise InvalidRequest(f"messages.{i}", "must be an object with role and content")
        content = m.get("content")
        if isinstance(content, list):
            texts = []
            for j, part in enumerate(content):
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise InvalidRequest(f"messages.{i}.content.{j}", "only text parts ({type: text, text}) are served")
                texts.append(part["text"])
            content = "".join(texts)
        role = "system" if m.get("role") == "developer" else m.get("role")
        out.append({"role": role, "content": content, **{k: v for k, v in m.items()
                                                           if k not in ("role", "content", "name")}})
    return out


def _prompt(raw: Any) -> list[dict]:
    if isinstance(raw, list) and len(raw) == 1:
        raw = raw[0]
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidRequest("prompt", "must be one non-empty string (the grid serves one prompt per request)")
    return [{"role": "user", "content": raw}]


def _token(token: int) -> str:
    return f"token_id:{token}"


def render(call: TextCall, job_id: str, model: str, answer: dict) -> dict:
    """The whole answer as OpenAI's chat.completion or text_completion object."""
    meta = {"id": ("chatcmpl-" if call.chat else "cmpl-") + job_id, "created": int(time.time()), "model": model,
            "system_fingerprint": None}
    logprobs = _logprobs(call, answer) if call.logprobs is not None else None
    if call.chat:
        choice = {"index": 0, "message": {"role": "assistant", "content": answer["text"]},
                  "logprobs": logprobs, "finish_reason": answer["finish_reason"]}
        return {**meta, "object": "chat.completion", "choices": [choice]}
    choice = {"index": 0, "text": answer["text"], "logprobs": logprobs, "finish_reason": answer["finish_reason"]}
    return {**meta, "object": "text_completion", "choices": [choice]}


def _logprobs(call: TextCall, answer: dict) -> dict:
    k = call.logprobs or 0
    steps = list(zip(answer["tokens"], answer["logprobs"], answer["top_logprobs"]))
    if call.chat:
        return {"content": [{"token": _token(t), "logprob": lp, "bytes": None,
                             "top_logprobs": [{"token": _token(a), "logprob": b, "bytes": None} for a, b in top[:k]]}
                            for t, lp, top in steps]}
    return {"tokens": [_token(t) for t, _, _ in steps], "token_logprobs": [lp for _, lp, _ in steps],
            "top_logprobs": [{_token(a): b for a, b in top[:k]} for _, _, top in steps]}


def stream_events(call: TextCall, body: dict) -> Iterator[str]:
    """A finished answer as OpenAI's server-sent chunks: the text in one delta, then the end."""
    choice = body["choices"][0]
    meta = {k: body[k] for k in ("id", "created", "model", "system_fingerprint")}
    if call.chat:
        obj = "chat.completion.chunk"
        chunks = [{"index": 0, "delta": {"role": "assistant", "content": choice["message"]["content"]},
                   "logprobs": choice["logprobs"], "finish_reason": None},
                  {"index": 0, "delta": {}, "logprobs": None, "finish_reason": choice["finish_reason"]}]
    else:
        obj = "text_completion"
        chunks = [{**choice, "finish_reason": None},
                  {"index": 0, "text": "", "logprobs": None, "finish_reason": choice["finish_reason"]}]
    for chunk in chunks:
        yield f"data: {json.dumps({**meta, 'object': obj, 'choices': [chunk]})}\n\n"
    yield "data: [DONE]\n\n"
