"""The pixel verifier (PNG images, MP4 videos): exact pixel hash, then cosine similarity, else failure.

Everything is computed from the bytes the miner returned; nothing the miner claims about
its output (hash, features) is trusted.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from app.protocol import media
from app.verification.fingerprint import similarity
from app.verification.verdict import Verdict, failed

BLANK_STD = 2.0  # uint8 standard deviation below which an output is a flat field


def verify(*, data: bytes, media_type: str, expected_pixels: np.ndarray, expected_sha256: str,
           expected_media_type: str, threshold: float, threshold_basis: str = "",
           duplicate_of: str | Callable[[str], str | None] | None = None) -> Verdict:
    """Judge one response against the validator's reproduction.

    duplicate_of: where the same pixels answered before (a replay or a copy), or a lookup
    called with this output's pixel hash; the bytes are decoded once either way.
    """
    try:
        pixels, unreadable = media.decode(data, media_type), None
    except (media.MediaError, ValueError) as exc:
        pixels, unreadable = None, exc
    if media_type != expected_media_type:
        return failed(f"media type {media_type!r}, expected {expected_media_type!r}", well_formed=pixels is not None)
    if pixels is None:
        return failed(f"unreadable output: {unreadable}", well_formed=False)
    digest = media.pixel_sha256(pixels)
    if pixels.shape != expected_pixels.shape:
        f, h, w, _ = pixels.shape
        ef, eh, ew, _ = expected_pixels.shape
        return failed(f"output is {w}x{h}x{f} frames, expected {ew}x{eh}x{ef}", pixel_sha256=digest)
    if float(pixels.std()) < BLANK_STD:
        return failed("blank output (a flat field)", pixel_sha256=digest)
    duplicate = duplicate_of(digest) if callable(duplicate_of) else duplicate_of
    if duplicate:
        return failed(f"the same pixels already answered {duplicate} (replayed or copied)", pixel_sha256=digest)
    if digest == expected_sha256:
        return Verdict("exact", 1.0, "pixel hash equals the reproduction's", digest)
    sim = similarity(pixels, expected_pixels)
    # distances (1 - similarity) read better than similarities this close to 1
    basis = f" ({threshold_basis})" if threshold_basis else ""
    if sim >= threshold:
        return Verdict("tolerant", sim, f"distance {1 - sim:.2e} within the threshold's {1 - threshold:.2e}{basis}",
                       digest)
    return failed(f"distance {1 - sim:.2e} beyond the threshold's {1 - threshold:.2e}{basis}", sim, digest)
