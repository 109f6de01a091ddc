"""Calls on a test gateway: `grid` is a test module's fixture dict with its url and an API key."""

import time

import httpx


def api(grid, key=None):
    return httpx.Client(base_url=grid["url"], headers={"Authorization": f"Bearer {key or grid['key']}"}, timeout=90)


def wait_verdict(grid, job_id, timeout=120):
    deadline = time.monotonic() + timeout
    with api(grid) as c:
        while time.monotonic() < deadline:
            body = c.get(f"/v1/jobs/{job_id}").json()
            if body["verification"]["verdict"] not in (None, "pending"):
                return body
            time.sleep(0.5)
    raise AssertionError(f"no verdict for {job_id}: {body}")
