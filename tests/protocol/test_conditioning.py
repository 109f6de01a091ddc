"""Conditioning images and the image-conditioned request fields: read the same way everywhere, every bad input named."""

import base64
import hashlib
import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from app.protocol import conditioning
from app.protocol.errors import InvalidRequest
from app.protocol.request import (
    Control,
    GenerationParams,
    parse_conditioning,
    parse_request,
)


def picture(width=96, height=64, mode="RGB", seed=0) -> Image.Image:
    """Shapes with edges (bars and a disc) over a gradient, a little noise: canny has something to find."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], -1).astype(np.int16)
    rgb[(x // 12) % 2 == 0] //= 2
    rgb[(x - width / 2) ** 2 + (y - height / 2) ** 2 < (min(width, height) / 4) ** 2] = 250
    rgb = np.clip(rgb + rng.integers(-6, 7, rgb.shape), 0, 255).astype(np.uint8)
    img = Image.fromarray(rgb)
    return img.convert(mode) if mode != "RGB" else img


def b64(img: Image.Image, fmt="PNG", **save) -> str:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return base64.b64encode(buf.getvalue()).decode()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_png_jpeg_and_webp_are_read_and_fitted_to_the_request(fmt):
    out = conditioning.load_image(b64(picture(), fmt), "init_image", 64, 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert np.array_equal(out, conditioning.load_image(b64(picture(), fmt), "init_image", 64, 64))


def test_fit_covers_then_crops_about_the_centre():
    wide = Image.new("RGB", (200, 100))
    wide.paste((255, 0, 0), (0, 0, 50, 100))  # the left quarter red: cropped away when fitted to a square
    out = np.asarray(conditioning.fit(wide, 64, 64))
    assert out.shape == (64, 64, 3) and out[:, :4, 0].max() < 40
    assert conditioning.fit(Image.new("RGB", (30, 20)), 64, 64).size == (64, 64)  # small ones grow to cover


def test_exif_orientation_is_applied():
    img = picture(96, 64)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: stored landscape, shown portrait
    upright = conditioning.load_image(b64(img, "JPEG", exif=exif.tobytes(), quality=95), "init_image", 64, 96)
    plain = conditioning.load_image(b64(img.transpose(Image.Transpose.ROTATE_270), "JPEG", quality=95), "init_image",
                                    64, 96)
    assert np.abs(upright.astype(int) - plain.astype(int)).mean() < 6  # the same picture, up to JPEG's losses


def test_transparency_is_composited_over_white():
    img = Image.new("RGBA", (64, 64), (10, 20, 30, 0))
    assert conditioning.load_image(b64(img), "init_image", 64, 64).min() == 255


@pytest.mark.parametrize("value, words", [
    ("not base64!", "not valid base64"),
    (base64.b64encode(b"GIF89a" + b"\0" * 40).decode(), "not a readable image"),
    (b64(picture(), "GIF"), "GIF image"),
    (base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 64).decode(), "not a readable image"),
    (b64(Image.new("L", (2100, 2100))), "2100x2100 pixels"),
    (12, "base64 text"),
    ("", "is empty"),
])
def test_bad_images_are_named_by_their_field(value, words):
    with pytest.raises(InvalidRequest) as err:
        conditioning.check_image(value, "control.image")
    assert err.value.field == "control.image" and words in err.value.message, err.value.message


def test_a_truncated_image_is_corrupt_not_a_crash():
    data = base64.b64decode(b64(picture(256, 256), "PNG"))
    with pytest.raises(InvalidRequest) as err:
        conditioning.check_image(base64.b64encode(data[: len(data) // 2]).decode(), "init_image")
    assert err.value.field == "init_image" and "corrupt" in err.value.message


CANNY_IN_A_PROCESS = """
import base64, hashlib, sys
from app.protocol import conditioning
image = sys.stdin.read()
print(hashlib.sha256(conditioning.control_image("canny", image, "control.image", 96, 64).tobytes()).hexdigest())
"""


def test_the_canny_map_is_fixed_and_the_same_in_another_process():
    image = b64(picture(160, 120, seed=3), "WEBP", lossless=True)
    edges = conditioning.control_image("canny", image, "control.image", 96, 64)
    assert edges.shape == (64, 96, 3) and set(np.unique(edges)) <= {0, 255} and 0.01 < (edges > 0).mean() < 0.5
    other = subprocess.run([sys.executable, "-c", CANNY_IN_A_PROCESS], input=image, capture_output=True, text=True,
                           check=True, env={"ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "2",
                                            "PATH": "/usr/bin:/bin"})
    assert other.stdout.strip() == hashlib.sha256(edges.tobytes()).hexdigest()
    # depth and normal maps are used as given (fitted only)
    as_given = conditioning.control_image("depth", image, "control.image", 96, 64)
    assert np.array_equal(as_given, conditioning.load_image(image, "control.image", 96, 64))


# -- the request's pipeline fields ----------------------------------------------------------------------------------
def test_a_default_pipeline_request_keeps_its_earlier_wire_form():
    req = parse_request({"model": "RealisticVision", "prompt": "a cat", "seed": 1})
    assert req.pipeline == "txt2img" and "pipeline" not in req.to_dict() and "init_image" not in req.to_dict()
    assert parse_request(req.to_dict()) == req
    video = parse_request({"model": "TextToVideo", "prompt": "a cat", "seed": 1, "pipeline": "txt2vid"})
    assert video.pipeline == "txt2vid" and "pipeline" not in video.to_dict()


@pytest.mark.parametrize("model, change, field, words", [
    ("TextToVideo", {"pipeline": "img2img"}, "pipeline", "TextToVideo serves txt2vid"),
    ("AnimeV3", {"pipeline": "controlnet"}, "pipeline", "AnimeV3 serves txt2img, img2img"),
    ("RealisticVision", {"pipeline": "inpaint"}, "pipeline", "RealisticVision serves txt2img, img2img, controlnet"),
    ("RealisticVision", {"pipeline": ["txt2img"]}, "pipeline", "got 'list'"),
    ("RealisticVision", {"init_image": b64(picture())}, "init_image", "applies to the img2img pipeline only"),
    ("RealisticVision", {"strength": 0.5}, "strength", "applies to the img2img pipeline only"),
    ("RealisticVision", {"control": {"type": "canny"}}, "control", "applies to the controlnet pipeline only"),
    ("RealisticVision", {"pipeline": "img2img", "control": {"type": "canny"}}, "control",
     "applies to the controlnet pipeline only"),
])
def test_pipeline_fields_a_model_does_not_serve_are_named(model, change, field, words):
    with pytest.raises(InvalidRequest) as err:
        parse_request({"model": model, "prompt": "a cat", "seed": 1, **change})
    assert err.value.field == field and words in err.value.message, err.value.message


PARAMS = GenerationParams(steps=20, guidance=7.0, width=64, height=64, scheduler="euler")


def test_img2img_fields():
    image = b64(picture())
    assert parse_conditioning({"init_image": image}, "img2img", PARAMS) == {"init_image": image, "strength": 0.75}
    assert parse_conditioning({"init_image": image, "strength": 1}, "img2img", PARAMS)["strength"] == 1.0
    for raw, field, words in (({}, "init_image", "is required"),
                              ({"init_image": image, "strength": 1.5}, "strength", "between 0.0 and 1.0"),
                              ({"init_image": image, "strength": "high"}, "strength", "must be a number"),
                              ({"init_image": image, "strength": 0.04}, "strength", "runs no denoising step")):
        with pytest.raises(InvalidRequest) as err:
            parse_conditioning(raw, "img2img", PARAMS)
        assert err.value.field == field and words in err.value.message, (raw, err.value.message)


def test_controlnet_fields():
    image = b64(picture())
    got = parse_conditioning({"control": {"type": "canny", "image": image, "guidance_end": 0.8}}, "controlnet", PARAMS)
    assert got == {"control": Control(type="canny", image=image, conditioning_scale=1.0, guidance_start=0.0,
                                       guidance_end=0.8)}
    for control, field, words in (
            (None, "control", "is required"),
            ("canny", "control", "must be an object"),
            ({"type": "pose", "image": image}, "control.type", "canny, depth, normal"),
            ({"type": "depth"}, "control.image", "is required"),
            ({"type": "depth", "image": "@@"}, "control.image", "base64"),
            ({"type": "normal", "image": image, "strength": 1}, "control.strength", "not a known field"),
            ({"type": "canny", "image": image, "conditioning_scale": 3}, "control.conditioning_scale", "between"),
            ({"type": "canny", "image": image, "guidance_start": 0.6, "guidance_end": 0.5}, "control.guidance_end",
             "above guidance_start")):
        with pytest.raises(InvalidRequest) as err:
            parse_conditioning({"control": control}, "controlnet", PARAMS)
        assert err.value.field == field and words in err.value.message, (control, err.value.message)
