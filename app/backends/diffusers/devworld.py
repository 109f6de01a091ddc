"""The procedural world the dev checkpoints are trained on: captions drawn as coloured shapes.

A caption's words choose what is drawn, so a model trained on (caption, picture) pairs
responds to its prompt the way a real one does, at a scale a CPU can train in minutes:
- the subject picks a shape and its colour (a fox is an orange triangle, a whale a blue
  ellipse); a colour word overrides the colour;
- the setting picks the background (sunset: an orange-to-violet gradient, night: dark
  navy, rain: grey with streaks, under the stars: black with dots);
- the action picks the position, and for video the motion (running moves right, flying
  moves up);
- the style and lighting pick a rendering (pixel art is blocky, a pencil sketch grey,
  a vintage photo sepia, cinematic letterboxed, moody dark, golden hour warm).
The words are those of the validator's synthetic prompts (app/validator/prompts.py), so
a challenge prompt draws something recognisable. Unknown words draw nothing; what no
word fixes (position jitter, size, a missing colour) is left to the random generator,
which is what the seed decides at generation time.

Each model type has a house `look` (shaded, outlined, flat or pastel), so two checkpoints
of one architecture paint the same prompt differently, as two real checkpoints do.
"""

from __future__ import annotations

import re

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

LOOKS = ("shaded", "outlined", "flat", "pastel")

COLOURS = {
    "red": (210, 40, 40), "orange": (240, 130, 30), "yellow": (240, 220, 50), "green": (50, 170, 70),
    "blue": (40, 90, 220), "purple": (140, 60, 190), "pink": (240, 120, 180), "white": (240, 240, 240),
    "black": (25, 25, 25), "gold": (220, 180, 40), "golden": (220, 180, 40), "silver": (180, 185, 195),
}
# subject word -> (shape, colour)
SUBJECTS = {
    "fisherman": ("circle", (200, 160, 110)), "fox": ("triangle", (240, 120, 30)), "knight": ("square", (180, 185, 195)),
    "lighthouse": ("tower", (235, 235, 235)), "market": ("squares", (230, 60, 200)), "village": ("triangle", (120, 80, 60)),
    "mountain": ("triangle", (130, 130, 140)), "robot": ("square", (120, 130, 140)), "dragon": ("star", (60, 170, 60)),
    "castle": ("tower", (150, 140, 130)), "cat": ("circle", (40, 40, 40)), "astronaut": ("circle", (245, 245, 245)),
    "samurai": ("diamond", (200, 30, 40)), "airship": ("ellipse", (150, 100, 60)), "tiger": ("ellipse", (240, 140, 20)),
    "wizard": ("triangle", (130, 60, 200)), "cabin": ("square", (130, 80, 40)), "whale": ("ellipse", (50, 90, 200)),
    "lake": ("ellipse", (60, 120, 200)), "crystal": ("diamond", (120, 230, 240)), "book": ("square", (200, 180, 120)),
}
SHAPES = ("circle", "square", "triangle", "star", "ellipse", "diamond", "tower", "squares")
# setting word -> (top colour, bottom colour, pattern)
SETTINGS = {
    "sunset": ((250, 150, 60), (110, 50, 130), None), "rain": ((110, 115, 125), (80, 85, 95), "streaks"),
    "night": ((15, 20, 60), (30, 35, 80), None), "misty": ((150, 170, 150), (40, 90, 50), None),
    "beach": ((120, 190, 240), (230, 210, 150), "split"), "desert": ((240, 210, 150), (210, 160, 90), None),
    "stars": ((5, 5, 20), (10, 10, 30), "dots"), "winter": ((225, 235, 250), (250, 250, 255), None),
    "dawn": ((240, 170, 190), (170, 160, 220), None), "neon": ((40, 10, 50), (20, 5, 40), "lines"),
}
# action word -> (centre x, centre y) in canvas fractions, and motion per video frame
ACTIONS = {
    "standing": ((0.5, 0.55), (0.0, 0.0)), "sitting": ((0.5, 0.72), (0.0, 0.0)), "running": ((0.3, 0.6), (0.06, 0.0)),
    "flying": ((0.5, 0.4), (0.0, -0.05)), "walking": ((0.35, 0.6), (0.03, 0.0)), "looking": ((0.3, 0.7), (0.0, 0.0)),
    "holding": ((0.5, 0.55), (0.0, 0.0)),
}


