"""Media encoding and decoding, and the pixel hash every party computes the same way.

`pixel_sha256` is defined on uint8 RGB pixels shaped (frames, height, width, 3), the
shape included, so anyone holding the returned bytes alone can compute it. Images are
PNG (lossless: decoding gives back the generated pixels). Videos are H.264 MP4 made by
imageio-ffmpeg's bundled ffmpeg with a byte-stable recipe, for people to watch; beside
it a video answer carries its frames losslessly (`encode_frames`: one PNG of the frames
stacked), and the hash and the verification are taken on those. An encoder blurs frames
that differ by one level into differences as large as a cheat's (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tempfile

import numpy as np

from app.protocol.catalogue import Bounds, MediaType

HASH_DOMAIN = b"seedgrid-pixels/1"
PNG_COMPRESS_LEVEL = 6  # fixed: PNG bytes are stable when pixels and settings are
# Byte-stable H.264 (SPEC.md): one thread, bit-exact flags, no metadata; yuv420p, High
# profile, plays in every browser. CRF 2 (near-lossless) rather than the usual 18: frames
# that differ by one level in a few pixels (another CPU ISA) must stay near each other
# after encoding. At CRF 18 the encoder's quantisation decisions flip and the honest
# distance grew to half a cheat's; at CRF 2 the margin is about 50x
# (bench/calibrate_verification.py). It costs about 2x the bytes.
MP4_ENCODE_PARAMS = [
    "-threads", "1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1",
    "-preset", "medium", "-crf", "2", "-movflags", "+faststart",
]
FRAMES_EXTENSION = "frames.png"  # a stored video's lossless frames, beside its .mp4
MAX_DECODED_PIXELS = 64 * 1536 * 1536  # refuse to decode media larger than any valid output


class MediaError(ValueError):
    """Bytes that are not a readable image or video of the expected type."""


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Pipeline floats in [0, 1] -> uint8, rounded as diffusers' own PIL conversion does."""
    arr = np.asarray(frames)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0.0, 1.0) * 255).round().astype(np.uint8)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise MediaError(f"expected frames shaped (frames, height, width, 3), got {arr.shape}")
    return np.ascontiguousarray(arr)


