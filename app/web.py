"""What every Seedgrid HTTP service shares (miner API, gateway): the JSON error body and a JSON body parser that never raises its own errors.

Errors are JSON {error, detail[, field]} (SPEC.md: Miner API), with Retry-After where
trying again later helps.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Callable

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.protocol.errors import InvalidRequest


class Refused(Exception):
    """A request an API will not serve: status, machine-readable error, human detail."""

    def __init__(self, status: int, error: str, detail: str, retry_after: int | None = None,
                 field: str | None = None):
        self.status, self.error, self.detail, self.retry_after, self.field = status, error, detail, retry_after, field
        super().__init__(detail)


async def read_body(request: Request, *, max_bytes: int, timeout: float) -> bytes:
    """The whole body, refused early when it declares or reaches more than max_bytes (413) or dawdles (408)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise Refused(413, "payload_too_large", f"body of {declared} bytes exceeds {max_bytes}")
    body = bytearray()  # an image-carrying body is megabytes: appended in place, not copied per chunk
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                body += chunk
                if len(body) > max_bytes:
                    raise Refused(413, "payload_too_large", f"body exceeds {max_bytes} bytes")
    except TimeoutError:
        raise Refused(408, "body_timeout", f"the body did not arrive within {timeout:g} s") from None
    return bytes(body)


async def read_form(request: Request, *, max_bytes: int, timeout: float, max_fields: int, max_part_size: int,
                    what: str, max_files: int = 4):
    """A multipart/form-data body (Starlette's FormData; the caller closes it), read whole within
    max_bytes (`read_body`'s 413 and 408) before it is parsed: 415 for another Content-Type, a 400
    naming `body` for one that cannot be parsed (no boundary, cut short, too many parts)."""
    from starlette.formparsers import MultiPartException, MultiPartParser

    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "multipart/form-data":
        raise Refused(415, "unsupported_media_type",
                      f"send {what} as multipart/form-data, not {content_type or 'no Content-Type'}")
    body = await read_body(request, max_bytes=max_bytes, timeout=timeout)

    async def once():
        yield body

    parser = MultiPartParser(request.headers, once(), max_files=max_files, max_fields=max_fields,
                             max_part_size=max_part_size)
    try:
        return await parser.parse()
    except MultiPartException as exc:
        raise InvalidRequest("body", f"is not a readable multipart/form-data body: {exc.message}") from None


def decode_capped(body: bytes, caps: dict[str, int], default: str):
    """The body as JSON (`decode_json`) within its pipeline's cap (`body_caps`), read under the largest:
    413 when it is larger than its own pipeline's, so only image-carrying requests may be megabytes.
    A body that names no known pipeline, or is no JSON at all, counts as `default`'s."""
    try:
        raw = decode_json(body)
    except InvalidRequest:
        if len(body) > caps[default]:
            raise _too_large(default, len(body), caps) from None
        raise
    pipeline = raw.get("pipeline") if isinstance(raw, dict) else None
    key = pipeline if isinstance(pipeline, str) and pipeline in caps else default
    if len(body) > caps[key]:
        raise _too_large(key, len(body), caps)
    return raw


def _too_large(pipeline: str, size: int, caps: dict[str, int]) -> Refused:
    larger = sorted(p for p, cap in caps.items() if cap > caps[pipeline])
    hint = f"; only {', '.join(larger)} requests carry an image and may be larger" if larger else ""
    return Refused(413, "payload_too_large", f"a {pipeline} request's body is at most {caps[pipeline]:,} bytes; "
                                             f"this one is {size:,}{hint}")


def error_response(status: int, error: str, detail: str, field: str | None = None,
                   retry_after: int | None = None) -> JSONResponse:
    body = {"error": error, "detail": detail}
    if field:
        body["field"] = field
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return JSONResponse(body, status_code=status, headers=headers)


def openai_error_response(status: int, error: str, detail: str, field: str | None = None,
                          retry_after: int | None = None) -> JSONResponse:
    """OpenAI's error body ({"error": {message, type, param, code}}), so its clients raise their own typed errors."""
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return JSONResponse({"error": {"message": detail, "type": error, "param": field, "code": None}},
                        status_code=status, headers=headers)


def install_error_handlers(app: FastAPI, service: str, log: logging.Logger,
                           error_response: Callable[..., JSONResponse] = error_response) -> None:
    """Every refusal as the JSON error body: Refused, a bad field (400), an unknown route (404) or
    method (405), Redis down (503), and a bug (500 saying so, its traceback in the service's log).
    `error_response`: the body's shape (the house's; `openai_error_response` for OpenAI-compatible APIs)."""

    @app.exception_handler(Refused)
    async def _refused(_request: Request, exc: Refused):
        return error_response(exc.status, exc.error, exc.detail, field=exc.field, retry_after=exc.retry_after)

    @app.exception_handler(InvalidRequest)
    async def _invalid(_request: Request, exc: InvalidRequest):
        return error_response(400, "invalid_request", exc.message, field=exc.field)

    @app.exception_handler(RequestValidationError)  # FastAPI's own checks of a route's parameters
    async def _validation(_request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return error_response(400, "invalid_request", f"{field}: {first.get('msg', 'invalid')}", field=field)

    @app.exception_handler(StarletteHTTPException)  # an unknown path (404), a wrong method (405)
    async def _http(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404 and exc.detail == "Not Found":
            return error_response(404, "not_found", f"no route {request.url.path[:200]!r}; see the API's /docs")
        detail = exc.detail if isinstance(exc.detail, str) else "see the API's /docs"
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path[:200]}; see the API's /docs"
        return error_response(exc.status_code, "method_not_allowed" if exc.status_code == 405 else "http_error",
                              detail)

    @app.exception_handler(redis.RedisError)
    async def _redis_down(_request: Request, exc: redis.RedisError):
        log.warning("Redis error in the %s: %s", service, exc)
        return error_response(503, "unavailable", f"the {service}'s Redis is not answering; retry later",
                              retry_after=5)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.error("%s failed on %s %s: %s", service, request.method, request.url.path, exc, exc_info=exc)
        return error_response(500, "internal_error", f"the {service} failed on this request ({type(exc).__name__}); "
                                                     "this is a bug: its log has the traceback; please report it")


MAX_JSON_DEPTH = 8  # a request is two levels deep; deeper nesting is an attack on the parser


def decode_json(body: bytes):
    """The body as JSON, or InvalidRequest naming `body`: never an exception of the parser's own."""
    try:
        value = json.loads(body)
    except RecursionError:
        raise InvalidRequest("body", f"is nested too deeply; at most {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("body", "is not valid JSON") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise InvalidRequest("body", f"is nested too deeply; at most {MAX_JSON_DEPTH} levels")
    return value


def _depth(value, level: int = 1) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level
