"""Test equipment: dishonest text miners (`seedgrid miner serve --model Gemma7b --cheat STRATEGY`).

Each strategy answers a text request with something cheaper or other than the asked
model's answer, in the protocol's shape, with logprobs that look plausible:
- other_model: another model's weights (the dev Gemma7b-other, run in this process);
- truncated: the honest answer cut in half, a turn's end token appended;
- random_tokens: random token ids with made-up logprobs;
(both with their text as the server writes those tokens, so only what the tokens are gives them away)
- other_prompt: the honest answer to another question;
- higher_temperature: sampled at a higher temperature than asked (more varied, cheaper to
  make look "creative");
- fabricated_logprobs: the honest tokens with invented logprobs and top-k (a server that
  does not compute them);
- empty: an empty turn; error: a 503 instead of an answer.
"""

from __future__ import annotations

import dataclasses
import random
import time
from functools import lru_cache

from app.llm.client import TextServerError, chat_answer, detokenize, server_environment
from app.llm.devworld import challenge_messages
from app.miner.text import refused, reply, served_name
from app.protocol.text import TextRequest
from app.settings import Settings
from app.web import Refused

STRATEGIES = ("other_model", "truncated", "random_tokens", "other_prompt", "higher_temperature",
              "fabricated_logprobs", "empty", "error")
END_TOKEN = "<end_of_turn>"


@lru_cache(maxsize=1)
def _other_model(folder: str, threads: int, model: str):
    from app.llm.model import LanguageModel

    return LanguageModel(folder, threads=threads, name=model)


def _generate_other(settings: Settings, req: TextRequest) -> dict:
    from app.llm.devbuild import build_dev_text, dev_text_folder

    build_dev_text(settings)
    lm = _other_model(str(dev_text_folder(settings, f"{req.model}-other")), settings.threads, req.model)
    prompt = lm.encode(lm.chat_prompt(list(req.messages)))
    p = req.params
    g = lm.generate(prompt, max_tokens=min(p.max_tokens, lm.max_len - len(prompt)), temperature=p.temperature,
                    top_p=p.top_p, seed=req.seed, top_k=p.top_logprobs)
    return {"text": lm.decode([x.token for x in g.positions]), "tokens": [x.token for x in g.positions],
            "logprobs": [x.logprob for x in g.positions], "top_logprobs": [[list(t) for t in x.top] for x in g.positions],
            "finish_reason": g.finish_reason}


def text_cheat_answer(strategy: str, settings: Settings, model: str):
    """The miner API's `answer` for a text cheater."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown text strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    url, name = settings.llm_url, served_name(settings, model)

    def honest(req: TextRequest, timeout: float) -> dict:
        try:
            return chat_answer(url, name, req, timeout)
        except TextServerError as exc:
            raise refused(exc) from None

    def said(tokens: list[int]) -> str:  # the text of made-up tokens, as the server writes it: consistent
        return detokenize(url, name, tokens, 30.0)

    def answer(req: TextRequest, priority: int, timeout: float, started: float) -> dict:
        t0 = time.perf_counter()
        rng = random.Random(req.seed)
        if strategy == "error":
            raise Refused(503, "generation_failed", "the text server failed (TEST MODE: error)")
        if strategy == "other_model":
            body = _generate_other(settings, req)
        elif strategy == "other_prompt":
            body = honest(dataclasses.replace(req, messages=tuple(challenge_messages(req.seed + 1))), timeout)
        elif strategy == "higher_temperature":
            hotter = dataclasses.replace(req.params, temperature=min(2.0, req.params.temperature * 1.5 + 0.5))
            body = honest(dataclasses.replace(req, params=hotter), timeout)
        else:
            body = honest(req, timeout)
            n, k = len(body["tokens"]), req.params.top_logprobs
            if strategy == "truncated" and n > 2:
                end = _end_token(body)
                keep = n // 2
                body = {"text": said(body["tokens"][:keep]), "tokens": body["tokens"][:keep] + [end],
                        "logprobs": body["logprobs"][:keep] + [-0.5],
                        "top_logprobs": body["top_logprobs"][:keep] + [[[end, -0.5]] + body["top_logprobs"][keep][1:]],
                        "finish_reason": "stop"}
            elif strategy == "random_tokens":
                tokens = [rng.randrange(10, 700) for _ in range(n)]
                body = {**body, "text": said(tokens), "tokens": tokens, "logprobs": [-1.0] * n,
                        "top_logprobs": [[[t, -1.0]] + [[rng.randrange(10, 700), -2.0] for _ in range(k - 1)]
                                         for t in tokens], "finish_reason": "length" if n == req.params.max_tokens
                        else body["finish_reason"]}
            elif strategy == "fabricated_logprobs":
                body = {**body, "logprobs": [-0.1] * n,
                        "top_logprobs": [[[t, -0.1]] + [[(t + j) % 700, -3.0 - j] for j in range(1, k)]
                                         for t in body["tokens"]]}
            elif strategy == "empty":
                end = _end_token(body)
                body = {"text": "", "tokens": [end], "logprobs": [-0.1], "top_logprobs": [[[end, -0.1]] * k],
                        "finish_reason": "stop"}
        return reply(req, body, started, t0, server_environment(url) if url else None)

    return answer


def _end_token(body: dict) -> int:
    """The turn's end token id: the honest answer's last token when it stopped, else Gemma's dev id."""
    if body["finish_reason"] == "stop":
        return body["tokens"][-1]
    return 5  # <end_of_turn> in the dev tokenizer (app/llm/devtrain.SPECIAL)