def pixel_sha256(frames: np.ndarray) -> str:
    arr = to_uint8(frames)
    h = hashlib.sha256(HASH_DOMAIN)
    h.update(("x".join(str(d) for d in arr.shape) + "\n").encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def encode_png(frames: np.ndarray) -> bytes:
    from PIL import Image

    arr = to_uint8(frames)
    if arr.shape[0] != 1:
        raise MediaError(f"a PNG holds one frame, got {arr.shape[0]}")
    buf = io.BytesIO()
    Image.fromarray(arr[0], "RGB").save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != "PNG":
                raise MediaError(f"expected a PNG image, got {img.format}")
            if img.width * img.height > MAX_DECODED_PIXELS:
                raise MediaError(f"image of {img.width}x{img.height} is larger than any valid output")
            return to_uint8(np.asarray(img.convert("RGB")))
    except (UnidentifiedImageError, OSError) as exc:
        raise MediaError(f"not a readable PNG image: {exc}") from None


def encode_frames(frames: np.ndarray) -> bytes:
    """Every frame, losslessly: one PNG of the frames stacked top to bottom (a video answer's `frames`)."""
    arr = to_uint8(frames)
    n, h, w, _ = arr.shape
    return encode_png(arr.reshape(1, n * h, w, 3))


def decode_frames(data: bytes, frames: int) -> np.ndarray:
    """(frames, height, width, 3) from a stacked PNG of `frames` frames."""
    strip = decode_png(data)[0]
    if frames < 1 or strip.shape[0] % frames:
        raise MediaError(f"a stack of {frames} frames cannot be {strip.shape[0]} pixels tall")
    return strip.reshape(frames, strip.shape[0] // frames, strip.shape[1], 3)


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def encode_mp4(frames: np.ndarray, fps: int, overrides: list[str] | None = None) -> bytes:
    """H.264 MP4 by the fixed recipe; `overrides` (["-crf", "8"]) replace the recipe's values of those options."""
    arr = to_uint8(frames)
    params = list(MP4_ENCODE_PARAMS)
    for option, value in zip((overrides or [])[::2], (overrides or [])[1::2]):
        params[params.index(option) + 1] = value
    n, height, width, _ = arr.shape
    if height % 2 or width % 2:
        raise MediaError(f"H.264 needs even frame sizes, got {width}x{height}")
    with tempfile.TemporaryDirectory(prefix="seedgrid-mp4-") as tmp:
        path = os.path.join(tmp, "out.mp4")
        cmd = [
            _ffmpeg(), "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-",
            "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", *params, path,
        ]
        proc = subprocess.run(cmd, input=arr.tobytes(), capture_output=True)
        if proc.returncode != 0:
            raise MediaError(f"ffmpeg could not encode the video: {proc.stderr.decode(errors='replace').strip()}")
        with open(path, "rb") as f:
            return f.read()


def probe_mp4(path: str) -> tuple[int, int]:
    """(width, height) of the first video stream, read from ffmpeg's stream description."""
    import imageio_ffmpeg

    try:
        reader = imageio_ffmpeg.read_frames(path, pix_fmt="rgb24", bits_per_pixel=24)
        meta = next(reader)
        reader.close()
    except (RuntimeError, StopIteration, OSError) as exc:
        raise MediaError(f"not a readable MP4 video: {str(exc).strip().splitlines()[0] if str(exc) else exc}") from None
    width, height = meta["size"]
    return width, height


def decode_mp4(data: bytes) -> np.ndarray:
    """Every frame as uint8 RGB, decoded single-threaded so any machine gets the same pixels."""
    if not data[4:8] == b"ftyp":
        raise MediaError("not an MP4 file (no ftyp box at the start)")
    with tempfile.TemporaryDirectory(prefix="seedgrid-mp4-") as tmp:
        path = os.path.join(tmp, "in.mp4")
        with open(path, "wb") as f:
            f.write(data)
        width, height = probe_mp4(path)
        if width * height > MAX_DECODED_PIXELS:
            raise MediaError(f"video of {width}x{height} is larger than any valid output")
        cmd = [_ffmpeg(), "-hide_banner", "-loglevel", "error", "-threads", "1", "-i", path,
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
        proc = subprocess.run(cmd, capture_output=True)
        if proc.returncode != 0:
            raise MediaError(f"ffmpeg could not decode the video: {proc.stderr.decode(errors='replace').strip()}")
        frame_bytes = width * height * 3
        raw = proc.stdout
        if not raw or len(raw) % frame_bytes:
            raise MediaError(f"decoded {len(raw)} bytes, not a whole number of {width}x{height} frames")
        if len(raw) // frame_bytes > Bounds().max_frames:
            raise MediaError("video has more frames than any valid output")
        return np.frombuffer(raw, dtype=np.uint8).reshape(-1, height, width, 3).copy()


def encode(frames: np.ndarray, media_type: MediaType, fps: int | None = None) -> bytes:
    if media_type is MediaType.PNG:
        return encode_png(frames)
    if media_type is MediaType.MP4:
        return encode_mp4(frames, fps or 8)
    raise MediaError(f"cannot encode pixels as {media_type.value}")


def decode(data: bytes, media_type: MediaType | str) -> np.ndarray:
    media_type = MediaType(media_type)
    if media_type is MediaType.PNG:
        return decode_png(data)
    if media_type is MediaType.MP4:
        return decode_mp4(data)
    raise MediaError(f"{media_type.value} has no pixels to decode")


def answer_pixels(data: bytes, media_type: MediaType | str, frames: bytes | None,
                  num_frames: int | None) -> np.ndarray:
    """The pixels an answer is hashed and judged on: a PNG's own, or a video's lossless frames
    (`frames`, `num_frames` of them stacked), never what its MP4 decodes to."""
    if MediaType(media_type) is MediaType.MP4:
        if frames is None:
            raise MediaError("a video answer carries its frames losslessly in `frames` (a stacked PNG); it has none")
        return decode_frames(frames, num_frames or 0)
    return decode(data, media_type)


def extension(media_type: MediaType | str) -> str:
    return {MediaType.PNG: "png", MediaType.MP4: "mp4", MediaType.TEXT: "txt"}[MediaType(media_type)]


def mean_squared_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared difference of two uint8 frame stacks of one shape, in levels squared (an encoder's fidelity)."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
