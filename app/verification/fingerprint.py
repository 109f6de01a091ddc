"""A perceptual embedding computed by the validator from the returned bytes alone.

No weights can be downloaded, so the default embedding is a real but weight-free
perceptual feature: for each frame, box-filtered thumbnails of every colour channel at
several scales (4 to 128 pixels), each mean-centred (a global colour or brightness shift
says nothing about content) and scaled to unit length (each scale counts the same), plus
the same for the image's gradient magnitude at the finest scales (texture and edges that
an upscaled or blurred cheat loses). Cosine similarity of two embeddings is 1 for the
same pixels, slightly below 1 for the same generation rendered with another thread
count or CPU ISA, and far lower for a different seed, step count, scheduler or checkpoint
(bench/calibrate_verification.py measures where).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

SCALES = (4, 8, 16, 32, 64, 128)
EDGE_SCALES = (32, 64, 128)
MAX_FRAMES = 8  # video: frames sampled evenly, compared pairwise


def _thumb(channel: np.ndarray, size: int) -> np.ndarray:
    img = Image.fromarray(channel.astype(np.float32), mode="F")
    h, w = channel.shape
    # keep the aspect ratio: the longer side gets `size` cells
    tw, th = (size, max(1, round(size * h / w))) if w >= h else (max(1, round(size * w / h)), size)
    return np.asarray(img.resize((tw, th), Image.Resampling.BOX), dtype=np.float64)


def _unit(v: np.ndarray) -> np.ndarray:
    v = v - v.mean()
    n = np.linalg.norm(v)
    return v / n if n > 1e-9 else np.zeros_like(v)


def frame_embedding(frame: np.ndarray) -> np.ndarray:
    """frame: uint8 (H, W, 3) -> unit float64 vector."""
    x = frame.astype(np.float32) / 255.0
    parts = []
    for c in range(3):
        for s in SCALES:
            parts.append(_unit(_thumb(x[..., c], s)))
    gray = x.mean(axis=2)
    gy, gx = np.gradient(gray)
    edges = np.hypot(gx, gy)
    for s in EDGE_SCALES:
        parts.append(_unit(_thumb(edges, s)))
    v = np.concatenate([p.ravel() for p in parts])
    n = np.linalg.norm(v)
    return v / n if n > 1e-9 else v


def sample_frames(n: int, limit: int = MAX_FRAMES) -> list[int]:
    if n <= limit:
        return list(range(n))
    return sorted({round(i * (n - 1) / (limit - 1)) for i in range(limit)})


def embeddings(pixels: np.ndarray) -> np.ndarray:
    """(F, H, W, 3) uint8 -> (k, D) embeddings of k sampled frames."""
    return np.stack([frame_embedding(pixels[i]) for i in sample_frames(pixels.shape[0])])


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """The lowest per-frame cosine similarity of two outputs of the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"cannot compare outputs of shapes {a.shape} and {b.shape}")
    ea, eb = embeddings(a), embeddings(b)
    return float(np.min(np.sum(ea * eb, axis=1)))
