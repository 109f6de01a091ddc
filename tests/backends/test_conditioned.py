"""Image-conditioned generation in the engine (issue 11): img2img for SD1.5 and SDXL, made from the loaded
text-to-image pipeline. The catalogue lists these pipelines once their verification is calibrated, so the
requests here are the parsed text-to-image ones with their pipeline fields set."""

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
from app.protocol.request import parse_request

from ..conftest import ROOT
from ..helpers.small_requests import small_request

IMG2IMG_MODELS = ["RealisticVision", "AnimeV3"]  # one SD1.5 and one SDXL type


def img2img(model: str, seed: int = 7, strength: float = 0.6, picture_seed: int = 3):
    """A small img2img request whose init image is another seed's text-to-image output."""
    from app.config import get_settings

    base = parse_request(small_request(model, seed=picture_seed))
    pixels = get_engine(model, get_settings()).generate(base).pixels[0]
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return dataclasses.replace(parse_request(small_request(model, seed=seed)), pipeline="img2img",
                               init_image=base64.b64encode(buf.getvalue()).decode(), strength=strength)


REPRODUCE = """
import base64, dataclasses, json, sys
from app.config import get_settings
from app.generation.service import get_engine
from app.protocol.request import parse_request
raw = json.loads(sys.stdin.read())
req = dataclasses.replace(parse_request(raw["request"]), **raw["conditioning"])
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
    payload = {"request": {**req.to_dict(), "pipeline": None, "init_image": None, "strength": None},
               "conditioning": {"pipeline": "img2img", "init_image": req.init_image, "strength": req.strength}}
    proc = subprocess.run([sys.executable, "-c", REPRODUCE], input=json.dumps(payload), capture_output=True,
                          text=True, cwd=ROOT, env=dict(os.environ), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == out.pixel_sha256


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