class Scene:
    """What a caption fixes, with the rest drawn from `rng`."""

    def __init__(self, caption: str, rng: np.random.Generator):
        words = re.findall(r"[a-z]+", caption.lower())
        known = [w for w in words if w in SUBJECTS]
        self.shape, colour = SUBJECTS[known[0]] if known else (SHAPES[rng.integers(len(SHAPES))], None)
        named = [w for w in words if w in COLOURS]
        if named:
            colour = COLOURS[named[0]]
        self.colour = np.array(colour if colour else rng.integers(30, 240, 3), dtype=np.float32)
        setting = next((SETTINGS[w] for w in words if w in SETTINGS), None)
        if setting is None:
            top, bottom = rng.integers(40, 220, 3), rng.integers(40, 220, 3)
            setting = (tuple(top), tuple(bottom), None)
        self.top, self.bottom, self.pattern = (np.array(setting[0], np.float32), np.array(setting[1], np.float32),
                                               setting[2])
        action = next((ACTIONS[w] for w in words if w in ACTIONS), None)
        (cx, cy), motion = action if action else ((rng.uniform(0.3, 0.7), rng.uniform(0.35, 0.7)), (0.0, 0.0))
        self.centre = (cx + rng.uniform(-0.06, 0.06), cy + rng.uniform(-0.06, 0.06))
        self.motion = motion if action else tuple(rng.uniform(-0.02, 0.02, 2))
        self.size = rng.uniform(0.22, 0.34)
        self.lantern = "lantern" in words
        self.words = set(words)
        self.texture_seed = int(rng.integers(2**31))


