"""Synthetic challenge prompts: a seeded generator with varied subjects, styles and settings.

Prompts use words the CLIP vocabulary knows well, stay far below 77 tokens, and are
reproducible from their seed (a round's prompt can be regenerated for an audit).
`synthetic_prompt` is the fixed template the dev checkpoints were trained on (train-dev)
and the calibration draws; `challenge_prompt` varies the shape as people do (a bare
subject, "oil painting of ...", a list of tags, any casing), so that the prompt's shape
does not tell a miner a challenge from an organic job. An
optional challenge service (SEEDGRID_CHALLENGE_SERVICE_URL, GET -> {"prompt": ...})
replaces them; when it fails, the built-in generator answers and the failure is logged.

`challenge_params` does the same for the parameters: half the time those of a recent
organic job of the model type (what clients really ask), otherwise the configured ones
with guidance +-2 and steps +-1 (the spread every calibration challenge draws).
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


ORGANIC_SHARE = 0.5  # of challenges that copy a recent organic job's params, when there are any


def challenge_params(configured: dict, organic: list[dict], rng: random.Random) -> dict:
    """A challenge's params: a recent organic job's (`organic`), or the configured ones varied
    within the spread the verification calibration measured (`vary_params`)."""
    if organic and rng.random() < ORGANIC_SHARE:
        return dict(rng.choice(organic))
    return vary_params(configured, rng)


GUIDANCE_STEPS = (-2.0, -1.0, 0.0, 1.0, 2.0)  # around the params' guidance
STEPS_STEPS = (-1, 0, 0, 1)


def vary_params(params: dict, rng: random.Random) -> dict:
    """Guidance +-2 and steps +-1 around `params`: the spread each calibration challenge draws."""
    out = dict(params)
    out["guidance"] = round(max(1.5, out["guidance"] + rng.choice(GUIDANCE_STEPS)), 1)
    out["steps"] = max(2, out["steps"] + rng.choice(STEPS_STEPS))
    return out


def synthetic_prompt(seed: int) -> str:
    rng = random.Random(seed)
    head = " ".join(p for p in (rng.choice(SUBJECTS), rng.choice(ACTIONS), rng.choice(SETTINGS)) if p)
    tail = [rng.choice(STYLES), rng.choice(LIGHTING), *rng.sample(DETAILS, 2)]
    return ", ".join([head, *tail])


def varied_prompt(seed: int) -> str:
    """A prompt in one of the shapes people write, from the same vocabulary."""
    rng = random.Random(f"varied:{seed}")
    subject, setting, style = rng.choice(SUBJECTS), rng.choice(SETTINGS), rng.choice(STYLES)
    action = rng.choice(ACTIONS)
    details = rng.sample(DETAILS, rng.randrange(0, 4))
    shape = rng.randrange(6)
    if shape == 0:
        text = subject
    elif shape == 1:
        text = f"{style} of {subject} {setting}"
    elif shape == 2:
        text = ", ".join([" ".join(p for p in (subject, action, setting) if p), style, *details])
    elif shape == 3:
        text = ", ".join([subject, setting, rng.choice(LIGHTING), *details])
    elif shape == 4:
        text = f"{subject} {action or 'standing'} {setting}, {style}".strip()
    else:
        text = synthetic_prompt(seed)
    if rng.random() < 0.3:
        text = text[:1].upper() + text[1:]
    return text


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
    return varied_prompt(seed)


# A text challenge's sampling: greedy or sampled, truncated by top_p or not (the calibration draws the same)
TEXT_TEMPERATURES = (0.0, 0.5, 0.7, 1.0)
TEXT_TOP_PS = (0.9, 0.95, 1.0)


def text_challenge(model: str, seed: int, rng: random.Random, kind: str = "challenge"):
    """A text model type's challenge: a question or instruction of the dev world's kinds
    (app/llm/devworld.challenge_messages, phrased as people do), max_tokens bounded per model type."""
    from app.llm.devworld import challenge_messages
    from app.protocol.catalogue import get_spec
    from app.protocol.text import parse_text_request

    bounds = get_spec(model).text
    temperature = rng.choice(TEXT_TEMPERATURES)
    return parse_text_request({"model": model, "kind": kind, "seed": seed, "messages": challenge_messages(seed),
                               "params": {"max_tokens": bounds.challenge_max_tokens, "temperature": temperature,
                                          "top_p": 1.0 if temperature == 0 else rng.choice(TEXT_TOP_PS),
                                          "top_logprobs": bounds.top_logprobs}})


ASPECT_RATIOS = ("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3")  # NicheImage's GoJourney challenges drew these


def external_challenge(model: str, seed: int, rng: random.Random, kind: str = "challenge",
                       service_url: str | None = None):
    """An external image type's challenge: a seeded prompt with a random `--ar` flag (the provider
    must be asked exactly this; app/verification/external.py)."""
    from app.protocol.external import parse_external_request

    prompt = f"{challenge_prompt(seed, service_url)} --ar {rng.choice(ASPECT_RATIOS)}"
    return parse_external_request({"model": model, "kind": kind, "seed": seed, "prompt": prompt})
