"""Image-conditioned generation in the engine (issue 11): img2img for SD1.5 and SDXL, and ControlNet (canny,
depth, normal) for SD1.5, made from the loaded text-to-image pipeline. The requests here are small parsed
text-to-image ones with their pipeline fields set (their conditioning image another seed's output)."""

import base64
import dataclasses
import io
import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from app.generation.service import get_engine
from app.protocol import conditioning
from app.protocol.request import Control, parse_request

from ..conftest import ROOT
from ..helpers.small_requests import small_request

IMG2IMG_MODELS = ["RealisticVision", "AnimeV3"]  # one SD1.5 and one SDXL type


def picture(model: str, seed: int) -> str:
    """Another seed's text-to-image output, as a request carries an image (base64 PNG)."""
    from app.config import get_settings

    pixels = get_engine(model, get_settings()).generate(parse_request(small_request(model, seed=seed))).pixels[0]
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def img2img(model: str, seed: int = 7, strength: float = 0.6, picture_seed: int = 3):
    """A small img2img request whose init image is another seed's text-to-image output."""
    return dataclasses.replace(parse_request(small_request(model, seed=seed)), pipeline="img2img",
                               init_image=picture(model, picture_seed), strength=strength)


def controlnet(model: str, control_type: str, seed: int = 7, picture_seed: int = 3, **control):
    return dataclasses.replace(parse_request(small_request(model, seed=seed)), pipeline="controlnet",
                               control=Control(type=control_type, image=picture(model, picture_seed), **control))


REPRODUCE = """
import base64, dataclasses, json, sys
from app.config import get_settings
from app.generation.service import get_engine
from app.protocol.request import Control, parse_request
raw = json.loads(sys.stdin.read())
conditioned = raw["conditioning"]
if conditioned["control"]:
    conditioned["control"] = Control(**conditioned["control"])
req = dataclasses.replace(parse_request(raw["request"]), **conditioned)
print(get_engine(req.model, get_settings()).generate(req).pixel_sha256)
"""


@pytest.mark.parametrize("model", IMG2IMG_MODELS)
def test_img2img_is_deterministic_conditioned_and_reproduced_in_another_process(settings, model):
    engine = get_engine(model, settings)
    req = img2img(model)
    out = engine.generate(req)
    assert out.pixels.shape == (1, req.params.height, req.params.width, 3) and out.pixels.std() > 1
    assert engine.generate(req).pixel_sha256 == out.pixel_sha256
    text_only = engine.generate(dataclasses.replace(req, pipeline="", init_image=None, strength=None))
    for what, other in {"strength": dataclasses.replace(req, strength=0.8),
                        "init image": img2img(model, picture_seed=4)}.items():
        assert engine.generate(other).pixel_sha256 != out.pixel_sha256, f"changing the {what} must change the hash"
    assert text_only.pixel_sha256 != out.pixel_sha256, "the init image must matter"
    assert reproduced_elsewhere(req) == out.pixel_sha256


