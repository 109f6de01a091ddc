"""Conditioning images the validator makes for image-conditioned challenges: valid requests, never the same twice."""

import base64
import random

import numpy as np
import pytest
from PIL import Image

from app.protocol import conditioning
from app.protocol.request import GenerationParams, parse_conditioning
from app.validator.conditioning import (
    challenge_conditioning,
    depth_map,
    normal_map,
    source_picture,
)

PARAMS = GenerationParams(steps=20, guidance=7.0, width=96, height=64, scheduler="euler")
CONTROLS = ("canny", "depth", "normal")


@pytest.mark.parametrize("pipeline", ["img2img", "controlnet"])
def test_challenge_fields_are_requests_parse_request_accepts(pipeline):
    for seed in range(6):
        fields = challenge_conditioning(pipeline, 96, 64, CONTROLS, random.Random(seed))
        parsed = parse_conditioning(fields, pipeline, PARAMS)
        image = parsed["init_image"] if pipeline == "img2img" else parsed["control"].image
        pixels = conditioning.load_image(image, "image", 96, 64)
        assert pixels.shape == (64, 96, 3) and pixels.std() > 5, "a picture, not a flat field"
    assert challenge_conditioning("txt2img", 96, 64, CONTROLS, random.Random(0)) == {}


def test_the_same_draw_is_reproducible_and_the_validators_draws_never_repeat():
    a = challenge_conditioning("img2img", 96, 64, CONTROLS, random.Random(5))
    assert a == challenge_conditioning("img2img", 96, 64, CONTROLS, random.Random(5))
    secret = random.SystemRandom()
    draws = [challenge_conditioning("controlnet", 96, 64, CONTROLS, secret)["control"]["image"] for _ in range(8)]
    assert len(set(draws)) == 8


def test_earlier_reproductions_are_used_and_a_missing_one_is_replaced(tmp_path):
    earlier = tmp_path / "earlier.png"
    Image.new("RGB", (128, 128), (10, 200, 30)).save(earlier)
    greens = 0
    for seed in range(12):
        pixels = source_picture(64, 64, random.Random(seed), [earlier])
        greens += int(np.abs(pixels.astype(int) - (10, 200, 30)).max() < 3)
    assert 2 <= greens <= 10, "about half from the earlier reproduction"
    assert source_picture(64, 64, random.Random(1), [tmp_path / "pruned.png"]).shape == (64, 64, 3)


def test_depth_and_normal_maps_have_their_shape():
    picture = source_picture(96, 64, random.Random(2))
    depth = depth_map(picture)
    assert depth.shape == (64, 96, 3) and (depth[..., 0] == depth[..., 1]).all()
    assert depth[-8:].mean() > depth[:8].mean(), "the floor is nearer at the bottom"
    normal = normal_map(picture)
    assert normal.shape == (64, 96, 3) and normal[..., 2].min() > 127, "normals face the viewer"
    assert base64.b64decode(challenge_conditioning("controlnet", 96, 64, ("normal",), random.Random(3))
                            ["control"]["image"])


def test_the_gallery_shows_what_the_pipeline_saw_stored_once(settings):
    from app.protocol.conditioning import without_images
    from app.validator.views import conditioning as shown
    from app.validator.views import find_artifact

    params = {"width": 96, "height": 64}
    canny = {"model": "RealisticVision", "params": params, "pipeline": "controlnet",
             **challenge_conditioning("controlnet", 96, 64, ("canny",), random.Random(1))}
    items = shown(settings, canny)
    assert [i["label"].split(" (")[0] for i in items] == ["control image", "canny edges"]
    edges = Image.open(find_artifact(settings, items[1]["artifact"]))
    assert edges.size == (96, 64) and set(np.unique(np.asarray(edges))) <= {0, 255}, "white edges on black"
    assert shown(settings, canny) == items, "the same request: the same artifacts"
    img2img = {"params": params, **challenge_conditioning("img2img", 96, 64, CONTROLS, random.Random(2))}
    [item] = shown(settings, img2img)
    assert item["label"].startswith("init image, strength") and find_artifact(settings, item["artifact"])
    assert shown(settings, {"params": params}) == [] and shown(settings, {"params": params, "init_image": "@@"}) == []
    digest = without_images(img2img)["init_image"]
    assert digest.startswith("sha256:") and digest.endswith("bytes)") and len(digest) < 100


def test_an_img2img_challenge_runs_two_denoising_steps_at_least():
    for seed in range(8):
        fields = challenge_conditioning("img2img", 96, 64, CONTROLS, random.Random(seed), steps=1)
        assert fields["strength"] == 1.0
        parse_conditioning(fields, "img2img", GenerationParams(steps=1, guidance=7.0, width=96, height=64,
                                                               scheduler="euler"))
    two = {challenge_conditioning("img2img", 96, 64, CONTROLS, random.Random(s), steps=2)["strength"] for s in range(20)}
    assert two == {1.0}, "two steps: both run"
    three = {challenge_conditioning("img2img", 96, 64, CONTROLS, random.Random(s), steps=3)["strength"]
             for s in range(30)}
    assert min(three) == 0.7 and len(three) > 1 and all(int(3 * s) >= 2 for s in three), "at least two steps run"
    many = {challenge_conditioning("img2img", 96, 64, CONTROLS, random.Random(s), steps=30)["strength"]
            for s in range(30)}
    assert min(many) == 0.5, "with steps enough, the drawn strengths stand"