def _background(scene: Scene, h: int, w: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    img = np.broadcast_to(scene.top * (1 - t) + scene.bottom * t, (h, w, 3)).copy()
    rng = np.random.default_rng(scene.texture_seed)
    if scene.pattern == "split":
        img[int(h * 0.6):] = scene.bottom
        img[: int(h * 0.6)] = scene.top
    elif scene.pattern == "dots":
        for y, x in zip(rng.integers(0, h, 24 * h * w // 16384 + 6), rng.integers(0, w, 24 * h * w // 16384 + 6)):
            img[max(0, y - 1): y + 1, max(0, x - 1): x + 1] = 245
    elif scene.pattern == "streaks":
        yy, xx = np.mgrid[0:h, 0:w]
        img[((xx + yy // 2) % max(6, w // 12)) == 0] += 60
    elif scene.pattern == "lines":
        img[:, :: max(8, w // 8)] = (250, 40, 220)
        img[:: max(8, h // 6), :] = (40, 230, 250)
    return img


def _shape_mask(shape: str, cx: float, cy: float, r: float, h: int, w: int) -> Image.Image:
    mask = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(mask)
    x, y, s = cx * w, cy * h, r * min(w, h)
    if shape == "circle":
        d.ellipse([x - s, y - s, x + s, y + s], fill=255)
    elif shape == "square":
        d.rectangle([x - s * 0.85, y - s * 0.85, x + s * 0.85, y + s * 0.85], fill=255)
    elif shape == "triangle":
        d.polygon([(x, y - s), (x - s, y + s * 0.8), (x + s, y + s * 0.8)], fill=255)
    elif shape == "ellipse":
        d.ellipse([x - s * 1.3, y - s * 0.6, x + s * 1.3, y + s * 0.6], fill=255)
    elif shape == "diamond":
        d.polygon([(x, y - s), (x + s * 0.7, y), (x, y + s), (x - s * 0.7, y)], fill=255)
    elif shape == "tower":
        d.rectangle([x - s * 0.3, y - s * 1.3, x + s * 0.3, y + s * 1.3], fill=255)
    elif shape == "star":
        pts = [(x + (s if i % 2 == 0 else s * 0.45) * np.sin(i * np.pi / 5),
                y - (s if i % 2 == 0 else s * 0.45) * np.cos(i * np.pi / 5)) for i in range(10)]
        d.polygon(pts, fill=255)
    else:  # squares: a market of small stalls
        for i in range(3):
            for j in range(2):
                qx, qy = x + (i - 1) * s * 0.8, y + (j - 0.5) * s * 0.8
                d.rectangle([qx - s * 0.3, qy - s * 0.3, qx + s * 0.3, qy + s * 0.3], fill=255)
    return mask


def _paint(img: np.ndarray, mask: Image.Image, colour: np.ndarray, look: str, cx: float, cy: float) -> None:
    m = np.asarray(mask, dtype=np.float32)[..., None] / 255.0
    h, w = m.shape[:2]
    fill = np.broadcast_to(colour, img.shape).copy()
    if look == "pastel":
        fill = fill * 0.55 + 255 * 0.45
    if look == "shaded":  # lit from the upper left
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        dist = np.hypot(xx / w - (cx - 0.08), yy / h - (cy - 0.08))
        fill *= np.clip(1.25 - 2.2 * dist, 0.45, 1.25)[..., None]
    img[:] = img * (1 - m) + fill * m
    if look in ("outlined", "flat"):
        width = 3 if look == "outlined" else 1
        edge = np.asarray(mask.filter(ImageFilter.MaxFilter(2 * width + 1)), dtype=np.float32)[..., None] / 255.0
        ring = np.clip(edge - m, 0.0, 1.0)
        img[:] = img * (1 - ring) + 20 * ring


def _finish(img: np.ndarray, scene: Scene) -> np.ndarray:
    words, h, w = scene.words, img.shape[0], img.shape[1]
    if "golden" in words or "warm" in words:
        img *= np.array([1.12, 1.0, 0.78], np.float32)
    if "moody" in words:
        img *= 0.62
    if "soft" in words:
        img = img.mean() + (img - img.mean()) * 0.7
    if "dramatic" in words:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        img *= np.clip(1.35 - 1.4 * np.hypot(xx / w - 0.5, yy / h - 0.5), 0.25, 1.0)[..., None]
    if "volumetric" in words:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        img += 70 * (np.abs((xx / w - yy / h) - 0.1) < 0.08)[..., None]
    if "oil" in words:
        img += np.random.default_rng(scene.texture_seed).normal(0, 12, img.shape).astype(np.float32)
    if "pencil" in words:
        img[:] = img.mean(axis=2, keepdims=True)
    if "vintage" in words:
        grey = img.mean(axis=2, keepdims=True)
        img = grey * np.array([1.07, 0.95, 0.74], np.float32)
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    if "watercolor" in words:
        out = out.filter(ImageFilter.GaussianBlur(max(1.0, w / 96)))
    if "pixel" in words:
        cell = max(2, w // 24)
        out = out.resize((max(1, w // cell), max(1, h // cell)), Image.Resampling.BOX).resize((w, h), Image.Resampling.NEAREST)
    arr = np.asarray(out).copy()
    if "cinematic" in words:
        bar = h // 8
        arr[:bar] = 0
        arr[h - bar:] = 0
    return arr


def render(caption: str, height: int, width: int, rng: np.random.Generator, *, look: str = "shaded",
           frames: int = 1) -> np.ndarray:
    """(frames, height, width, 3) uint8: the picture (or clip) this caption describes."""
    if look not in LOOKS:
        raise ValueError(f"look must be one of {', '.join(LOOKS)}, got {look!r}")
    scene = Scene(caption, rng)
    out = []
    for f in range(frames):
        cx, cy = scene.centre[0] + scene.motion[0] * f, scene.centre[1] + scene.motion[1] * f
        img = _background(scene, height, width)
        _paint(img, _shape_mask(scene.shape, cx, cy, scene.size, height, width), scene.colour, look, cx, cy)
        if scene.lantern:
            _paint(img, _shape_mask("circle", cx + scene.size * 0.9, cy, scene.size * 0.25, height, width),
                   np.array((255, 220, 90), np.float32), "flat", cx, cy)
        out.append(_finish(img, scene))
    return np.stack(out)
