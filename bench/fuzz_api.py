"""Fuzz the miner API: 10,000 malformed, odd and valid requests; count 5xx answers and dropped connections.

A real GPU worker and `seedgrid miner serve` (bench/_miner.py). Every request is signed
by a registered 1M-stake validator unless the case is about signatures, so the fuzz
reaches the parser and the admission rules, not just the 401. Cases, drawn from a
seeded generator: a valid request with one field replaced by a value of the wrong type
or range (None, lists, objects, huge numbers, NaN, Infinity, lone surrogates, long
text), raw bodies (truncated JSON, random bytes, invalid UTF-8, 1,000-deep nesting,
empty, oversized), wrong or missing Content-Type, unsigned or tampered requests, other
paths and methods. Valid requests do generate (1 step, 256 px) until the quota answers 429.

Prints the answers by status, the number of 5xx and of dropped connections (both must
be 0; the exit status says so), and the median latency of a fuzzed request as a ratio
to /healthz measured in the same run.
Run: .venv/bin/python bench/fuzz_api.py [--requests 10000] [--concurrency 8] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("SEEDGRID_NETUID", "93")  # its own subnet
os.environ.setdefault("SEEDGRID_TOTAL_VOLUME", "300")  # valid requests generate until the quota says 429
os.environ.setdefault("SEEDGRID_MAX_CONCURRENT_REQUESTS", "4")

from bench._miner import miner_under_test  # noqa: E402

BASE = {"model": "RealisticVision", "prompt": "a lighthouse at dusk", "seed": 1,
        "params": {"steps": 1, "width": 256, "height": 256}}
FIELDS = ["model", "prompt", "negative_prompt", "seed", "kind", "request_id", "params", "params.steps",
          "params.width", "params.height", "params.guidance", "params.scheduler", "params.num_frames", "params.fps",
          "extra", "params.extra"]


def odd_value(rng: random.Random):
    choices = [None, [], {}, [1, 2], {"a": {"b": 1}}, True, 0, -1, 2**64, -(2**63), 1e308, 0.5, "", "x" * 5000,
               "\ud800", "a\x00b", "RealisticVision", "dpmpp_2m", ["dpmpp_2m"], {"name": "euler"}, 512, 257,
               "512", float("nan"), float("inf"), "🦊" * 300, "inference", "challenge"]
    return rng.choice(choices)


def mutated(rng: random.Random) -> dict:
    body = json.loads(json.dumps(BASE))
    body["seed"] = rng.randrange(2**32)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        field = rng.choice(FIELDS)
        target, key = (body["params"], field[7:]) if field.startswith("params.") and isinstance(
            body.get("params"), dict) else (body, field)
        if rng.random() < 0.15:
            target.pop(key, None)
        else:
            target[key] = odd_value(rng)
    return body


def raw_body(rng: random.Random) -> bytes:
    good = json.dumps(BASE).encode()
    kind = rng.randrange(8)
    if kind == 0:
        return good[: rng.randrange(len(good))]
    if kind == 1:
        return os.urandom(rng.randrange(1, 400))
    if kind == 2:
        return b"\xff\xfe" + good
    if kind == 3:
        return b"[" * 1000 + b"]" * 1000
    if kind == 4:
        return b'{"model": ' * 500 + b"1" + b"}" * 500
    if kind == 5:
        return b""
    if kind == 6:
        return json.dumps({**BASE, "prompt": "x" * 70_000}).encode()
    return json.dumps({**BASE, "params": {"steps": 1, "width": 256, "height": 256, "guidance": "NaN"}}).encode() \
        .replace(b'"NaN"', b"NaN")


def case(rng: random.Random):
    """(method, path, body, how to sign) of one fuzzed request; signed when sent (signatures age)."""
    roll = rng.random()
    method, path = "POST", "/v1/generate"
    if roll < 0.55:
        body = json.dumps(mutated(rng), allow_nan=True).encode("utf-8", "surrogatepass")
    elif roll < 0.80:
        body = raw_body(rng)
    elif roll < 0.86:
        body = json.dumps({**BASE, "seed": rng.randrange(2**32)}).encode()  # valid
    elif roll < 0.92:
        method, path, body = "GET", "/v1/info", b""
    else:
        body = json.dumps(BASE).encode()
    extra = rng.random()
    how = ("content_type:" + rng.choice(["text/plain", "application/x-www-form-urlencoded", ""]) if extra < 0.04
           else "unsigned" if extra < 0.07 else "tampered" if extra < 0.09 else "signed")
    return method, path, body, how


def signed(wallet, hotkey: str, method: str, path: str, body: bytes, how: str) -> tuple[bytes, dict]:
    import bittensor as bt

    if how == "unsigned":
        return body, {"Content-Type": "application/json"}
    headers = bt.http_auth.sign(wallet, method=method, path=path, body=body, receiver_ss58=hotkey)
    headers["Content-Type"] = how.split(":", 1)[1] if how.startswith("content_type:") else "application/json"
    return (body + b" " if how == "tampered" else body), headers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    import httpx

    with miner_under_test("fuzz") as m:
        rng = random.Random(args.seed)
        cases = [case(rng) for _ in range(args.requests)]
        statuses: Counter = Counter()
        server_errors: list[str] = []
        dropped: list[str] = []
        latencies: list[float] = []
        lock = threading.Lock()
        local = threading.local()

        def send(c) -> None:
            method, path, body, how = c
            body, headers = signed(m.validator, m.hotkey, method, path, body, how)
            http = getattr(local, "http", None) or httpx.Client(timeout=120)
            local.http = http
            t0 = time.perf_counter()
            try:
                resp = http.request(method, m.url + path, content=body, headers=headers)
            except httpx.HTTPError as exc:
                with lock:
                    dropped.append(f"{type(exc).__name__}: {exc}"[:200])
                return
            with lock:
                latencies.append(time.perf_counter() - t0)
                statuses[resp.status_code] += 1
                if resp.status_code >= 500:
                    server_errors.append(f"{resp.status_code} {resp.text[:200]} <- {body[:120]!r}")

        health = []
        with httpx.Client(timeout=10) as http:
            for _ in range(200):
                t0 = time.perf_counter()
                http.get(m.url + "/healthz")
                health.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(send, cases))
        elapsed = time.perf_counter() - t0

    fuzz_ms, health_ms = statistics.median(latencies) * 1000, statistics.median(health) * 1000
    print(f"{args.requests} requests at concurrency {args.concurrency} in {elapsed:.0f} s "
          f"({args.requests / elapsed:.0f} req/s), seed {args.seed}")
    print("answers by status: " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())))
    print(f"5xx: {len(server_errors)}   dropped connections: {len(dropped)}")
    print(f"median latency: fuzzed request {fuzz_ms:.1f} ms | /healthz {health_ms:.1f} ms | "
          f"ratio {fuzz_ms / health_ms:.1f}")
    for line in (server_errors + dropped)[:10]:
        print("  " + line)
    return 1 if server_errors or dropped else 0


if __name__ == "__main__":
    sys.exit(main())
