"""The verification ladder: exact pixel hash, then cosine similarity, else failure.

Everything is computed from the bytes the miner returned; nothing the miner claims about
its output (hash, features) is trusted. Every verdict records its path and why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from app.generation import media
from app.verification.fingerprint import similarity

BLANK_STD = 2.0  # uint8 standard deviation below which an output is a flat field


@dataclass(frozen=True)
class Verdict:
    path: str  # exact | tolerant | failed
    similarity: float | None
    reason: str
    pixel_sha256: str | None = None  # of the miner's output, computed here

    @property
    def verified(self) -> bool:
        return self.path != "failed"

    def to_dict(self) -> dict:
        return asdict(self)


def failed(reason: str, similarity_: float | None = None, pixel_sha256: str | None = None) -> Verdict:
    return Verdict("failed", similarity_, reason, pixel_sha256)


def verify(*, data: bytes, media_type: str, expected_pixels: np.ndarray, expected_sha256: str,
           expected_media_type: str, threshold: float, duplicate_of: str | None = None) -> Verdict:
    """Judge one response against the validator's reproduction."""
    if media_type != expected_media_type:
        return failed(f"media type {media_type!r}, expected {expected_media_type!r}")
    try:
        pixels = media.decode(data, media_type)
    except (media.MediaError, ValueError) as exc:
        return failed(f"unreadable output: {exc}")
    digest = media.pixel_sha256(pixels)
    if pixels.shape != expected_pixels.shape:
        f, h, w, _ = pixels.shape
        ef, eh, ew, _ = expected_pixels.shape
        return failed(f"output is {w}x{h}x{f} frames, expected {ew}x{eh}x{ef}", pixel_sha256=digest)
    if float(pixels.std()) < BLANK_STD:
        return failed("blank output (a flat field)", pixel_sha256=digest)
    if duplicate_of:
        return failed(f"the same pixels already answered {duplicate_of} (replayed or copied)", pixel_sha256=digest)
    if digest == expected_sha256:
        return Verdict("exact", 1.0, "pixel hash equals the reproduction's", digest)
    sim = similarity(pixels, expected_pixels)
    # distances (1 - similarity) read better than similarities this close to 1
    if sim >= threshold:
        return Verdict("tolerant", sim, f"distance {1 - sim:.2e} within the threshold's {1 - threshold:.2e}", digest)
    return failed(f"distance {1 - sim:.2e} beyond the threshold's {1 - threshold:.2e}", sim, digest)
