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
