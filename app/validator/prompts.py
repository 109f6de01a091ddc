"""Synthetic challenge prompts: a seeded generator with varied subjects, styles and settings.

Prompts use words the CLIP vocabulary knows well, stay far below 77 tokens, and are
reproducible from their seed (a round's prompt can be regenerated for an audit). An
optional challenge service (SEEDGRID_CHALLENGE_SERVICE_URL, GET -> {"prompt": ...})
replaces them; when it fails, the built-in generator answers and the failure is logged.
"""

from __future__ import annotations

import logging
import random

log = logging.getLogger(__name__)

SUBJECTS = ["an old fisherman", "a red fox", "a knight in silver armor", "a lighthouse", "a cyberpunk street market",
            "a snowy mountain village", "a robot reading a book", "a dragon over a castle", "a cat on a windowsill",
            "an astronaut in a garden", "a samurai under cherry trees", "a steampunk airship", "a tiger in the jungle",
            "a wizard holding a glowing crystal", "a wooden cabin by a lake", "a whale in a nebula"]
ACTIONS = ["", "standing", "sitting", "running", "flying", "walking", "looking at the sky", "holding a lantern"]
SETTINGS = ["at sunset", "in the rain", "at night", "in a misty forest", "on a beach", "in the desert",
            "under the stars", "in winter", "at dawn", "in a neon city"]
STYLES = ["cinematic", "oil painting", "watercolor", "anime", "photorealistic", "pixel art", "concept art",
          "digital art", "pencil sketch", "vintage photo"]
LIGHTING = ["golden hour", "soft lighting", "dramatic lighting", "volumetric light", "rim lighting", "moody"]
DETAILS = ["highly detailed", "8k", "masterpiece", "sharp focus", "35mm", "bokeh", "intricate"]


def synthetic_prompt(seed: int) -> str:
    rng = random.Random(seed)
    head = " ".join(p for p in (rng.choice(SUBJECTS), rng.choice(ACTIONS), rng.choice(SETTINGS)) if p)
    tail = [rng.choice(STYLES), rng.choice(LIGHTING), *rng.sample(DETAILS, 2)]
    return ", ".join([head, *tail])


def challenge_prompt(seed: int, service_url: str | None = None, timeout: float = 3.0) -> str:
    if service_url:
        import httpx

        try:
            resp = httpx.get(service_url, params={"seed": seed}, timeout=timeout)
            resp.raise_for_status()
            prompt = resp.json().get("prompt")
            if isinstance(prompt, str) and prompt.strip():
                return prompt.strip()[:1000]
            log.warning("challenge service %s returned no prompt; using the built-in generator", service_url)
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("challenge service %s failed (%s); using the built-in generator", service_url, exc)
    return synthetic_prompt(seed)
