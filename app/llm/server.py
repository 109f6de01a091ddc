"""`seedgrid llm serve`: one causal LM behind the OpenAI-compatible endpoints vLLM serves.

/v1/models, /v1/completions, /v1/chat/completions, /tokenize and /detokenize (vLLM's), with
what the grid needs of them:
`seed`, `temperature`, `top_p`, `max_tokens`, `logprobs` (the top-k at each position),
`echo` with the prompt's logprobs as vLLM gives them (the validator's teacher-forced
pass: prompt + answer as token ids, `max_tokens` 0), vLLM's `return_tokens_as_token_ids`,
and `stream` (Server-Sent Events, one chunk per token, then `data: [DONE]`). Errors
have OpenAI's shape, so the `openai` package raises its own typed errors.

One model per process; requests take it one at a time (a lock), in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from typing import Iterator

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from app import __version__
from app.llm.model import Generation, LanguageModel, ModelError, Position
from app.llm.requests import (
    ChatRequest,
    CompletionRequest,
    Sampling,
    parse_chat,
    parse_completion,
)
from app.web import (
    Refused,
    decode_json,
    install_error_handlers,
    openai_error_response,
    read_body,
)

log = logging.getLogger(__name__)


def create_llm_app(lm: LanguageModel, *, max_body_bytes: int, body_timeout: float) -> FastAPI:
    app = FastAPI(title=f"Seedgrid dev text server ({lm.name})", version=__version__,
                  description="OpenAI-compatible completions and chat completions over one causal LM.")
    install_error_handlers(app, "text server", log, error_response=openai_error_response)
    busy = threading.Lock()  # one generation at a time on this process's model
    environment = lm.environment()

    @app.exception_handler(ModelError)
    async def _model_error(_request: Request, exc: ModelError):
        return openai_error_response(404 if exc.field == "model" else 400,
                                     "NotFoundError" if exc.field == "model" else "invalid_request_error",
                                     exc.message, exc.field)

    async def body(request: Request):
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise Refused(415, "unsupported_media_type", f"send application/json, not {content_type or 'nothing'}")
        # read up to 16 caps, then refuse above one: a 413 sent while the client still writes resets its connection
        data = await read_body(request, max_bytes=16 * max_body_bytes, timeout=body_timeout)
        if len(data) > max_body_bytes:
            raise Refused(413, "payload_too_large", f"a request's body is at most {max_body_bytes:,} bytes; this one "
                                                    f"is {len(data):,}")
        return decode_json(data)

    def run(fn, *args, **kwargs):
        with busy:
            return fn(*args, **kwargs)

    @app.get("/health")
    @app.get("/healthz")
    async def health():
        return {"status": "ok", "model": lm.name, "environment": environment}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": lm.name, "object": "model", "created": 0, "owned_by": "seedgrid",
                                            "root": str(lm.folder), "max_model_len": lm.max_len}]}

    @app.post("/tokenize")
    async def tokenize(request: Request):
        """vLLM's: a prompt, or chat messages through the chat template, as token ids."""
        raw = await body(request)
        if isinstance(raw, dict) and "messages" in raw:
            req = parse_chat({**raw, "max_tokens": None, "stream": None}, served=lm.name, max_len=lm.max_len)
            tokens = lm.encode(lm.chat_prompt(list(req.messages)))
        else:
            req = parse_completion({**{k: v for k, v in (raw if isinstance(raw, dict) else {}).items()
                                       if k != "add_special_tokens"}, "max_tokens": 0, "echo": True},
                                   served=lm.name, vocab_size=lm.vocab_size, max_len=lm.max_len)
            special = raw.get("add_special_tokens", True)
            if not isinstance(special, bool):
                raise ModelError("add_special_tokens", "must be true or false")
            tokens = list(req.prompt) if isinstance(req.prompt, tuple) else lm.encode(req.prompt, bos=special)
        return {"tokens": tokens, "count": len(tokens), "max_model_len": lm.max_len}

    @app.post("/detokenize")
    async def detokenize(request: Request):
        """vLLM's: token ids as text (special tokens included, as the tokenizer writes them)."""
        raw = await body(request)
        tokens = raw.get("tokens") if isinstance(raw, dict) else None
        if not isinstance(raw, dict) or raw.get("model") != lm.name:
            raise ModelError("model", f"this server serves {lm.name!r}")
        if not isinstance(tokens, list) or not all(isinstance(t, int) and not isinstance(t, bool)
                                                   and 0 <= t < lm.vocab_size for t in tokens):
            raise ModelError("tokens", f"must be a list of token ids from 0 to {lm.vocab_size - 1}")
        return {"prompt": lm.tokenizer.decode(tokens)}

    @app.post("/v1/completions")
    async def completions(request: Request):
        req = parse_completion(await body(request), served=lm.name, vocab_size=lm.vocab_size, max_len=lm.max_len)
        prompt = list(req.prompt) if isinstance(req.prompt, tuple) else lm.encode(req.prompt)
        meta = _meta("cmpl", lm.name)
        if req.sampling.stream:
            _budget(lm, prompt, req.sampling)  # a prompt too long is a 400 before the stream starts
            return _stream(_completion_chunks(lm, busy, prompt, req, meta))
        return await run_in_threadpool(run, _completion, lm, prompt, req, meta)

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        req = parse_chat(await body(request), served=lm.name, max_len=lm.max_len)
        prompt = lm.encode(lm.chat_prompt(list(req.messages)), bos=True)
        meta = _meta("chatcmpl", lm.name)
        if req.sampling.stream:
            _budget(lm, prompt, req.sampling)
            return _stream(_chat_chunks(lm, busy, prompt, req, meta))
        return await run_in_threadpool(run, _chat, lm, prompt, req, meta)

    return app


