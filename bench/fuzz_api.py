"""Fuzz the miner API and the gateway: 10,000 malformed, odd and valid requests each; count 5xx and dropped connections.

Miner API (--api miner): a real GPU worker and `seedgrid miner serve` (bench/_miner.py). Every request is signed
by a registered 1M-stake validator unless the case is about signatures, so the fuzz
reaches the parser and the admission rules, not just the 401. Cases, drawn from a
seeded generator: a valid request with one field replaced by a value of the wrong type
or range (None, lists, objects, huge numbers, NaN, Infinity, lone surrogates, long
text), raw bodies (truncated JSON, random bytes, invalid UTF-8, 1,000-deep nesting,
empty, oversized), wrong or missing Content-Type, unsigned or tampered requests, other
paths and methods. Valid requests do generate (1 step, 256 px) until the quota answers 429.

Gateway (--api gateway): that miner behind the validator's I/O worker and `seedgrid gateway
serve` (bench/_gateway.py). Most requests carry a valid API key; the rest none, another
scheme, an unknown or an absurd one. Cases: job bodies with a field replaced (the same odd
values), raw bodies, valid jobs (some with ?wait=1), OpenAI image bodies with odd n, size
and response_format, OpenAI image-edit uploads (multipart: odd fields, odd or extra files, a
mask, a body cut short or with a wrong boundary), odd ?wait= values and Idempotency-Keys, job ids that are not ours or
not ids at all on every job route, /v1/models, and other paths and methods.

Text (--api text): a text miner (`seedgrid miner serve --model Gemma7b`) over `seedgrid llm
serve` (bench/_llm.py): signed text requests with a field replaced (messages, params, seed...),
raw bodies, valid requests, an image request, unsigned or tampered ones; then the text server
itself: chat and completion bodies with odd fields, raw bodies, /tokenize and /detokenize
with odd values, other paths and methods.

Prints the answers by status, the number of 5xx and of dropped connections (both must
be 0; the exit status says so), and the median latency of a fuzzed request as a ratio
to /healthz measured in the same run.
Run: .venv/bin/python bench/fuzz_api.py [--api miner,gateway,text] [--requests 10000] [--concurrency 8] [--seed 1]
"""

from __future__ import annotations

import argparse
import base64
import io
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

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("SEEDGRID_NETUID", "93")  # its own subnet
# The miner API's fuzz: valid requests generate until the quota says 429. The gateway's:
# a volume that lasts the run, or its miners' 429s would fail the valid jobs it routes.
VOLUME = {"miner": os.environ.get("SEEDGRID_TOTAL_VOLUME", "300"),
          "gateway": os.environ.get("SEEDGRID_TOTAL_VOLUME", "1000000")}
os.environ.setdefault("SEEDGRID_MAX_CONCURRENT_REQUESTS", "4")

from bench._gateway import gateway_under_test  # noqa: E402  (its tier table lasts the run)
from bench._llm import text_miner_under_test  # noqa: E402
from bench._miner import miner_under_test  # noqa: E402

BASE = {"model": "RealisticVision", "prompt": "a lighthouse at dusk", "seed": 1,
        "params": {"steps": 1, "width": 256, "height": 256}}
FIELDS = ["model", "prompt", "negative_prompt", "seed", "kind", "request_id", "params", "params.steps",
          "params.width", "params.height", "params.guidance", "params.scheduler", "params.num_frames", "params.fps",
          "extra", "params.extra"]


def _png(side: int) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (90, 40, 200)).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


TINY = _png(64)  # a valid conditioning image
# Image-conditioned bodies (issue 11) and their fields, mutated like the others.
CONDITIONED = [{**BASE, "params": {"steps": 2, "width": 256, "height": 256}, "pipeline": "img2img",
                "init_image": TINY, "strength": 0.75},
               {**BASE, "pipeline": "controlnet", "control": {"type": "canny", "image": TINY}}]
CONDITIONED_FIELDS = ["pipeline", "init_image", "strength", "control", "control.type", "control.image",
                      "control.conditioning_scale", "control.guidance_start", "control.guidance_end", "control.extra"]
