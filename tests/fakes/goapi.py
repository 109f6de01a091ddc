"""A local GoAPI-style Midjourney provider: a real HTTP server on loopback, never the internet.

POST /mj/v2/imagine (X-API-KEY one of --keys) {prompt, process_mode} -> {task_id, status}
POST /mj/v2/fetch {task_id} -> the task (pending, then finished after the mode's delay)
GET  /images/<task_id>.png -> its image, drawn from the task id and prompt (no two alike)
GET  /mj/v2/tasks (X-API-KEY) -> the ids of the tasks that key submitted (ownership is kept)
A prompt with a `--fail` flag makes a task that fails (how tests make a failed task).

Run: python -m tests.fakes.goapi --port 8400 --keys k1,k2   (prints "ready" once listening)
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DELAYS = {"turbo": 0.2, "fast": 0.5, "relax": 1.0}  # seconds until a task finishes, by mode


def draw(task_id: str, prompt: str) -> bytes:
    from PIL import Image, ImageDraw

    digest = hashlib.sha256(f"{task_id}\0{prompt}".encode()).digest()
    image = Image.new("RGB", (128, 128), tuple(digest[:3]))
    pen = ImageDraw.Draw(image)
    for i in range(6):
        x, y, s = digest[3 + i * 4] // 2, digest[4 + i * 4] // 2, 8 + digest[5 + i * 4] // 8
        pen.ellipse((x, y, x + s, y + s), fill=tuple(digest[6 + i * 4:9 + i * 4]) or (255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


class Provider:
    def __init__(self, keys: set[str]):
        self.keys, self.tasks, self.lock = keys, {}, threading.Lock()

    def imagine(self, key: str | None, body: dict) -> tuple[int, dict]:
        if key not in self.keys:
            return 401, {"status": "failed", "message": "invalid X-API-KEY"}
        prompt, mode = body.get("prompt"), body.get("process_mode", "fast")
        if not isinstance(prompt, str) or not prompt.strip() or mode not in DELAYS:
            return 400, {"status": "failed", "message": "prompt and a process_mode of relax, fast or turbo"}
        task_id = uuid.uuid4().hex
        with self.lock:
            self.tasks[task_id] = {"owner": key, "prompt": prompt, "mode": mode, "at": time.monotonic()}
        return 200, {"task_id": task_id, "status": "success", "message": ""}

    def fetch(self, base: str, body: dict) -> tuple[int, dict]:
        task_id = body.get("task_id")
        task = self.tasks.get(task_id) if isinstance(task_id, str) else None
        if task is None:
            return 404, {"status": "failed", "message": f"no task {str(task_id)[:80]!r}"}
        done = time.monotonic() - task["at"] >= DELAYS[task["mode"]]
        failing = " --fail" in f" {task['prompt']}"
        status = "processing" if not done else "failed" if failing else "finished"
        result = {"image_url": f"{base}/images/{task_id}.png" if status == "finished" else "",
                  "error_messages": ["the fake provider failed this task (--fail)"] if status == "failed" else []}
        return 200, {"task_id": task_id, "status": status, "process_mode": task["mode"],
                     "meta": {"task_request": {"prompt": task["prompt"]}}, "task_result": result}

    def image(self, task_id: str) -> bytes | None:
        task = self.tasks.get(task_id)
        if task is None or time.monotonic() - task["at"] < DELAYS[task["mode"]] or " --fail" in f" {task['prompt']}":
            return None
        return draw(task_id, task["prompt"])


def serve(port: int, keys: set[str]) -> ThreadingHTTPServer:
    provider = Provider(keys)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, data: dict) -> None:
            self._send(status, json.dumps(data).encode())

        def do_POST(self):
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            except ValueError:
                return self._json(400, {"status": "failed", "message": "the body is not JSON"})
            body = body if isinstance(body, dict) else {}
            if self.path == "/mj/v2/imagine":
                return self._json(*provider.imagine(self.headers.get("X-API-KEY"), body))
            if self.path == "/mj/v2/fetch":
                return self._json(*provider.fetch(f"http://127.0.0.1:{port}", body))
            self._json(404, {"status": "failed", "message": "no such route"})

        def do_GET(self):
            if self.path.startswith("/images/") and self.path.endswith(".png"):
                data = provider.image(self.path[len("/images/"):-len(".png")])
                return self._send(200, data, "image/png") if data else self._json(404, {"message": "no image"})
            if self.path == "/mj/v2/tasks":
                key = self.headers.get("X-API-KEY")
                return self._json(200, {"tasks": [t for t, v in provider.tasks.items() if v["owner"] == key]})
            self._json(404, {"status": "failed", "message": "no such route"})

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--keys", required=True, help="comma-separated API keys it accepts")
    args = parser.parse_args()
    server = serve(args.port, {k for k in args.keys.split(",") if k})
    print("ready", flush=True)
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