def _meta(prefix: str, model: str) -> dict:
    return {"id": f"{prefix}-{uuid.uuid4().hex}", "created": int(time.time()), "model": model}


def _budget(lm: LanguageModel, prompt: list[int], sampling: Sampling) -> int:
    if sampling.max_tokens is not None:
        lm.check_length(len(prompt), sampling.max_tokens)
        return sampling.max_tokens
    if len(prompt) >= lm.max_len:
        raise ModelError("messages", f"the prompt's {len(prompt)} tokens fill the model's context of {lm.max_len}")
    return lm.max_len - len(prompt)


def _generate(lm: LanguageModel, prompt: list[int], sampling: Sampling, top_k: int, on_token=None) -> Generation:
    return lm.generate(prompt, max_tokens=_budget(lm, prompt, sampling), temperature=sampling.temperature,
                       top_p=sampling.top_p, seed=sampling.seed, top_k=top_k, on_token=on_token)


def _shown(lm: LanguageModel, token: int, token_ids: bool) -> str:
    return f"token_id:{token}" if token_ids else lm.token_text(token)


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


# --- /v1/completions --------------------------------------------------------------------
def _completion_logprobs(lm: LanguageModel, positions: list[Position], token_ids: bool, offset: int = 0) -> dict:
    """The legacy completions' logprobs: tokens, token_logprobs, top_logprobs (token -> logprob), text_offset."""
    out = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    for p in positions:
        out["tokens"].append(_shown(lm, p.token, token_ids))
        out["token_logprobs"].append(p.logprob)
        out["top_logprobs"].append(None if p.logprob is None else {_shown(lm, t, token_ids): v for t, v in p.top})
        out["text_offset"].append(offset)
        offset += len(lm.token_text(p.token))
    return out


def _completion(lm: LanguageModel, prompt: list[int], req: CompletionRequest, meta: dict) -> dict:
    k = req.logprobs or 0
    echoed = lm.score(prompt, top_k=k) if req.echo else []
    generation = _generate(lm, prompt, req.sampling, k) if req.sampling.max_tokens else Generation(len(prompt), (),
                                                                                                   "length")
    made = list(generation.positions)
    text = lm.decode([p.token for p in made])
    if req.echo:
        text = (req.prompt if isinstance(req.prompt, str) else lm.tokenizer.decode(prompt)) + text
    logprobs = None if req.logprobs is None else _completion_logprobs(lm, echoed + made, req.sampling.token_ids)
    return {**meta, "object": "text_completion",
            "choices": [{"index": 0, "text": text, "logprobs": logprobs, "finish_reason": generation.finish_reason}],
            "usage": _usage(len(prompt), len(made))}


