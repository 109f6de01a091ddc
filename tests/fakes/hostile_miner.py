"""A hostile miner for tests: a raw HTTP server that answers every request badly, one way per port.

    python -m tests.fakes.hostile_miner '{"18001": "list", "18002": "trickle", ...}'

Raw asyncio, not a web framework, so it can send what no framework would: bodies that
never end, a byte every half second, garbage behind an error status. It reads the
request (headers and Content-Length body) and answers by the port's mode. Loopback only.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

VALID_ISH = {"model": "RealisticVision", "media_type": "image/png", "data": "aGVsbG8=", "pixel_sha256": "0" * 64,
             "timings": {"queued_ms": 0, "generate_ms": 1}, "environment": {}}

MODES = ("list", "null", "string", "media_type_object", "sha_list", "error_list", "bad_base64", "not_json",
         "wrong_request_id", "huge", "huge_declared", "trickle", "silent", "garbage_500", "gzip_bomb")


def _body(mode: str, request: dict) -> tuple[int, bytes, dict]:
    rid = request.get("request_id", "")
    answers = {
        "list": (200, b"[]"),
        "null": (200, b"null"),
        "string": (200, b'"x"'),
        "media_type_object": (200, json.dumps({**VALID_ISH, "request_id": rid, "media_type": {"a": 1}}).encode()),
        "sha_list": (200, json.dumps({**VALID_ISH, "request_id": rid, "pixel_sha256": [1, 2]}).encode()),
        "error_list": (400, b"[1]"),
        "bad_base64": (200, json.dumps({**VALID_ISH, "request_id": rid, "data": "!!not base64!!"}).encode()),
        "not_json": (200, b"<html>oops</html>"),
        "wrong_request_id": (200, json.dumps({**VALID_ISH, "request_id": "someone-else"}).encode()),
        "garbage_500": (500, os.urandom(2048)),
    }
    status, body = answers[mode]
    return status, body, {}


async def _read_request(reader: asyncio.StreamReader) -> dict:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length) if length else b""
    try:
        return json.loads(body) if body else {}
    except ValueError:
        return {}


def _head(status: int, headers: dict) -> bytes:
    lines = [f"HTTP/1.1 {status} X", "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _serve(mode: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        request = await _read_request(reader)
        if mode == "silent":  # headers never come
            await asyncio.sleep(3600)
        elif mode in ("huge", "huge_declared"):  # 200 MB, streamed; declared up front or chunked
            chunk = b"A" * (1 << 20)
            headers = {"Content-Type": "application/json"}
            headers.update({"Content-Length": str(200 << 20)} if mode == "huge_declared"
                           else {"Transfer-Encoding": "chunked"})
            writer.write(_head(200, headers))
            for _ in range(200):
                writer.write((f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n") if mode == "huge" else chunk)
                await writer.drain()
        elif mode == "trickle":  # a valid-looking answer, one byte every half second
            body = json.dumps({**VALID_ISH, "request_id": request.get("request_id", "")}).encode()
            writer.write(_head(200, {"Content-Type": "application/json", "Content-Length": str(len(body))}))
            for i in range(len(body)):
                writer.write(body[i:i + 1])
                await writer.drain()
                await asyncio.sleep(0.5)
        elif mode == "gzip_bomb":
            import gzip

            body = gzip.compress(b"0" * (50 << 20))
            writer.write(_head(200, {"Content-Type": "application/json", "Content-Encoding": "gzip",
                                     "Content-Length": str(len(body))}) + body)
        else:
            status, body, headers = _body(mode, request)
            writer.write(_head(status, {"Content-Type": "application/json", "Content-Length": str(len(body)),
                                        **headers}) + body)
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass  # the validator hung up on us: what a bounded client does
    finally:
        writer.close()


async def main(ports: dict[int, str]) -> None:
    servers = []
    for port, mode in ports.items():
        if mode not in MODES:
            raise SystemExit(f"unknown mode {mode!r}; modes: {', '.join(MODES)}")
        servers.append(await asyncio.start_server(lambda r, w, m=mode: _serve(m, r, w), "127.0.0.1", port))
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    asyncio.run(main({int(p): m for p, m in json.loads(sys.argv[1]).items()}))
