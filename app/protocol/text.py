"""A text request (the CHAT payload: Gemma7b and any LLM type) and a miner's text answer.

The wire request: {request_id, model, messages: [{role, content}], seed, params:
{max_tokens, temperature, top_p, top_logprobs}}. A miner forwards it to its
OpenAI-compatible server and answers with the text, the token ids it generated (the
turn's end token included when it stopped), each token's logprob and the top-k
(token id, logprob) at each position, and why it stopped. `parse_text_request` and
`parse_text_answer` raise InvalidRequest naming the first wrong field, on both sides.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from app.protocol.catalogue import CATALOGUE, Payload, TextBounds, get_spec
from app.protocol.errors import InvalidRequest
from app.protocol.request import (
    MAX_SEED,
    _int,
    _number,
    _text,
    _unknown,
    parse_envelope,
)

ROLES = ("system", "user", "assistant")
FINISH_REASONS = ("stop", "length")
_TOP_FIELDS = {"request_id", "kind", "model", "messages", "seed", "params"}
_PARAM_FIELDS = {"max_tokens", "temperature", "top_p", "top_logprobs"}


@dataclass(frozen=True)
class TextParams:
    max_tokens: int
    temperature: float
    top_p: float
    top_logprobs: int

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True)
class TextRequest:
    request_id: str
    kind: str
    model: str
    messages: tuple[dict, ...]
    seed: int
    params: TextParams

    def to_dict(self) -> dict:
        out = asdict(self)
        out["messages"] = [dict(m) for m in self.messages]
        return out

    def wire(self) -> dict:
        """What a miner is sent: no kind (a miner cannot tell a challenge from an organic job)."""
        out = self.to_dict()
        out.pop("kind")
        return out


@dataclass(frozen=True)
class TextAnswer:
    text: str
    tokens: tuple[int, ...]
    logprobs: tuple[float, ...]
    top_logprobs: tuple[tuple[tuple[int, float], ...], ...]
    finish_reason: str


def text_bounds(model: str) -> TextBounds:
    spec = get_spec(model)
    if spec.payload is not Payload.CHAT or spec.text is None:
        texts = ", ".join(n for n, s in CATALOGUE.items() if s.payload is Payload.CHAT)
        raise InvalidRequest("model", f"model type {spec.name!r} takes no text request; text model types: {texts}")
    return spec.text


def _top_p(value: Any) -> float:
    top_p = _number(value, "params.top_p", 0.0, 1.0)
    if top_p == 0:
        raise InvalidRequest("params.top_p", "must be above 0 (the share of probability mass sampled from)")
    return top_p


def parse_text_params(raw: Any, bounds: TextBounds) -> TextParams:
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise InvalidRequest("params", f"must be an object, got {type(raw).__name__}")
    _unknown(raw, _PARAM_FIELDS, "params.")
    return TextParams(
        max_tokens=_int(raw.get("max_tokens", bounds.challenge_max_tokens), "params.max_tokens", 1, bounds.max_tokens),
        temperature=_number(raw.get("temperature", 0.7), "params.temperature", 0.0, 2.0),
        top_p=_top_p(raw.get("top_p", 1.0)),
        top_logprobs=_int(raw.get("top_logprobs", bounds.top_logprobs), "params.top_logprobs", 1,
                          bounds.max_top_logprobs),
    )


def parse_messages(raw: Any, bounds: TextBounds) -> tuple[dict, ...]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= bounds.max_messages:
        raise InvalidRequest("messages", f"must be a list of 1 to {bounds.max_messages} {{role, content}} objects")
    out, chars = [], 0
    for i, m in enumerate(raw):
        if not isinstance(m, Mapping):
            raise InvalidRequest(f"messages.{i}", "must be an object with role and content")
        _unknown(m, {"role", "content"}, f"messages.{i}.")
        if m.get("role") not in ROLES:
            raise InvalidRequest(f"messages.{i}.role", f"must be one of {', '.join(ROLES)}, got {str(m.get('role'))[:40]!r}")
        content = _text(m.get("content"), f"messages.{i}.content", bounds.max_chars, required=True)
        chars += len(content)
        out.append({"role": m["role"], "content": content})
    if chars > bounds.max_chars:
        raise InvalidRequest("messages", f"hold {chars:,} characters; at most {bounds.max_chars:,}")
    if out[-1]["role"] == "assistant":
        raise InvalidRequest(f"messages.{len(out) - 1}.role", "the last message must be the user's (or system's)")
    return tuple(out)


def parse_text_request(raw: Any) -> TextRequest:
    """Validate a text request dict; raise InvalidRequest naming the first wrong field."""
    if not isinstance(raw, Mapping):
        raise InvalidRequest("body", f"must be a JSON object, got {type(raw).__name__}")
    _unknown(raw, _TOP_FIELDS, "")
    if not isinstance(raw.get("model"), str):
        raise InvalidRequest("model", "is required: a text model type")
    bounds = text_bounds(raw["model"])
    kind, request_id = parse_envelope(raw)
    return TextRequest(request_id=request_id, kind=kind, model=get_spec(raw["model"]).name,
                       messages=parse_messages(raw.get("messages"), bounds), seed=_int(raw["seed"], "seed", 0, MAX_SEED),
                       params=parse_text_params(raw.get("params"), bounds))


def parse_text_answer(raw: Any, request: TextRequest) -> TextAnswer:
    """A miner's text answer, checked for shape against its request (lengths agree, at most
    max_tokens, top-k as asked); what the tokens mean is verification's (app/verification/text.py)."""
    if not isinstance(raw, Mapping):
        raise InvalidRequest("body", "must be a JSON object")
    text, tokens, logprobs, top = raw.get("text"), raw.get("tokens"), raw.get("logprobs"), raw.get("top_logprobs")
    if not isinstance(text, str):
        raise InvalidRequest("text", "must be a string")
    if not isinstance(tokens, list) or not 1 <= len(tokens) <= request.params.max_tokens:
        raise InvalidRequest("tokens", f"must be a list of 1 to {request.params.max_tokens} token ids")
    if not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in tokens):
        raise InvalidRequest("tokens", "must hold token ids (integers from 0)")
    if not isinstance(logprobs, list) or len(logprobs) != len(tokens):
        raise InvalidRequest("logprobs", f"must hold one logprob per token ({len(tokens)})")
    logprobs = [_number(v, f"logprobs.{i}", -1e4, 0.0) for i, v in enumerate(logprobs)]
    if not isinstance(top, list) or len(top) != len(tokens):
        raise InvalidRequest("top_logprobs", f"must hold one list per token ({len(tokens)})")
    k = request.params.top_logprobs
    parsed_top = []
    for i, entry in enumerate(top):
        if not isinstance(entry, list) or len(entry) != k or not all(
                isinstance(p, list) and len(p) == 2 and isinstance(p[0], int) and not isinstance(p[0], bool)
                for p in entry):
            raise InvalidRequest(f"top_logprobs.{i}", f"must be {k} [token id, logprob] pairs")
        parsed_top.append(tuple((int(t), _number(v, f"top_logprobs.{i}", -1e4, 0.0)) for t, v in entry))
    finish = raw.get("finish_reason")
    if finish not in FINISH_REASONS:
        raise InvalidRequest("finish_reason", f"must be one of {', '.join(FINISH_REASONS)}, got {str(finish)[:40]!r}")
    return TextAnswer(text, tuple(tokens), tuple(logprobs), tuple(parsed_top), finish)