ODD_IMAGES = ["@@", "", base64.b64encode(os.urandom(300)).decode(), TINY[: len(TINY) // 2], TINY + "=",
              base64.b64encode(b"GIF89a" + os.urandom(64)).decode(), "data:image/png;base64," + TINY]


def odd_value(rng: random.Random):
    if rng.random() < 0.1:
        return rng.choice(ODD_IMAGES)
    choices = [None, [], {}, [1, 2], {"a": {"b": 1}}, True, 0, -1, 2**64, -(2**63), 1e308, 0.5, "", "x" * 5000,
               "\ud800", "a\x00b", "RealisticVision", "dpmpp_2m", ["dpmpp_2m"], {"name": "euler"}, 512, 257,
               "512", float("nan"), float("inf"), "🦊" * 300, "inference", "challenge"]
    return rng.choice(choices)


def mutated(rng: random.Random, base: dict = BASE, fields: list[str] = FIELDS) -> dict:
    body = json.loads(json.dumps(base))
    body["seed"] = rng.randrange(2**32)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        field = rng.choice(fields)
        outer, _, inner = field.partition(".")
        target, key = (body[outer], inner) if inner and isinstance(body.get(outer), dict) else (body, field)
        if rng.random() < 0.15:
            target.pop(key, None)
        else:
            target[key] = odd_value(rng)
    return body


def raw_body(rng: random.Random, base: dict = BASE) -> bytes:
    good = json.dumps(base).encode()
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
        return json.dumps({**base, "prompt": "x" * 70_000}).encode()
    return json.dumps({**base, "params": {"steps": 1, "width": 256, "height": 256, "guidance": "NaN"}}).encode() \
        .replace(b'"NaN"', b"NaN")


def case(rng: random.Random):
    """(method, path, body, how to sign) of one fuzzed request; signed when sent (signatures age)."""
    roll = rng.random()
    method, path = "POST", "/v1/generate"
    if roll < 0.40:
        body = json.dumps(mutated(rng), allow_nan=True).encode("utf-8", "surrogatepass")
    elif roll < 0.55:
        body = json.dumps(mutated(rng, rng.choice(CONDITIONED), FIELDS + CONDITIONED_FIELDS),
                          allow_nan=True).encode("utf-8", "surrogatepass")
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


GATEWAY_FIELDS = ["model", "prompt", "negative_prompt", "seed", "kind", "request_id", "params", "params.steps",
                  "params.width", "params.height", "params.guidance", "params.scheduler", "extra"]
OPENAI = {"model": "RealisticVision", "prompt": "a lighthouse at dusk", "size": "256x256", "n": 1,
          "response_format": "b64_json"}
ODD_IDS = ["0" * 32, "x", "a" * 300, "%00", "..%2F..%2Fetc", "été", "1 OR 1=1", "job_" + "f" * 32]


EDIT_FIELDS = ["prompt", "model", "n", "size", "response_format", "strength", "seed", "stream", "quality", "image"]


def edit_body(rng: random.Random) -> tuple[bytes, dict]:
    """A fuzzed /v1/images/edits upload (multipart/form-data, as the openai package sends it): odd form
    values, odd or missing or extra files (a mask, two images), then at times the body mangled."""
    import httpx

    fields = {"prompt": "a lighthouse at dusk", "model": "RealisticVision", "size": "256x256", "strength": "0.5"}
    for _ in range(rng.choice((1, 2, 2))):  # mostly invalid: a valid one waits for its image
        value = odd_value(rng)
        fields[rng.choice(EDIT_FIELDS)] = str(value).encode("utf-8", "surrogatepass")[:3000]
    image = base64.b64decode(TINY) if rng.random() < 0.7 else os.urandom(rng.randrange(0, 400))
    files = rng.choice([[("image", ("start.png", image, "image/png"))]] * 4 + [
        [], [("image[]", ("a.png", image)), ("image[]", ("b.png", image))],
        [("image", ("start.png", image)), ("mask", ("mask.png", image))], [("prompt", ("p.txt", b"a file prompt"))]])
    if isinstance(fields.get("image"), bytes):  # a text field named image, beside or instead of the file
        files = [f for f in files if f[0] != "image"] if rng.random() < 0.5 else files
    request = httpx.Request("POST", "http://gateway/v1/images/edits", data=fields, files=files or {"x": b""})
    body, content_type = request.read(), request.headers["Content-Type"]
    kind = rng.randrange(10)
    if kind == 0:
        body = body[: rng.randrange(len(body))]  # cut short
    elif kind == 1:
        content_type = "multipart/form-data; boundary=" + rng.choice(["", "x" * 200, "\"", "wrong"])
    elif kind == 2:
        content_type = "multipart/form-data"  # no boundary at all
    elif kind == 3:
        body = os.urandom(rng.randrange(1, 2000))
    return body, {"Content-Type": content_type}


def gateway_case(rng: random.Random):
    """(method, path, body, headers) of one fuzzed gateway request; `auth` in headers is replaced when sent."""
    roll = rng.random()
    base = {k: v for k, v in BASE.items() if k != "seed"}
    method, path, headers = "POST", "/v1/jobs", {"Content-Type": "application/json"}
    if roll < 0.30:
        body = json.dumps(mutated(rng, base, GATEWAY_FIELDS), allow_nan=True).encode("utf-8", "surrogatepass")
    elif roll < 0.40:
        conditioned = {k: v for k, v in rng.choice(CONDITIONED).items() if k != "seed"}
        body = json.dumps(mutated(rng, conditioned, GATEWAY_FIELDS + CONDITIONED_FIELDS),
                          allow_nan=True).encode("utf-8", "surrogatepass")
    elif roll < 0.58:
        body = raw_body(rng, base)
    elif roll < 0.62:  # valid: a job runs (2%: what one CPU miner serves at this request rate)
        body = json.dumps({**base, "seed": rng.randrange(2**32)}).encode()
        path += rng.choice(["", "", "?wait=1"])
    elif roll < 0.68:
        path, body, headers = "/v1/images/edits", *edit_body(rng)
    elif roll < 0.72:
        openai_body = dict(OPENAI)
        for _ in range(rng.choice((1, 2, 2))):  # mostly invalid: a valid one waits for its images
            field = rng.choice(["prompt", "model", "n", "size", "response_format", "quality"])
            openai_body[field] = rng.choice([odd_value(rng), rng.choice(["64x64", "256x256", "1x1", "abc", "auto"]),
                                             rng.choice([0, 1, 5, -1, 2.5])])
        path, body = "/v1/images/generations", json.dumps(openai_body, allow_nan=True).encode("utf-8", "surrogatepass")
    elif roll < 0.82:
        job = rng.choice(ODD_IDS)
        method, path, body = rng.choice([("GET", f"/v1/jobs/{job}", b""), ("GET", f"/v1/jobs/{job}/result", b""),
                                         ("DELETE", f"/v1/jobs/{job}", b""), ("GET", f"/v1/jobs/{job}/events", b""),
                                         ("GET", f"/v1/jobs/{job}/result?token={job}", b"")])
    elif roll < 0.86:
        method, path, body = "GET", "/v1/models", b""
    elif roll < 0.93:
        path += "?wait=" + rng.choice(["-1", "abc", "1e9", "nan", "inf", "", "0", "%00"])
        body = json.dumps(base).encode()
    else:
        method, path, body = rng.choice([("PUT", "/v1/jobs", b"{}"), ("GET", "/v1/jobs", b""), ("POST", "/", b""),
                                         ("GET", "/v1/" + "a" * 2000, b""), ("PATCH", "/v1/models", b"[]")])
    if rng.random() < 0.05:
        headers["Idempotency-Key"] = rng.choice(["k", "x" * 300, "", "key-" + str(rng.randrange(5))])
    if rng.random() < 0.04:
        headers["Content-Type"] = rng.choice(["text/plain", "application/x-www-form-urlencoded", ""])
    headers["auth"] = rng.choice(["key"] * 17 + ["none", "basic", "unknown"])
    return method, path, body, headers


TEXT_BASE = {"model": "Gemma7b", "messages": [{"role": "user", "content": "What colour is the sky in Kenun?"}],
             "seed": 1, "params": {"max_tokens": 16, "temperature": 0.7, "top_p": 0.95, "top_logprobs": 5}}
TEXT_FIELDS = ["model", "messages", "messages.0", "seed", "kind", "request_id", "params", "params.max_tokens",
               "params.temperature", "params.top_p", "params.top_logprobs", "extra", "params.extra"]
CHAT = {"model": "Gemma7b", "messages": [{"role": "user", "content": "Describe Kenun."}], "max_tokens": 8,
        "temperature": 0.7, "seed": 3, "logprobs": True, "top_logprobs": 3}
CHAT_FIELDS = ["model", "messages", "messages.0", "max_tokens", "max_completion_tokens", "temperature", "top_p",
               "seed", "logprobs", "top_logprobs", "n", "stop", "stream", "return_tokens_as_token_ids", "user"]
COMPLETION = {"model": "Gemma7b", "prompt": "The sky in Kenun", "max_tokens": 8, "seed": 1, "logprobs": 3}
COMPLETION_FIELDS = ["model", "prompt", "max_tokens", "temperature", "top_p", "seed", "logprobs", "echo", "n", "stream",
                     "return_tokens_as_token_ids", "best_of"]


def mutated_list(rng: random.Random, base: dict, fields: list[str]) -> dict:
    """`mutated`, where a field may also name a list's first item ("messages.0")."""
    body = json.loads(json.dumps(base))
    for _ in range(rng.choice((1, 1, 2))):
        field = rng.choice(fields)
        outer, _, inner = field.partition(".")
        target = body.get(outer)
        if inner.isdigit() and isinstance(target, list) and target:
            target[0] = odd_value(rng) if rng.random() < 0.5 else {"role": odd_value(rng), "content": odd_value(rng)}
        elif inner and isinstance(target, dict):
            target[inner] = odd_value(rng)
        elif rng.random() < 0.15:
            body.pop(field, None)
        else:
            body[field] = odd_value(rng)
    return body


def text_miner_case(rng: random.Random):
    """(method, path, body, how to sign) against a text miner's API: as `case`, on text bodies."""
    roll = rng.random()
    method, path = "POST", "/v1/generate"
    if roll < 0.5:
        body = json.dumps(mutated_list(rng, TEXT_BASE, TEXT_FIELDS), allow_nan=True).encode("utf-8", "surrogatepass")
    elif roll < 0.75:
        body = raw_body(rng, TEXT_BASE)
    elif roll < 0.82:
        body = json.dumps({**TEXT_BASE, "seed": rng.randrange(2**32)}).encode()  # valid
    elif roll < 0.88:
        method, path, body = "GET", "/v1/info", b""
    else:
        body = json.dumps(BASE).encode()  # an image request to a text miner
    extra = rng.random()
    how = ("content_type:text/plain" if extra < 0.04 else "unsigned" if extra < 0.07
           else "tampered" if extra < 0.09 else "signed")
    return method, path, body, how


def text_server_case(rng: random.Random):
    """(method, path, body, headers) against `seedgrid llm serve`: OpenAI bodies with odd fields, raw bodies,
    /tokenize and /detokenize, other paths."""
    roll = rng.random()
    headers = {"Content-Type": "application/json"}
    if roll < 0.35:
        method, path = "POST", "/v1/chat/completions"
        body = json.dumps(mutated_list(rng, CHAT, CHAT_FIELDS), allow_nan=True).encode("utf-8", "surrogatepass")
    elif roll < 0.60:
        method, path = "POST", "/v1/completions"
        body = json.dumps(mutated_list(rng, COMPLETION, COMPLETION_FIELDS), allow_nan=True) \
            .encode("utf-8", "surrogatepass")
    elif roll < 0.72:
        method, path = "POST", rng.choice(["/v1/chat/completions", "/v1/completions", "/tokenize", "/detokenize"])
        body = raw_body(rng, CHAT)
    elif roll < 0.84:
        method, path = "POST", rng.choice(["/tokenize", "/detokenize"])
        body = json.dumps(rng.choice([{"model": "Gemma7b", "prompt": odd_value(rng)},
                                      {"model": "Gemma7b", "messages": odd_value(rng)},
                                      {"model": "Gemma7b", "tokens": rng.choice([[1, 2], [-1], [10**9], "x", [1.5]])},
                                      {"model": "Gemma7b", "prompt": "x", "add_special_tokens": odd_value(rng)}]),
                          allow_nan=True).encode("utf-8", "surrogatepass")
    elif roll < 0.90:
        method, path, body = "POST", "/v1/chat/completions", json.dumps({**CHAT, "seed": rng.randrange(2**32)}).encode()
    else:
        method, path, body = rng.choice([("GET", "/v1/models", b""), ("GET", "/health", b""), ("PUT", "/v1/models", b""),
                                         ("GET", "/v1/" + "a" * 2000, b""), ("POST", "/", b"{}")])
    if rng.random() < 0.04:
        headers["Content-Type"] = rng.choice(["text/plain", ""])
    return method, path, body, headers


def signing(wallet, hotkey: str):
    """A miner case (method, path, body, how) -> (method, path, body, headers), signed as it is sent."""
    def prepare(c):
        method, path, body, how = c
        body, headers = signed(wallet, hotkey, method, path, body, how)
        return method, path, body, headers

    return prepare


def gateway_auth(key: str, headers: dict) -> dict:
    how = headers.pop("auth")
    value = {"key": f"Bearer {key}", "basic": "Basic YTpi", "unknown": "Bearer sg_" + "A" * 32}.get(how)
    return {**headers, "Authorization": value} if value else headers


def run(cases: list, target: str, prepare, concurrency: int, api: str) -> dict:
    """Send every case (prepare(case) -> (method, path, body, headers)); statuses, 5xx, drops, latencies."""
    import httpx

    from app.progress import steps

    statuses: Counter = Counter()
    out = {"statuses": statuses, "server_errors": [], "dropped": [], "latencies": []}
    lock = threading.Lock()
    local = threading.local()

    def send(c) -> None:
        with lock:
            step(f"{api}: at concurrency {concurrency}")
        method, path, body, headers = prepare(c)
        http = getattr(local, "http", None) or httpx.Client(timeout=180)
        local.http = http
        t0 = time.perf_counter()
        try:
            resp = http.request(method, target + path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            with lock:
                out["dropped"].append(f"{type(exc).__name__}: {exc} <- {method} {path[:60]}"[:200])
            return
        with lock:
            out["latencies"].append(time.perf_counter() - t0)
            statuses[resp.status_code] += 1
            if resp.status_code >= 500:
                out["server_errors"].append(f"{resp.status_code} {resp.text[:200]} <- {method} {path[:60]} "
                                            f"{body[:120]!r}")

    health = []
    with httpx.Client(timeout=10) as http:
        for _ in range(200):
            t0 = time.perf_counter()
            http.get(target + "/healthz")
            health.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool, steps(len(cases), f"{api}: {len(cases)} requests sent") as step:
        list(pool.map(send, cases))
    out["elapsed"], out["health"] = time.perf_counter() - t0, health
    return out


def report(api: str, n: int, concurrency: int, seed: int, out: dict) -> bool:
    fuzz_ms, health_ms = statistics.median(out["latencies"]) * 1000, statistics.median(out["health"]) * 1000
    print(f"{api}: {n} requests at concurrency {concurrency} in {out['elapsed']:.0f} s "
          f"({n / out['elapsed']:.0f} req/s), seed {seed}")
    print("  answers by status: " + ", ".join(f"{k}: {v}" for k, v in sorted(out["statuses"].items())))
    print(f"  5xx: {len(out['server_errors'])}   dropped connections: {len(out['dropped'])}")
    print(f"  median latency: fuzzed request {fuzz_ms:.1f} ms | /healthz {health_ms:.1f} ms | "
          f"ratio {fuzz_ms / health_ms:.1f}")
    for line in (out["server_errors"] + out["dropped"])[:10]:
        print("    " + line)
    return not out["server_errors"] and not out["dropped"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", default="miner,gateway,text",
                        help="miner, gateway, text (a text miner's API and its dev text server), comma-separated")
    parser.add_argument("--requests", type=int, default=10_000, help="per API")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    apis = [a.strip() for a in args.api.split(",") if a.strip()]
    if not apis or set(apis) - {"miner", "gateway", "text"}:
        parser.error(f"--api takes miner, gateway and/or text, got {args.api!r}")
    ok = True
    if "miner" in apis:
        os.environ["SEEDGRID_TOTAL_VOLUME"] = VOLUME["miner"]  # the miner processes read it at their start
        with miner_under_test("fuzz") as m:
            rng = random.Random(args.seed)
            cases = [case(rng) for _ in range(args.requests)]
            ok &= report("miner API", args.requests, args.concurrency, args.seed,
                         run(cases, m.url, signing(m.validator, m.hotkey), args.concurrency, "miner API"))
    if "gateway" in apis:

        os.environ["SEEDGRID_TOTAL_VOLUME"] = VOLUME["gateway"]
        with gateway_under_test("fuzzgw", extra_miners=2) as g:
            rng = random.Random(args.seed)
            cases = [gateway_case(rng) for _ in range(args.requests)]
            ok &= report("gateway", args.requests, args.concurrency, args.seed,
                         run(cases, g.url, lambda c: (c[0], c[1], c[2], gateway_auth(g.key, dict(c[3]))),
                             args.concurrency, "gateway"))
    if "text" in apis:
        os.environ["SEEDGRID_TOTAL_VOLUME"] = VOLUME["miner"]
        with text_miner_under_test("fuzztext") as t:
            rng = random.Random(args.seed)
            cases = [text_miner_case(rng) for _ in range(args.requests)]
            ok &= report("text miner API", args.requests, args.concurrency, args.seed,
                         run(cases, t.url, signing(t.validator, t.hotkey), args.concurrency, "text miner API"))
            rng = random.Random(args.seed)
            cases = [text_server_case(rng) for _ in range(args.requests)]
            ok &= report("text server", args.requests, args.concurrency, args.seed,
                         run(cases, t.llm_url, lambda c: c, args.concurrency, "text server"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
