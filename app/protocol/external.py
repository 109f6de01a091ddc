"""An external image API's request and a miner's answer (the EXTERNAL_IMAGE payload: GoJourney).

The wire request: {request_id, model, prompt, seed}; the prompt may end in provider flags
(`--ar 16:9`), and the seed only keeps the envelope common (the provider draws its own).
A miner answers with the image, the provider's task id and the mode it ran in. Nothing
here is reproduced: the validator fetches the task from the provider and checks it
(app/verification/external.py). Each parser raises InvalidRequest naming the field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from app.protocol.catalogue import CATALOGUE, Payload, get_spec
from app.protocol.errors import InvalidRequest
from app.protocol.request import MAX_SEED, _int, _text, _unknown, parse_envelope

MODE_FACTORS = {"turbo": 1.0, "fast": 0.5, "relax": 0.1}  # NicheImage's reward per answer by the provider's mode
MAX_PROMPT_CHARS = 2000
MAX_TASK_ID = 128
_TOP_FIELDS = {"request_id", "kind", "model", "prompt", "seed"}


@dataclass(frozen=True)
class ExternalRequest:
    request_id: str
    kind: str
    model: str
    prompt: str
    seed: int

    def to_dict(self) -> dict:
        return asdict(self)


def base_prompt(prompt: str) -> str:
    """The text before any `--` flag, whitespace folded: what a provider's task must have been asked."""
    return " ".join(prompt.split(" --")[0].split())


def flags(prompt: str) -> dict[str, str]:
    """The prompt's `--name value` flags (a bare flag's value is "")."""
    out = {}
    for part in prompt.split(" --")[1:]:
        name, _, value = part.strip().partition(" ")
        if name:
            out[name] = value.strip()
    return out


def parse_external_request(raw: Any) -> ExternalRequest:
    if not isinstance(raw, Mapping):
        raise InvalidRequest("body", f"must be a JSON object, got {type(raw).__name__}")
    _unknown(raw, _TOP_FIELDS, "")
    if not isinstance(raw.get("model"), str):
        raise InvalidRequest("model", "is required: an external image model type")
    spec = get_spec(raw["model"])
    if spec.payload is not Payload.EXTERNAL_IMAGE:
        names = ", ".join(n for n, s in CATALOGUE.items() if s.payload is Payload.EXTERNAL_IMAGE)
        raise InvalidRequest("model", f"model type {spec.name!r} is not an external image type ({names})")
    kind, request_id = parse_envelope(raw)
    prompt = _text(raw.get("prompt"), "prompt", MAX_PROMPT_CHARS, required=True)
    if not base_prompt(prompt):
        raise InvalidRequest("prompt", "needs text before its -- flags")
    return ExternalRequest(request_id=request_id, kind=kind, model=spec.name, prompt=prompt,
                           seed=_int(raw["seed"], "seed", 0, MAX_SEED))


def parse_task_claim(raw: Mapping) -> tuple[str, str]:
    """(task_id, mode) from a miner's answer; InvalidRequest naming the field."""
    task_id, mode = raw.get("task_id"), raw.get("mode")
    if not isinstance(task_id, str) or not 0 < len(task_id) <= MAX_TASK_ID or not task_id.isprintable():
        raise InvalidRequest("task_id", f"must be the provider's task id, 1 to {MAX_TASK_ID} printable characters")
    if mode not in MODE_FACTORS:
        raise InvalidRequest("mode", f"must be one of {', '.join(MODE_FACTORS)}, got {str(mode)[:40]!r}")
    return task_id, mode
