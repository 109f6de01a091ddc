"""The signed client validators use to call miners (httpx + btauth/1).

A miner is untrusted: every call has one total deadline (connect, headers and body
together, not a timeout per read, so a trickling reply cannot hold a worker), a cap on
the reply's size enforced while it streams (an oversized reply is dropped at the cap,
never buffered whole), and a JSON body that must be an object. Anything else is a
`MinerError`, so the caller can always record an outcome.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import httpx

DEFAULT_MAX_REPLY = 256 * 1024  # /v1/info and error bodies are small


class MinerError(RuntimeError):
    """A miner answered with an error status, an unusable reply, or not at all (status 0)."""

    def __init__(self, status: int, error: str, detail: str, field: str | None = None,
                 retry_after: float | None = None):
        self.status, self.error, self.detail, self.field, self.retry_after = status, error, detail, field, retry_after
        super().__init__(f"{status} {error}: {detail}" + (f" (field {field})" if field else ""))

    @property
    def timed_out(self) -> bool:
        return self.error in ("client_timeout", "timeout")


def printable(text: str, limit: int = 500) -> str:
    """Untrusted text made safe to store and log: cut to `limit`, control characters and lone
    surrogates escaped (PostgreSQL refuses NUL in text, and UTF-8 cannot encode a surrogate)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])


def _text(value: Any, limit: int = 500) -> str | None:
    return printable(value, limit) if isinstance(value, str) else None


def _retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds < 86400 else None


def error_from(status: int, body: bytes, retry_after: str | None) -> MinerError:
    """An error reply of any shape: JSON {error, detail, field} when it is that, else its text."""
    try:
        err = json.loads(body)
    except (ValueError, RecursionError):
        err = None
    if not isinstance(err, dict):
        return MinerError(status, "http_error", printable(body[:500].decode("utf-8", "replace")), None,
                          _retry_after(retry_after))
    return MinerError(status, _text(err.get("error"), 100) or "http_error", _text(err.get("detail")) or "",
                      _text(err.get("field"), 100), _retry_after(retry_after))


@dataclass
class MinerClient:
    """Signs every request with the wallet's hotkey, bound to the receiving miner's hotkey."""

    wallet: Any  # a bittensor Wallet (or any signer bittensor.http_auth.sign accepts)
    timeout: float = 30.0  # the total deadline of one call unless the call gives its own

    def close(self) -> None:  # each call owns its connection; kept for the context-manager API
        pass

    def __enter__(self) -> "MinerClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @cached_property
    def _signer(self):
        """The hotkey resolved once: signing with the wallet itself reads and decodes its keyfile on
        every call (1.8 ms against 0.09 ms here); a changed hotkey takes a restart, as for a miner."""
        import bittensor as bt

        return bt.resolve_signer(self.wallet, role="hotkey")

    def signed_headers(self, method: str, path: str, body: bytes, miner_hotkey: str) -> dict[str, str]:
        import bittensor as bt

        headers = bt.http_auth.sign(self._signer, method=method, path=path, body=body, receiver_ss58=miner_hotkey)
        return {**headers, "Content-Type": "application/json"}

    def request(self, method: str, base_url: str, path: str, miner_hotkey: str, payload: Any = None,
                timeout: float | None = None, max_bytes: int = DEFAULT_MAX_REPLY) -> dict:
        """One signed call; the decoded JSON object, or MinerError. Never longer than `timeout` in all."""
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        headers = self.signed_headers(method, path, body, miner_hotkey)
        deadline = timeout or self.timeout
        url = base_url.rstrip("/") + path
        try:
            status, data, retry = asyncio.run(_fetch(method, url, body, headers, deadline, max_bytes))
        except TimeoutError:
            raise MinerError(0, "client_timeout", f"{base_url} did not answer in full within {deadline:g} s") from None
        except httpx.HTTPError as exc:
            raise MinerError(0, "unreachable", f"{base_url}: {type(exc).__name__}: {exc}"[:500]) from None
        if status >= 400:
            raise error_from(status, data, retry)
        if status != 200:
            raise MinerError(status, "unexpected_status", f"expected 200, got {status}")
        try:
            answer = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise MinerError(status, "malformed_answer", f"the body is not JSON ({type(exc).__name__})") from None
        if not isinstance(answer, dict):
            raise MinerError(status, "malformed_answer", f"the body is a JSON {type(answer).__name__}, not an object")
        return answer

    def generate(self, base_url: str, miner_hotkey: str, request: dict, timeout: float | None = None,
                 max_bytes: int | None = None) -> dict:
        """POST /v1/generate; the reply may be as large as the largest valid output for this request."""
        return self.request("POST", base_url, "/v1/generate", miner_hotkey, request, timeout,
                            max_bytes or max_reply_bytes(request))

    def info(self, base_url: str, miner_hotkey: str, timeout: float | None = None) -> dict:
        return self.request("GET", base_url, "/v1/info", miner_hotkey, timeout=timeout)