def reproduced_elsewhere(req) -> str:
    """The request's pixel hash from a separate process (its own import, its own torch)."""
    conditioned = {"pipeline": req.pipeline, "init_image": req.init_image, "strength": req.strength,
                   "control": dataclasses.asdict(req.control) if req.control else None}
    payload = {"request": {k: v for k, v in req.to_dict().items() if k not in conditioned}, "conditioning": conditioned}
    proc = subprocess.run([sys.executable, "-c", REPRODUCE], input=json.dumps(payload), capture_output=True,
                          text=True, cwd=ROOT, env=dict(os.environ), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def test_controlnet_of_every_type_is_deterministic_conditioned_and_reproduced_in_another_process(settings):
    engine = get_engine("RealisticVision", settings)
    text_only = engine.generate(parse_request(small_request("RealisticVision", seed=7)))
    hashes = {}
    for control_type in conditioning.CONTROL_TYPES:
        req = controlnet("RealisticVision", control_type)
        out = engine.generate(req)
        assert out.pixels.std() > 1 and engine.generate(req).pixel_sha256 == out.pixel_sha256
        hashes[control_type] = out.pixel_sha256
        for what, other in {"image": controlnet("RealisticVision", control_type, picture_seed=4),
                            "scale": controlnet("RealisticVision", control_type, conditioning_scale=0.5)}.items():
            assert engine.generate(other).pixel_sha256 != out.pixel_sha256, f"{control_type}: the {what} must matter"
    assert text_only.pixel_sha256 not in hashes.values(), "the control must matter"
    assert len(set(hashes.values())) == 3, "each control type has its own ControlNet (and canny its own map)"
    req = controlnet("RealisticVision", "canny", guidance_end=0.5)
    assert reproduced_elsewhere(req) == engine.generate(req).pixel_sha256


def test_img2img_drift_between_thread_counts_stays_at_rounding(settings):
    """The init image reaches the VAE encoder laid out contiguously: as the channels-last view diffusers
    makes of a PIL image, the encoder's first convolution summed differently on 1 and 2 threads (latents
    1.7e-2 apart; a few percent of the output's pixels one level off, a distance of up to 3.4e-5)."""
    import numpy as np
    import torch

    engine = get_engine("RealisticVision", settings)
    req = img2img("RealisticVision", strength=0.75)
    before = torch.get_num_threads()
    try:
        out = {}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out[threads] = engine.generate(req).pixels
    finally:
        torch.set_num_threads(before)
    assert np.mean(out[1] != out[2]) < 1e-3, f"{np.mean(out[1] != out[2]):.2%} of the values differ"


def test_img2img_shares_the_loaded_weights(settings):
    """from_pipe: the img2img pipeline holds the same modules, so its parameters are not a second copy."""
    engine = get_engine("RealisticVision", settings)
    derived = engine.pipe_for(img2img("RealisticVision"))
    assert derived is not engine.pipeline
    for name in ("unet", "vae", "text_encoder"):
        assert getattr(derived, name) is getattr(engine.pipeline, name), name
    pointers = {p.data_ptr() for pipe in (engine.pipeline, derived)
                for module in (pipe.unet, pipe.vae, pipe.text_encoder) for p in module.parameters()}
    assert len(pointers) == sum(1 for m in (engine.pipeline.unet, engine.pipeline.vae, engine.pipeline.text_encoder)
                                for _ in m.parameters())
    with_control = engine.pipe_for(controlnet("RealisticVision", "canny"))
    assert with_control.unet is engine.pipeline.unet and with_control.controlnet is not None


@pytest.mark.parametrize("cheat", ["ignore_init_image", "other_strength", "ignore_control", "other_control_scale",
                                   "return_init_image"])
def test_every_conditioned_cheat_is_far_from_the_honest_answer(settings, tmp_path, cheat):
    """Each cheat's answer, made by the cheat's own code (app/testkit/cheats.py) through the engine, fails
    the ladder against the honest reproduction; an honest answer to the same request passes it exactly."""
    from app.protocol import media
    from app.storage.local import LocalStore, read_path
    from app.testkit.cheats import CONDITIONED, Cheat
    from app.verification.pixels import verify
    from app.verification.thresholds import threshold_for

    pipeline = CONDITIONED[cheat][0] if cheat in CONDITIONED else "img2img"
    req = img2img("RealisticVision") if pipeline == "img2img" else controlnet("RealisticVision", "canny")
    engine = get_engine("RealisticVision", settings)

    def run(r):
        ref, _ = LocalStore(tmp_path).put(engine.generate(r).data, "png")
        return {"artifact_path": ref}

    honest = engine.generate(req)
    threshold = threshold_for("RealisticVision", pipeline=pipeline).similarity

    def judged(data):
        return verify(data=data, media_type="image/png", expected_pixels=honest.pixels,
                      expected_sha256=honest.pixel_sha256, expected_media_type="image/png", threshold=threshold)

    data, _, _ = Cheat(cheat, "RealisticVision").answer(req, run, read_path)
    verdict = judged(data)
    assert verdict.rung == "failed", (cheat, verdict)
    assert judged(honest.data).rung == "exact"
    text_only = parse_request(small_request("RealisticVision", seed=7))
    assert Cheat(cheat, "RealisticVision").answer(text_only, run, read_path)[0] == media.encode(
        engine.generate(text_only).pixels, engine.spec.media_type), "a text-only request is answered honestly"
