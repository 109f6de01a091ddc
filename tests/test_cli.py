"""The `seedgrid` command as a user runs it: in a subprocess, reading its output."""

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT

SEEDGRID = str(Path(sys.executable).parent / "seedgrid")


def seedgrid(*args, env=None):
    return subprocess.run([SEEDGRID, *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_generate_in_process_prints_json_and_writes_the_file(tmp_path, database):
    out = tmp_path / "cat.png"
    p = seedgrid("generate", "--model", "DreamShaper", "--prompt", "a cat", "--seed", "3", "--steps", "4",
                 "--width", "256", "--height", "256", "--out", str(out), "--json")
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout)
    assert result["status"] == "succeeded" and result["media_type"] == "image/png"
    from app.generation import media

    assert media.pixel_sha256(media.decode_png(out.read_bytes())) == result["pixel_sha256"]


def test_bad_inputs_exit_2_naming_the_field():
    cases = [
        (["--model", "Nope"], "model"),
        (["--model", "RealisticVision", "--steps", "51"], "params.steps"),
        (["--model", "RealisticVision", "--width", "513"], "params.width"),
        (["--model", "TextToVideo", "--frames", "65"], "params.num_frames"),
        (["--model", "RealisticVision", "--prompt", ""], "prompt"),
    ]
    for args, field in cases:
        full = ["generate", "--prompt", "a cat", "--seed", "1", *args, "--json"]
        p = seedgrid(*full)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        body = json.loads(p.stdout)
        assert body["field"] == field and body["detail"], body


def test_worker_refuses_an_unknown_model():
    p = seedgrid("worker", "gpu", "--model", "Nope")
    assert p.returncode == 2 and "--model" in p.stderr and "Nope" in p.stderr


def test_invalid_settings_name_the_variable():
    p = seedgrid("models", "list", env={"SEEDGRID_THREADS": "0"})
    assert p.returncode == 1 and "SEEDGRID_THREADS" in p.stderr


def test_models_list_shows_the_catalogue():
    p = seedgrid("models", "list")
    assert p.returncode == 0 and "RealitiesEdgeXL" in p.stdout and "Gemma7b" in p.stdout
