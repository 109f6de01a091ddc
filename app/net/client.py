"""The signed client validators use to call miners (httpx + btauth/1)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx


class MinerError(RuntimeError):
    """A miner answered with an error status (or not at all)."""

    def __init__(self, status: int, error: str, detail: str, field: str | None = None,
                 retry_after: float | None = None):
        self.status, self.error, self.detail, self.field, self.retry_after = status, error, detail, field, retry_after
        super().__init__(f"{status} {error}: {detail}" + (f" (field {field})" if field else ""))


@dataclass
class MinerClient:
    """Signs every request with the wallet's hotkey, bound to the receiving miner's hotkey."""

    wallet: Any  # a bittensor Wallet (or any signer bittensor.http_auth.sign accepts)
    timeout: float = 30.0

    def __post_init__(self):
        self._http = httpx.Client(timeout=self.timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "MinerClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def signed_headers(self, method: str, path: str, body: bytes, miner_hotkey: str) -> dict[str, str]:
        import bittensor as bt

        headers = bt.http_auth.sign(self.wallet, method=method, path=path, body=body, receiver_ss58=miner_hotkey)
        return {**headers, "Content-Type": "application/json"}

    def request(self, method: str, base_url: str, path: str, miner_hotkey: str, payload: Any = None,
                timeout: float | None = None) -> dict:
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        headers = self.signed_headers(method, path, body, miner_hotkey)
        try:
            resp = self._http.request(method, base_url.rstrip("/") + path, content=body, headers=headers,
                                      timeout=timeout or self.timeout)
        except httpx.TimeoutException:
            raise MinerError(0, "client_timeout", f"{base_url} did not answer within {timeout or self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise MinerError(0, "unreachable", f"{base_url}: {exc}") from None
        if resp.status_code >= 400:
            try:
                err = resp.json()
            except ValueError:
                err = {"error": "http_error", "detail": resp.text[:500]}
            retry = resp.headers.get("Retry-After")
            raise MinerError(resp.status_code, err.get("error", "http_error"), err.get("detail", ""), err.get("field"),
                             float(retry) if retry else None)
        return resp.json()

    def generate(self, base_url: str, miner_hotkey: str, request: dict, timeout: float | None = None) -> dict:
        return self.request("POST", base_url, "/v1/generate", miner_hotkey, request, timeout)

    def info(self, base_url: str, miner_hotkey: str) -> dict:
        return self.request("GET", base_url, "/v1/info", miner_hotkey)
