"""The pixel verifier (PNG images, MP4 videos): exact pixel hash, then cosine similarity, else failure.

Everything is computed from the bytes the miner returned; nothing the miner claims about
its output (hash, features) is trusted. A video is judged on the lossless frames the
answer carries beside its MP4 (`frames`), never through the encoder: re-encoding frames
that differ by one level moves them as far as a cheat (docs/BENCHMARKS.md). The MP4 must
still show those frames: its mean squared error to them stays within MP4_MAX_MSE.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from app.protocol import media
from app.verification.fingerprint import similarity
from app.verification.verdict import Verdict, failed

BLANK_STD = 2.0  # uint8 standard deviation below which an output is a flat field
# How far an honest MP4 may land from its own lossless frames, as the mean squared error
# in levels (an encoder's fidelity is a pixel matter; the perceptual embedding let a
# mirrored video pass). Over the calibration's 24 TextToVideo challenges (calibration.json,
# "mp4_fidelity") the recipe (CRF 2) measured at most 17.1 (PSNR 35.8 dB), CRF 8 18.0,
# another preset 17.4; 200 clears them x11 (a test keeps it x10 above). An MP4 of the
# mirrored frames, or of another seed's, measured 500 to 3,900 (PSNR 21 to 12 dB) over six.
MP4_MAX_MSE = 200.0


def _video_pixels(data: bytes, frames: bytes | None, expected_frames: int) -> tuple[np.ndarray, str | None]:
    """The lossless frames of a video answer, checked against its MP4; (pixels, why they are refused)."""
    pixels = media.answer_pixels(data, media.MediaType.MP4, frames, expected_frames)
    shown = media.decode(data, media.MediaType.MP4)
    if shown.shape != pixels.shape:
        return pixels, f"the MP4 has {shown.shape[0]} frames of {shown.shape[2]}x{shown.shape[1]}, its frames " \
                       f"{pixels.shape[0]} of {pixels.shape[2]}x{pixels.shape[1]}"
    error = media.mean_squared_error(shown, pixels)
    if error > MP4_MAX_MSE:
        return pixels, f"the MP4 does not show its frames: mean squared error {error:.0f} beyond {MP4_MAX_MSE:.0f}"
    return pixels, None


def verify(*, data: bytes, media_type: str, expected_pixels: np.ndarray, expected_sha256: str,
           expected_media_type: str, threshold: float, threshold_basis: str = "",
           duplicate_of: str | Callable[[str], str | None] | None = None, frames: bytes | None = None) -> Verdict:
    """Judge one response against the validator's reproduction.

    duplicate_of: where the same pixels answered before (a replay or a copy), or a lookup
    called with this output's pixel hash; the bytes are decoded once either way. Asked only
    of an output that is not the reproduction itself: pixels equal to this ask's ground truth
    are its honest answer, wherever else they appeared (a client asking the same job twice).
    frames: a video answer's lossless frames (media.encode_frames), what it is judged on.
    """
    mismatch = None
    try:
        if media_type == media.MediaType.MP4.value:
            pixels, mismatch = _video_pixels(data, frames, expected_pixels.shape[0])
        else:
            pixels = media.decode(data, media_type)
        unreadable = None
    except (media.MediaError, ValueError) as exc:
        pixels, unreadable = None, exc
    if media_type != expected_media_type:
        return failed(f"media type {media_type!r}, expected {expected_media_type!r}", well_formed=pixels is not None)
    if pixels is None:
        return failed(f"unreadable output: {unreadable}", well_formed=False)
    digest = media.pixel_sha256(pixels)
    if mismatch:
        return failed(mismatch, pixel_sha256=digest)
    if pixels.shape != expected_pixels.shape:
        f, h, w, _ = pixels.shape
        ef, eh, ew, _ = expected_pixels.shape
        return failed(f"output is {w}x{h}x{f} frames, expected {ew}x{eh}x{ef}", pixel_sha256=digest)
    if float(pixels.std()) < BLANK_STD:
        return failed("blank output (a flat field)", pixel_sha256=digest)
    if digest == expected_sha256:  # this ask's own pixels, however the miner came by them
        return Verdict("exact", 1.0, "pixel hash equals the reproduction's", digest)
    duplicate = duplicate_of(digest) if callable(duplicate_of) else duplicate_of
    if duplicate:
        return failed(f"the same pixels already answered {duplicate} (replayed or copied)", pixel_sha256=digest)
    sim = similarity(pixels, expected_pixels)
    # distances (1 - similarity) read better than similarities this close to 1
    basis = f" ({threshold_basis})" if threshold_basis else ""
    if sim >= threshold:
        return Verdict("tolerant", sim, f"distance {1 - sim:.2e} within the threshold's {1 - threshold:.2e}{basis}",
                       digest)
    return failed(f"distance {1 - sim:.2e} beyond the threshold's {1 - threshold:.2e}{basis}", sim, digest)
