"""The real pipelines on dev checkpoints: determinism, sensitivity to every input, validation."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from app.backends.registry import SERVED_MODELS
from app.generation.service import get_engine
from app.protocol import media
from app.protocol.catalogue import CATALOGUE
from app.protocol.errors import CheckpointError, InvalidRequest
from app.protocol.request import parse_request

from ..conftest import ROOT
from ..helpers.small_requests import small_request


def run(settings, raw):
    req = parse_request(raw)
    return get_engine(req.model, settings).generate(req)


@pytest.mark.parametrize("model", SERVED_MODELS)
def test_same_request_same_hash_and_every_input_changes_it(settings, model):
    base = run(settings, small_request(model))
    assert run(settings, small_request(model)).pixel_sha256 == base.pixel_sha256
    assert base.pixels.std() > 1, "a blank output would make every hash test meaningless"
    changed = {
        "seed": run(settings, small_request(model, seed=1235)),
        "steps": run(settings, small_request(model, steps=small_request(model)["params"]["steps"] + 1)),
        "size": run(settings, small_request(model, width=small_request(model)["params"]["width"] + 64)),
    }
    for what, out in changed.items():
        assert out.pixel_sha256 != base.pixel_sha256, f"changing the {what} must change the hash"
    env = base.environment
    assert {"torch", "diffusers", "device", "dtype", "threads", "class"} <= set(env)
    assert env["dtype"] == "float32" and env["threads"] == settings.threads


def test_video_carries_its_frames_losslessly_and_the_hash_is_theirs(settings):
    out = run(settings, small_request("TextToVideo", num_frames=7, width=96, height=64))
    assert out.media_type == "video/mp4" and out.data[4:8] == b"ftyp"
    assert media.decode_mp4(out.data).shape == (7, 64, 96, 3)
    frames = media.decode_frames(out.frames, 7)
    assert frames.shape == (7, 64, 96, 3) and np.array_equal(frames, out.pixels)
    assert media.pixel_sha256(frames) == out.pixel_sha256


def test_image_hash_is_computable_from_the_bytes_alone(settings):
    out = run(settings, small_request("RealisticVision"))
    assert out.data.startswith(b"\x89PNG")
    assert media.pixel_sha256(media.decode_png(out.data)) == out.pixel_sha256
    assert out.pixels.shape == (1, 512, 512, 3)


def test_scheduler_is_part_of_the_output(settings):
    a = run(settings, small_request("RealisticVision"))
    b = run(settings, small_request("RealisticVision", scheduler="euler_a"))
    assert a.pixel_sha256 != b.pixel_sha256


def test_prompt_over_77_tokens_is_refused(settings):
    long_prompt = " ".join(["castle"] * 80)
    with pytest.raises(InvalidRequest) as err:
        run(settings, {**small_request("RealisticVision"), "prompt": long_prompt})
    assert err.value.field == "prompt" and "tokens" in err.value.message


def test_missing_checkpoint_says_what_to_do(tmp_path):
    from app.backends.diffusers.determinism import Runtime
    from app.backends.diffusers.engine import Engine

    with pytest.raises(CheckpointError) as err:
        Engine.load(CATALOGUE["RealisticVision"], tmp_path / "nothing", Runtime("cpu", "float32", 1))
    assert "seedgrid models build-dev" in str(err.value)


def test_another_process_reproduces_every_hash(settings):
    """The same requests in a separate process (its own import, its own torch) give the same hashes."""
    requests = [small_request(m, seed=99) for m in SERVED_MODELS]
    here = [run(settings, r).pixel_sha256 for r in requests]
    proc = subprocess.run([sys.executable, "-m", "tests.helpers.generate_many"], input=json.dumps(requests),
                          capture_output=True, text=True, cwd=ROOT, env=dict(os.environ), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    there = json.loads(proc.stdout.strip().splitlines()[-1])
    assert dict(zip(SERVED_MODELS, there)) == dict(zip(SERVED_MODELS, here))


@pytest.mark.parametrize("model", ["RealisticVision", "TextToVideo"])  # both step-callback styles
def test_a_generation_stops_between_steps_when_its_deadline_passes(settings, model):
    import time

    from app.protocol.errors import GenerationTimeout

    req = parse_request(small_request(model, steps=50))
    engine = get_engine(model, settings)
    t0 = time.monotonic()  # the whole run first: a first call's one-time costs must not count as the stop's
    engine.generate(parse_request(small_request(model, steps=50)))
    full = time.monotonic() - t0
    t0 = time.monotonic()
    with pytest.raises(GenerationTimeout, match="time limit"):
        engine.generate(req, deadline=time.monotonic() + 0.05)
    stopped = time.monotonic() - t0
    assert stopped < full / 3, f"stopped after {stopped:.2f} s; the whole run takes {full:.2f} s"