def _completion_chunks(lm, busy, prompt, req: CompletionRequest, meta) -> Iterator[dict]:
    pieces = _pieces(lm, busy, prompt, req.sampling, req.logprobs or 0)
    for position, piece, finish in pieces:
        logprobs = None if req.logprobs is None else _completion_logprobs(lm, [position], req.sampling.token_ids)
        yield {**meta, "object": "text_completion",
               "choices": [{"index": 0, "text": piece, "logprobs": logprobs, "finish_reason": finish}]}


# --- /v1/chat/completions ---------------------------------------------------------------
def _chat_logprob(lm: LanguageModel, token: int, logprob: float, token_ids: bool) -> dict:
    shown = _shown(lm, token, token_ids)
    return {"token": shown, "logprob": logprob, "bytes": list(lm.token_text(token).encode("utf-8"))}


def _chat_logprobs(lm: LanguageModel, positions: list[Position], token_ids: bool) -> dict:
    return {"content": [{**_chat_logprob(lm, p.token, p.logprob, token_ids),
                         "top_logprobs": [_chat_logprob(lm, t, v, token_ids) for t, v in p.top]} for p in positions]}


def _chat(lm: LanguageModel, prompt: list[int], req: ChatRequest, meta: dict) -> dict:
    generation = _generate(lm, prompt, req.sampling, req.top_logprobs if req.logprobs else 0)
    made = list(generation.positions)
    return {**meta, "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": lm.decode([p.token for p in made])},
                         "logprobs": _chat_logprobs(lm, made, req.sampling.token_ids) if req.logprobs else None,
                         "finish_reason": generation.finish_reason}],
            "usage": _usage(len(prompt), len(made))}


def _chat_chunks(lm, busy, prompt, req: ChatRequest, meta) -> Iterator[dict]:
    first = True
    for position, piece, finish in _pieces(lm, busy, prompt, req.sampling, req.top_logprobs if req.logprobs else 0):
        delta = {"role": "assistant", "content": piece} if first else {"content": piece}
        first = False
        yield {**meta, "object": "chat.completion.chunk",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                            "logprobs": _chat_logprobs(lm, [position], req.sampling.token_ids)
                            if req.logprobs else None}]}


# --- streaming --------------------------------------------------------------------------
def _pieces(lm: LanguageModel, busy: threading.Lock, prompt: list[int], sampling: Sampling,
            top_k: int) -> Iterator[tuple[Position, str, str | None]]:
    """(position, its new text, finish reason on the last) per token, as the model makes them (a thread)."""
    import queue

    tokens: queue.Queue = queue.Queue()

    def work() -> None:
        try:
            with busy:
                generation = _generate(lm, prompt, sampling, top_k, on_token=tokens.put)
            tokens.put(generation)
        except Exception as exc:  # noqa: BLE001 - handed to the stream, which reports it
            tokens.put(exc)

    threading.Thread(target=work, name="llm-stream", daemon=True).start()
    made: list[int] = []
    shown = ""
    pending: Position | None = None
    while True:
        item = tokens.get()
        if isinstance(item, Exception):
            raise item
        if isinstance(item, Generation):
            if pending is not None:
                yield pending, _tail(lm, made, shown), item.finish_reason
            return
        if pending is not None:
            piece = _tail(lm, made, shown)
            shown += piece
            yield pending, piece, None
        made.append(item.token)
        pending = item


def _tail(lm: LanguageModel, made: list[int], shown: str) -> str:
    text = lm.decode(made)
    return text[len(shown):] if text.startswith(shown) else text


def _stream(chunks: Iterator[dict]) -> StreamingResponse:
    """Server-Sent Events of the chunks (made in a worker thread), then [DONE]; an error mid-stream
    is sent as an OpenAI error event."""

    async def events():
        iterator = iter(chunks)
        while True:
            try:
                chunk = await asyncio.to_thread(next, iterator, None)
            except ModelError as exc:
                yield f"data: {json.dumps({'error': {'message': exc.message, 'param': exc.field}})}\n\n"
                break
            if chunk is None:
                break
            yield f"data: {json.dumps(chunk)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
