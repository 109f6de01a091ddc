"""A `seedgrid llm serve` process for the benches: started on a free port, stopped after.

    with llm_server("Gemma7b", threads=1) as url:   # http://127.0.0.1:PORT
        ...
`env` adds variables (ATEN_CPU_CAPABILITY=avx2 runs another ISA's kernels); `folder` serves
another model folder under the same name (the other_model cheat's weights).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def llm_server(model: str, *, threads: int | None = None, env: dict | None = None,
               folder: Path | None = None) -> Iterator[str]:
    from app.local_network import free_port

    port = free_port()
    seedgrid = str(Path(sys.executable).parent / "seedgrid")
    extra = {"SEEDGRID_THREADS": str(threads)} if threads else {}
    proc = subprocess.Popen([seedgrid, "llm", "serve", "--model", model, "--port", str(port),
                             *(["--folder", str(folder)] if folder else [])],
                            env={**os.environ, **extra, **(env or {})}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the text server did not start: {proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the text server did not answer /health within 120 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@dataclass
class TextMinerUnderTest:
    url: str  # the miner API
    hotkey: str
    validator: object  # a wallet registered with 1M stake
    llm_url: str  # its text server


@contextmanager
def text_miner_under_test(name: str) -> Iterator[TextMinerUnderTest]:
    """A text miner: `seedgrid miner serve --model Gemma7b` over a dev text server, on the bench's subnet."""
    from app.local_network import free_port
    from bench._miner import pinned_process, subnet, wait_healthy

    redis, miner, validator = subnet(name)
    try:
        with llm_server("Gemma7b") as llm_url:
            port = free_port()
            seedgrid = str(Path(sys.executable).parent / "seedgrid")
            proc = pinned_process([seedgrid, "miner", "serve", "--model", "Gemma7b", "--wallet", name, "--hotkey",
                                   "miner", "--port", str(port), "--no-announce"], None,
                                  env={**os.environ, "SEEDGRID_LLM_URL": llm_url})
            url = f"http://127.0.0.1:{port}"
            try:
                wait_healthy(url, time.monotonic() + 120, "the bench text miner API")
                yield TextMinerUnderTest(url, miner.hotkey.ss58_address, validator, llm_url)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    finally:
        redis.stop()
