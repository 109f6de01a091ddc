"""Conditioning images (img2img's init image, a ControlNet's control image), read the same way everywhere.

A request carries an image as base64 of its PNG, JPEG or WebP bytes. The miner's engine and
the validator's reproduction both turn those bytes into pixels with `load_image`, so the
ground truth uses exactly the miner's inputs. Every step is deterministic and fixed:

- format: PNG, JPEG or WebP, told by the bytes' own signature (a claimed type is not asked);
- size: at most MAX_IMAGE_BYTES encoded and MAX_IMAGE_PIXELS decoded, the latter read from
  the header before anything is decoded (no decompression bombs);
- orientation: an EXIF orientation tag is applied (the picture upright as viewers show it);
- colour: RGB; an alpha channel is composited over white (a transparent PNG reads as on
  a page), a palette or greyscale image expanded;
- size normalisation (`fit`): scaled to cover the request's width x height keeping its
  aspect ratio (Lanczos, Pillow's integer arithmetic for 8-bit images), then cropped to
  it about the centre.

`check_image` is what parse_request runs: the same decoding, so a bad image is a 400 naming
its field at the API, never an error in a GPU worker. `canny` makes the edge map of the
ControlNet `canny` type from the normalised image with OpenCV's Canny at fixed thresholds
(CANNY_LOW, CANNY_HIGH, a 3x3 Sobel, the L1 gradient): integer arithmetic, the same map on
every machine. The `depth` and `normal` types take the map itself (no estimator weights can
be had here), so their image is used as given.
"""

from __future__ import annotations

import base64
import binascii
import io

import numpy as np

from app.protocol.errors import InvalidRequest

FORMATS = ("PNG", "JPEG", "WEBP")
MAX_IMAGE_BYTES = 8 * 1024 * 1024  # encoded, after base64
MAX_IMAGE_PIXELS = 2048 * 2048  # decoded
MAX_IMAGE_SIDE = 4096
CANNY_LOW, CANNY_HIGH = 100, 200  # the thresholds ControlNet's canny models were trained with
CONTROL_TYPES = ("canny", "depth", "normal")
IMAGE_PIPELINES = ("img2img", "controlnet")  # the pipelines whose requests carry an image
MAX_IMAGE_TEXT = -(-MAX_IMAGE_BYTES // 3) * 4 + 4  # the largest image field: its base64 text


def image_digest(value: str) -> str:
    """What a view shows of an image field instead of its base64: its bytes' digest and size."""
    import base64
    import binascii
    import hashlib

    try:
        data = base64.b64decode(value)
    except (binascii.Error, ValueError):
        data = value.encode()
    return f"sha256:{hashlib.sha256(data).hexdigest()} ({len(data):,} bytes)"


def without_images(request: dict) -> dict:
    """A stored request for a view (a job's, a challenge's): each conditioning image as its digest, so a
    poll or an event never carries megabytes back (the images themselves: the request as sent)."""
    out = dict(request)
    if isinstance(out.get("init_image"), str):
        out["init_image"] = image_digest(out["init_image"])
    control = out.get("control")
    if isinstance(control, dict) and isinstance(control.get("image"), str):
        out["control"] = {**control, "image": image_digest(control["image"])}
    return out


def body_caps(pipelines, text_cap: int) -> dict[str, int]:
    """The largest request body per pipeline: a text-only request keeps `text_cap` (a prompt and its
    params); an image-carrying one adds one image field's base64 text."""
    return {p: text_cap + (MAX_IMAGE_TEXT if p in IMAGE_PIPELINES else 0) for p in pipelines}


def image_bytes(value, field: str) -> bytes:
    """The encoded image of a request field: base64 text, strictly decoded, within MAX_IMAGE_BYTES."""
    if not isinstance(value, str):
        raise InvalidRequest(field, f"must be the image as base64 text (PNG, JPEG or WebP), got {type(value).__name__}")
    if len(value) > MAX_IMAGE_TEXT:
        raise InvalidRequest(field, f"is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MiB encoded; send a smaller "
                                    f"image (it is resized to the request's width and height anyway)")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(field, "is not valid base64 (standard alphabet, padded, no line breaks)") from None
    if not data:
        raise InvalidRequest(field, "is empty")
    return data


def _open(data: bytes, field: str):
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError):
        raise InvalidRequest(field, "is not a readable image; send PNG, JPEG or WebP bytes") from None
    if img.format not in FORMATS:
        raise InvalidRequest(field, f"is a {img.format} image; send PNG, JPEG or WebP")
    w, h = img.size
    if w < 1 or h < 1 or max(w, h) > MAX_IMAGE_SIDE or w * h > MAX_IMAGE_PIXELS:
        raise InvalidRequest(field, f"is {w}x{h} pixels; at most {MAX_IMAGE_PIXELS:,} pixels and {MAX_IMAGE_SIDE} "
                                    f"on a side are read (it is resized to the request's size anyway)")
    return img


def _upright_rgb(img, field: str):
    """Decoded, EXIF orientation applied, alpha over white, RGB."""
    from PIL import Image, ImageOps

    try:
        img.load()
        img = ImageOps.exif_transpose(img)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InvalidRequest(field, f"is a corrupt {img.format} image ({type(exc).__name__}); send it again, "
                                    f"re-encoded") from None
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        page = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(page, rgba)
    return img.convert("RGB")


def check_image(value, field: str) -> None:
    """What parse_request runs on an image field: InvalidRequest naming `field` unless the image can be read."""
    _upright_rgb(_open(image_bytes(value, field), field), field)


def fit(img, width: int, height: int):
    """Scaled to cover width x height (aspect kept, Lanczos), then cropped to it about the centre."""
    from PIL import Image

    w, h = img.size
    scale = max(width / w, height / h)
    sw, sh = max(width, round(w * scale)), max(height, round(h * scale))
    if (sw, sh) != (w, h):
        img = img.resize((sw, sh), Image.Resampling.LANCZOS)
    left, top = (sw - width) // 2, (sh - height) // 2
    return img.crop((left, top, left + width, top + height))


def load_image(value, field: str, width: int, height: int) -> np.ndarray:
    """The request's image as uint8 RGB (height, width, 3): decoded, upright, RGB and fitted."""
    img = _upright_rgb(_open(image_bytes(value, field), field), field)
    return np.asarray(fit(img, width, height), dtype=np.uint8).copy()


def canny(rgb: np.ndarray) -> np.ndarray:
    """The canny edge map (height, width, 3) of a uint8 RGB image: white edges on black."""
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(grey, CANNY_LOW, CANNY_HIGH, apertureSize=3, L2gradient=False)
    return np.repeat(edges[:, :, None], 3, axis=2)


def control_image(control_type: str, value, field: str, width: int, height: int) -> np.ndarray:
    """What a ControlNet of `control_type` is conditioned on: the canny map of the image, or the depth or normal map as given."""
    rgb = load_image(value, field, width, height)
    return canny(rgb) if control_type == "canny" else rgb
