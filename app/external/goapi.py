"""A GoAPI-style Midjourney adapter: POST /mj/v2/imagine (X-API-KEY) and POST /mj/v2/fetch.

imagine {prompt, process_mode} -> {task_id, status: "success"} or {status: "failed", message};
fetch {task_id} -> {task_id, status, process_mode, meta: {task_request: {prompt}},
task_result: {image_url, error_messages}}. Fetching needs no key, as GoAPI's v2 API, so a
validator can read any miner's task. Every failure is a ProviderError saying what the
provider did; a malformed answer is one too, never a KeyError.
"""

from __future__ import annotations

from typing import Any

import httpx

from app.external.provider import TASK_STATES, ProviderError, ProviderTask
from app.protocol.external import MODE_FACTORS


class GoApiProvider:
    def __init__(self, base_url: str, api_key: str | None, *, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.http = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _post(self, path: str, body: dict, headers: dict | None = None) -> dict:
        try:
            r = self.http.post(self.base_url + path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise ProviderError(f"the provider at {self.base_url} did not answer {path}: {type(exc).__name__}") \
                from None
        try:
            data = r.json()
        except ValueError:
            data = None
        if r.status_code != 200 or not isinstance(data, dict):
            why = data.get("message") if isinstance(data, dict) else r.text[:200]
            raise ProviderError(f"the provider answered {path} with {r.status_code}: {why}", r.status_code)
        return data

    def submit(self, prompt: str, mode: str) -> str:
        if not self.api_key:
            raise ProviderError("no provider API key: set SEEDGRID_GOJOURNEY_API_KEY")
        data = self._post("/mj/v2/imagine", {"prompt": prompt, "process_mode": mode}, {"X-API-KEY": self.api_key})
        task_id = data.get("task_id")
        if data.get("status") != "success" or not isinstance(task_id, str) or not task_id:
            raise ProviderError(f"the provider did not take the task: {str(data.get('message'))[:200]}")
        return task_id

    def fetch(self, task_id: str) -> ProviderTask | None:
        try:
            data = self._post("/mj/v2/fetch", {"task_id": task_id})
        except ProviderError as exc:
            if exc.status == 404:
                return None
            raise
        return parse_task(data, task_id)

    def download(self, url: str, max_bytes: int) -> bytes:
        try:
            with self.http.stream("GET", url) as r:
                if r.status_code != 200:
                    raise ProviderError(f"the provider's image {url} answered {r.status_code}", r.status_code)
                out = bytearray()
                for chunk in r.iter_bytes():
                    out += chunk
                    if len(out) > max_bytes:
                        raise ProviderError(f"the provider's image {url} is over {max_bytes:,} bytes")
                return bytes(out)
        except httpx.HTTPError as exc:
            raise ProviderError(f"the provider's image {url} did not download: {type(exc).__name__}") from None


def _get(data: Any, *path: str) -> Any:
    for name in path:
        data = data.get(name) if isinstance(data, dict) else None
    return data


def parse_task(data: dict, task_id: str) -> ProviderTask:
    status, mode, prompt = data.get("status"), data.get("process_mode"), _get(data, "meta", "task_request", "prompt")
    if data.get("task_id") != task_id or status not in TASK_STATES or mode not in MODE_FACTORS \
            or not isinstance(prompt, str):
        raise ProviderError(f"the provider's answer for task {task_id} is not a task (status {str(status)[:40]!r})")
    url = _get(data, "task_result", "image_url")
    errors = _get(data, "task_result", "error_messages")
    return ProviderTask(task_id, status, prompt, mode, url if isinstance(url, str) and url else None,
                        "; ".join(map(str, errors)) if isinstance(errors, list) and errors else None)
