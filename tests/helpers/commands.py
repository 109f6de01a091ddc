"""Run the `seedgrid` command as a user does: in a subprocess, from the project root."""

import os
import subprocess
import sys
from pathlib import Path

from ..conftest import ROOT

SEEDGRID = str(Path(sys.executable).parent / "seedgrid")


def seedgrid(*args, env=None):
    """Run `seedgrid ARGS`; env adds variables to the test's, and a None value removes one."""
    merged = {**os.environ, **(env or {})}
    return subprocess.run([SEEDGRID, *args], capture_output=True, text=True, cwd=ROOT,
                          env={k: v for k, v in merged.items() if v is not None}, timeout=300)


def in_process_hash(settings, raw) -> str:
    """The pixel hash this process's engine gives for a raw request."""
    from app.generation.service import get_engine
    from app.protocol.request import parse_request

    req = parse_request(raw)
    return get_engine(req.model, settings).generate(req).pixel_sha256
