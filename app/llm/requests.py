"""The OpenAI-compatible text requests `seedgrid llm serve` takes, checked field by field.

Each parser returns a frozen request or raises ModelError naming the field, so a wrong
type or range is a 400 that says which field and why, never a 500. Fields the server
does not implement (n > 1, stop sequences, best_of) are refused by name rather than
ignored; fields that only shape billing or logging (user, metadata) are ignored, as
OpenAI-compatible servers do.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.llm.model import CHAT_ROLES, MAX_TOP_LOGPROBS, ModelError

MAX_SEED = 2**63 - 1
DEFAULT_COMPLETION_TOKENS = 16  # OpenAI's default for /v1/completions
MAX_PROMPT_CHARS = 32_000


@dataclass(frozen=True)
class Sampling:
    max_tokens: int | None  # None: up to the model's context (a chat's default, as vLLM's)
    temperature: float
    top_p: float
    seed: int | None
    stream: bool
    token_ids: bool  # vLLM's return_tokens_as_token_ids: tokens shown as "token_id:N"


@dataclass(frozen=True)
class CompletionRequest:
    prompt: str | tuple[int, ...]
    logprobs: int | None
    echo: bool
    sampling: Sampling


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[dict, ...]
    logprobs: bool
    top_logprobs: int
    sampling: Sampling


def _number(raw: dict, field: str, default: float, low: float, high: float, *, low_open: bool = False) -> float:
    value = raw.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ModelError(field, f"must be a number, got {type(value).__name__}")
    if not (low < value if low_open else low <= value) or value > high:
        raise ModelError(field, f"must be {'above' if low_open else 'at least'} {low:g} and at most {high:g}, "
                                f"got {value}")
    return float(value)


def _integer(raw: dict, field: str, default: int | None, low: int, high: int) -> int | None:
    value = raw.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelError(field, f"must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise ModelError(field, f"must be between {low} and {high}, got {value}")
    return value


def _flag(raw: dict, field: str) -> bool:
    value = raw.get(field)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ModelError(field, f"must be true or false, got {type(value).__name__}")
    return value


def _common(raw, served: str, max_tokens_default: int | None, max_tokens_max: int, *, min_tokens: int) -> Sampling:
    if not isinstance(raw, dict):
        raise ModelError("body", "must be a JSON object")
    model = raw.get("model")
    if not isinstance(model, str) or model != served:
        raise ModelError("model", f"this server serves {served!r}, got {str(model)[:80]!r}")
    if _integer(raw, "n", 1, 1, 1) != 1:
        raise ModelError("n", "must be 1")
    for unsupported in ("stop", "best_of", "suffix", "tools", "functions", "response_format"):
        if raw.get(unsupported) not in (None, [], ""):
            raise ModelError(unsupported, "is not supported by this server; leave it out")
    max_tokens = raw.get("max_completion_tokens", raw.get("max_tokens"))
    field = "max_completion_tokens" if "max_completion_tokens" in raw else "max_tokens"
    return Sampling(max_tokens=_integer({field: max_tokens}, field, max_tokens_default, min_tokens, max_tokens_max),
                    temperature=_number(raw, "temperature", 1.0, 0.0, 2.0),
                    top_p=_number(raw, "top_p", 1.0, 0.0, 1.0, low_open=True),
                    seed=_integer(raw, "seed", None, 0, MAX_SEED),
                    stream=_flag(raw, "stream"),
                    token_ids=_flag(raw, "return_tokens_as_token_ids"))


def parse_completion(raw, *, served: str, vocab_size: int, max_len: int) -> CompletionRequest:
    sampling = _common(raw, served, DEFAULT_COMPLETION_TOKENS, max_len, min_tokens=0)
    prompt = raw.get("prompt")
    if isinstance(prompt, str):
        if not prompt or len(prompt) > MAX_PROMPT_CHARS:
            raise ModelError("prompt", f"must be 1 to {MAX_PROMPT_CHARS:,} characters")
        _unicode(prompt, "prompt")
    elif isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        if len(prompt) > max_len or not all(0 <= t < vocab_size for t in prompt):
            raise ModelError("prompt", f"token ids must be 1 to {max_len} ids, each from 0 to {vocab_size - 1}")
        prompt = tuple(prompt)
    else:
        raise ModelError("prompt", "must be a string or a non-empty list of token ids (one prompt per request)")
    echo = _flag(raw, "echo")
    if sampling.max_tokens == 0 and not echo:
        raise ModelError("max_tokens", "must be at least 1 (0 only with echo: the prompt's logprobs alone)")
    if sampling.stream and echo:
        raise ModelError("echo", "cannot be combined with stream here")
    return CompletionRequest(prompt, _integer(raw, "logprobs", None, 0, MAX_TOP_LOGPROBS), echo, sampling)


def parse_chat(raw, *, served: str, max_len: int) -> ChatRequest:
    sampling = _common(raw, served, None, max_len, min_tokens=1)
    messages = raw.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ModelError("messages", "must be a non-empty list of {role, content}")
    parsed = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise ModelError(f"messages.{i}", "must be an object with role and content")
        if m.get("role") not in CHAT_ROLES:
            raise ModelError(f"messages.{i}.role", f"must be one of {', '.join(CHAT_ROLES)}, got "
                                                   f"{str(m.get('role'))[:40]!r}")
        parsed.append({"role": m["role"], "content": _content(m.get("content"), f"messages.{i}.content")})
    if parsed[-1]["role"] == "assistant":
        raise ModelError(f"messages.{len(parsed) - 1}.role", "the last message must be the user's (or system's)")
    if sum(len(m["content"]) for m in parsed) > MAX_PROMPT_CHARS:
        raise ModelError("messages", f"hold more than {MAX_PROMPT_CHARS:,} characters")
    logprobs = _flag(raw, "logprobs")
    top = _integer(raw, "top_logprobs", 0, 0, MAX_TOP_LOGPROBS)
    if top and not logprobs:
        raise ModelError("top_logprobs", "needs logprobs: true")
    return ChatRequest(tuple(parsed), logprobs, top, sampling)


def _unicode(value: str, field: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ModelError(field, "is not valid Unicode text (it holds a lone surrogate such as \\ud800)") from None
    return value


def _content(value, field: str) -> str:
    """A message's text: a string, or OpenAI's list of text parts."""
    if isinstance(value, str):
        return _unicode(value, field)
    if isinstance(value, list) and all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                                       for p in value):
        return _unicode("".join(p["text"] for p in value), field)
    raise ModelError(field, "must be a string or a list of {type: text, text} parts (text only)")
