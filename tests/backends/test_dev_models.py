"""The shipped dev checkpoints behave like models: the prompt and the guidance change the picture
far beyond what another honest environment does (issue 9). Measured on the built checkpoints."""

import json

import numpy as np
import pytest

from app.backends.diffusers import devtrain
from app.backends.registry import SERVED_MODELS, checkpoint_path, served_spec
from app.generation.service import get_engine
from app.protocol.request import parse_request
from app.verification.fingerprint import similarity
from app.verification.thresholds import CALIBRATION

from ..helpers.small_requests import small_request

PROMPTS = ("a fox running at sunset, oil painting", "a whale flying at night, oil painting")


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return 1.0 - similarity(a, b)


def test_every_served_type_ships_trained_weights_and_builds_from_them(settings):
    for model in SERVED_MODELS:
        assert devtrain.trained_weights(served_spec(model)) is not None, f"{model} has no shipped weights"
        manifest = json.loads((checkpoint_path(settings, model) / "seedgrid-dev-manifest.json").read_text())
        assert manifest["weights"].startswith("trained:"), f"{model}'s dev checkpoint was built from random weights"


@pytest.mark.parametrize("model", SERVED_MODELS)
def test_the_prompt_and_the_guidance_change_the_picture_far_beyond_honest_drift(settings, model):
    engine = get_engine(model, settings)

    def render(prompt: str, **params) -> np.ndarray:
        raw = {**small_request(model, seed=4242, **params), "prompt": prompt}
        return engine.render(parse_request(raw))[0]

    base = render(PROMPTS[0], guidance=7.5)
    honest = json.loads(CALIBRATION.read_text())["models"][model]["honest"]["max"]
    floor = max(100 * honest, 1e-3)  # far above what another thread count or ISA does
    assert distance(base, render(PROMPTS[1], guidance=7.5)) > floor, "another prompt, same seed"
    assert distance(base, render(PROMPTS[0], guidance=1.0)) > floor, "no guidance"
    assert float(base.std()) > 10, "a picture, not a flat field"