def max_reply_bytes(request: dict) -> int:
    """The reply cap for a request: its model's largest valid output at the requested sizes, plus margin."""
    from app.protocol.catalogue import CATALOGUE, Payload

    spec = CATALOGUE.get(request.get("model")) if isinstance(request, dict) else None
    if spec is not None and spec.payload is Payload.CHAT and spec.text is not None:
        # per token: its id, logprob and top-k pairs in JSON, and its text; generous for any tokenizer
        return spec.text.max_tokens * (spec.text.max_top_logprobs + 2) * 48 + 64 * 1024
    if spec is None or spec.payload is not Payload.DIFFUSION:
        return max(s.max_reply_bytes() for s in CATALOGUE.values() if s.payload is Payload.DIFFUSION)
    params = request.get("params") if isinstance(request.get("params"), dict) else {}
    size = lambda v: v if isinstance(v, int) and 0 < v <= spec.bounds.max_size else None  # noqa: E731
    frames = params.get("num_frames")
    return spec.max_reply_bytes(size(params.get("width")) or spec.width, size(params.get("height")) or spec.height,
                                frames if isinstance(frames, int) and 0 < frames <= spec.bounds.max_frames
                                else spec.num_frames)


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    """One TLS context per process: building one loads the CA bundle, ~25 ms that every call
    paid when each made its own (an httpx client's default). Miners' axons are plain HTTP;
    an https:// miner still gets certificate verification."""
    return ssl.create_default_context()


async def _fetch(method: str, url: str, body: bytes, headers: dict, deadline: float,
                 max_bytes: int) -> tuple[int, bytes, str | None]:
    """Status, body and Retry-After, all within `deadline` seconds; the body stops at `max_bytes`."""
    async with asyncio.timeout(deadline):
        async with httpx.AsyncClient(timeout=httpx.Timeout(deadline), verify=_tls()) as http:
            async with http.stream(method, url, content=body, headers={**headers, "Accept-Encoding": "identity"}) as resp:
                if resp.headers.get("content-encoding", "identity") != "identity":  # no decompression bombs
                    raise MinerError(resp.status_code, "malformed_answer",
                                     f"Content-Encoding {resp.headers['content-encoding'][:40]!r}; only identity is accepted")
                declared = resp.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise MinerError(resp.status_code, "reply_too_large",
                                     f"declared {int(declared):,} bytes; the limit is {max_bytes:,}")
                chunks, size = [], 0
                async for chunk in resp.aiter_raw():
                    size += len(chunk)
                    if size > max_bytes:
                        raise MinerError(resp.status_code, "reply_too_large",
                                         f"more than {max_bytes:,} bytes; the limit is {max_bytes:,}")
                    chunks.append(chunk)
                return resp.status_code, b"".join(chunks), resp.headers.get("retry-after")
