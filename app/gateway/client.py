"""A small Python client of the gateway's job API (what `seedgrid submit` uses).

    client = GatewayClient("http://127.0.0.1:8100", key)
    job = client.submit({"model": "RealisticVision", "prompt": "a red circle"})
    for event in client.events(job["id"]):
        print(event["status"])
    data = client.result(job["id"])
"""

from __future__ import annotations

import json
from typing import Iterator

import httpx


class GatewayError(RuntimeError):
    """The gateway refused a call: the HTTP status and its {error, detail, field} body."""

    def __init__(self, status: int, body: dict):
        self.status, self.body = status, body
        field = f" ({body['field']})" if body.get("field") else ""
        super().__init__(f"{status} {body.get('error', 'error')}{field}: {body.get('detail', '')}")


class GatewayClient:
    def __init__(self, url: str, key: str, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout)

    def _check(self, r: httpx.Response) -> httpx.Response:
        if r.status_code >= 400:
            try:
                body = r.json()
            except ValueError:
                body = {"error": "http_error", "detail": r.text[:500]}
            raise GatewayError(r.status_code, body if isinstance(body, dict) else {"detail": str(body)})
        return r

    def submit(self, request: dict, *, wait: float = 0, idempotency_key: str | None = None) -> dict:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        params = {"wait": wait} if wait else {}
        return self._check(self.http.post("/v1/jobs", json=request, params=params, headers=headers,
                                          timeout=self.http.timeout.read + wait)).json()

    def job(self, job_id: str) -> dict:
        return self._check(self.http.get(f"/v1/jobs/{job_id}")).json()

    def cancel(self, job_id: str) -> dict:
        return self._check(self.http.delete(f"/v1/jobs/{job_id}")).json()

    def result(self, job_id: str) -> bytes:
        return self._check(self.http.get(f"/v1/jobs/{job_id}/result")).content

    def models(self) -> list[dict]:
        return self._check(self.http.get("/v1/models")).json()["data"]

    def events(self, job_id: str, timeout: float = 600.0) -> Iterator[dict]:
        """Each status change of the job, in order, until it has finished and its verdict (if sampled) settled."""
        with self.http.stream("GET", f"/v1/jobs/{job_id}/events", timeout=timeout) as r:
            if r.status_code >= 400:
                r.read()
                self._check(r)
            data = []
            for line in r.iter_lines():
                if line.startswith("data:"):
                    data.append(line[5:].strip())
                elif not line and data:
                    yield json.loads("\n".join(data))
                    data = []

    def close(self) -> None:
        self.http.close()
