"""Judge a miner's text answer on the validator's own text server (SEEDGRID_VALIDATOR_LLM_URL).

One prefill per answer, never a generation: the messages through the chat template
(/tokenize), prompt + answer scored in one pass (echo with logprobs), the answer's text
checked against its tokens (/detokenize); then app/verification/text.verify_text. A
text server that fails raises TextServerError: the validator's own failure, never
counted against the miner.
"""

from __future__ import annotations

from functools import lru_cache

from app.llm import client
from app.llm.client import server_environment
from app.protocol.catalogue import get_spec
from app.protocol.errors import InvalidRequest
from app.protocol.text import TextRequest, parse_text_answer
from app.verification.text import TextThresholds, verify_text
from app.verification.verdict import Verdict, failed

TIMEOUT_S = 30.0


@lru_cache(maxsize=16)
def end_tokens(base_url: str, name: str, stop_strings: tuple[str, ...]) -> frozenset[int]:
    """The ids of the model family's turn-ending tokens on that server (each a single special token)."""
    ids = set()
    for text in stop_strings:
        tokens = client.post(base_url, "/tokenize", {"model": name, "prompt": text, "add_special_tokens": False},
                              TIMEOUT_S).get("tokens") or []
        if len(tokens) == 1:
            ids.add(int(tokens[0]))
    if not ids:
        raise client.TextServerError(f"the text server at {base_url} knows none of {', '.join(stop_strings)} as a "
                                     "single token: is it serving this model family?")
    return frozenset(ids)


def judge_text(base_url: str, name: str, request: TextRequest, raw_answer: dict, *,
               thresholds: TextThresholds) -> Verdict:
    """The verdict on `raw_answer` (the miner's JSON) to `request`; `name`: the model's name on the server."""
    try:
        answer = parse_text_answer(raw_answer, request)
    except InvalidRequest as exc:
        return failed(f"unreadable text answer: {exc}", well_formed=False)
    bounds = get_spec(request.model).text
    ends = end_tokens(base_url, name, bounds.stop_strings)
    prompt = client.tokenize_chat(base_url, name, [dict(m) for m in request.messages], TIMEOUT_S)
    if len(prompt) + len(answer.tokens) > _max_len(base_url, name):
        return failed("the answer is longer than the model's context allows after this prompt")
    scored = client.score(base_url, name, prompt + list(answer.tokens), len(prompt), TIMEOUT_S)
    said = client.detokenize(base_url, name, [t for t in answer.tokens if t not in ends], TIMEOUT_S)
    if said != answer.text:
        return failed("the answer's text is not what its tokens say")
    mine = server_environment(base_url) or {}
    theirs = raw_answer.get("environment") if isinstance(raw_answer.get("environment"), dict) else {}
    same = bool(mine.get("class")) and mine.get("class") == theirs.get("class")
    return verify_text(request, answer, scored, end_tokens=set(ends), thresholds=thresholds, same_environment=same)


@lru_cache(maxsize=16)
def _max_len(base_url: str, name: str) -> int:
    data = client.post(base_url, "/tokenize", {"model": name, "prompt": "x"}, TIMEOUT_S)
    return int(data.get("max_model_len") or 1 << 30)
