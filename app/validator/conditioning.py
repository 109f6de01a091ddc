"""Conditioning images for image-conditioned challenges (issue 11), made by the validator and unpredictable.

A challenge's init or control image must not be something a miner could have prepared
for: each is drawn from the validator's own random generator (SystemRandom in rounds),
either a procedural scene of the dev world (app/backends/diffusers/devworld.py) for a
fresh varied prompt, or one of the validator's own earlier reproductions; then flipped,
cropped and encoded as PNG, JPEG or WebP at random, so neither its pixels nor its bytes
repeat. The depth and normal types get maps made from the picture: a depth map from a
floor gradient and the picture's blurred brightness (nearer is brighter), a normal map
from that height field's slopes. The strength, the ControlNet scale and its guidance end
are drawn from spreads around their defaults, as organic requests vary them.

`challenge_conditioning` returns the request fields (`init_image` and `strength`, or
`control`), ready for parse_request, which checks them like any client's.
"""

from __future__ import annotations

import base64
import io
import random
from pathlib import Path
from typing import Sequence

import numpy as np

STRENGTHS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.9)
CONTROL_SCALES = (0.6, 0.8, 1.0, 1.0, 1.2)
GUIDANCE_ENDS = (0.6, 0.8, 1.0, 1.0)
# An img2img challenge runs at least two denoising steps: a single step at the end of the schedule
# barely moves the init image, so a cheat there (lower guidance, one step fewer, which can run the
# very same step) lands within honest drift and the challenge checks little (the calibration measured
# one step fewer at 0 and lowered guidance at 4.8e-5 against honest drift of 3.2e-5).
MIN_IMG2IMG_STEPS = 2
FORMATS = ("PNG", "JPEG", "WEBP")


def source_picture(width: int, height: int, rng: random.Random, earlier: Sequence[Path] = ()) -> np.ndarray:
    """(height, width, 3) uint8: an earlier reproduction (half the time, when there are some) or a
    procedural scene, flipped and cropped at random."""
    from PIL import Image

    from app.protocol.conditioning import fit

    picture = None
    if earlier and rng.random() < 0.5:
        try:
            with Image.open(rng.choice(list(earlier))) as img:
                picture = np.asarray(img.convert("RGB"))
        except (OSError, ValueError):
            picture = None  # pruned or unreadable: a procedural one instead
    if picture is None:
        from app.backends.diffusers.devworld import LOOKS, render
        from app.validator.prompts import varied_prompt

        scene_rng = np.random.default_rng(rng.getrandbits(64))
        picture = render(varied_prompt(rng.getrandbits(32)), height + 32, width + 32, scene_rng,
                         look=rng.choice(LOOKS))[0]
    if rng.random() < 0.5:
        picture = picture[:, ::-1]
    h, w = picture.shape[:2]
    top, left = rng.randrange(0, max(1, h // 8)), rng.randrange(0, max(1, w // 8))
    crop = np.ascontiguousarray(picture[top:, left:])
    return np.asarray(fit(Image.fromarray(crop), width, height))


def depth_map(picture: np.ndarray) -> np.ndarray:
    """A plausible depth map: the floor nearer towards the bottom, bright (near) things nearer still."""
    from PIL import Image, ImageFilter

    h, w = picture.shape[:2]
    grey = np.asarray(Image.fromarray(picture).convert("L").filter(ImageFilter.GaussianBlur(3)), dtype=np.float32)
    floor = np.linspace(40, 200, h, dtype=np.float32)[:, None]
    depth = np.clip(0.6 * floor + 0.4 * grey, 0, 255).astype(np.uint8)
    return np.repeat(depth[:, :, None], 3, axis=2)


def normal_map(picture: np.ndarray) -> np.ndarray:
    """A tangent-space normal map of the depth map's height field (x red, y green, z blue)."""
    height = depth_map(picture)[:, :, 0].astype(np.float32) / 255.0
    dy, dx = np.gradient(height * 8.0)
    n = np.stack([-dx, -dy, np.ones_like(height)], axis=-1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    return np.clip((n + 1.0) * 127.5, 0, 255).astype(np.uint8)


def encoded(picture: np.ndarray, rng: random.Random) -> str:
    """The picture as base64 in a format drawn at random (JPEG and WebP at a random quality)."""
    from PIL import Image

    fmt = rng.choice(FORMATS)
    buf = io.BytesIO()
    options = {} if fmt == "PNG" else {"quality": rng.randrange(80, 96)}
    Image.fromarray(picture).save(buf, format=fmt, **options)
    return base64.b64encode(buf.getvalue()).decode()


def challenge_conditioning(pipeline: str, width: int, height: int, control_types: Sequence[str],
                           rng: random.Random, earlier: Sequence[Path] = (), steps: int | None = None) -> dict:
    """The image-conditioned fields of a challenge of `pipeline` at this size: none for a text-only one.
    With `steps`, an img2img strength that would run fewer than MIN_IMG2IMG_STEPS denoising steps
    becomes the least that runs them (all the steps when there are fewer)."""
    if pipeline == "img2img":
        init, strength = encoded(source_picture(width, height, rng, earlier), rng), rng.choice(STRENGTHS)
        if steps is not None and int(steps * strength) < min(MIN_IMG2IMG_STEPS, steps):
            strength = min(s for s in (*STRENGTHS, 1.0) if int(steps * s) >= min(MIN_IMG2IMG_STEPS, steps))
        return {"init_image": init, "strength": strength}
    if pipeline == "controlnet":
        kind = rng.choice(list(control_types))
        picture = source_picture(width, height, rng, earlier)
        image = {"canny": picture, "depth": depth_map(picture), "normal": normal_map(picture)}[kind]
        return {"control": {"type": kind, "image": encoded(image, rng), "conditioning_scale": rng.choice(CONTROL_SCALES),
                            "guidance_end": rng.choice(GUIDANCE_ENDS)}}
    return {}
