"""Every bad input is refused with its field named."""

import pytest

from app.protocol.errors import InvalidRequest
from app.protocol.request import parse_request


def good(**changes):
    base = {"model": "RealisticVision", "prompt": "a cat", "seed": 7, "params": {}}
    params = changes.pop("params", {})
    return {**base, **changes, "params": {**base["params"], **params}}


@pytest.mark.parametrize(
    "raw, field, words",
    [
        (good(model="NoSuchModel"), "model", "unknown model type"),
        (good(model="GoJourney"), "model", "not a seeded"),
        (good(params={"steps": 51}), "params.steps", "between 1 and 50"),
        (good(params={"steps": 0}), "params.steps", "between 1 and 50"),
        (good(params={"steps": "ten"}), "params.steps", "integer"),
        (good(params={"width": 500}), "params.width", "multiple of 8"),
        (good(params={"height": 4096}), "params.height", "between"),
        (good(params={"width": 128}), "params.width", "between"),
        (good(model="TextToVideo", params={"num_frames": 65}), "params.num_frames", "between 1 and 64"),
        (good(params={"num_frames": 8}), "params.num_frames", "video models only"),
        (good(params={"scheduler": "plms"}), "params.scheduler", "unknown scheduler"),
        (good(params={"guidance": 31}), "params.guidance", "between"),
        (good(params={"bogus": 1}), "params.bogus", "not a known field"),
        (good(prompt=""), "prompt", "must not be empty"),
        (good(prompt="   "), "prompt", "must not be empty"),
        (good(prompt="x" * 1001), "prompt", "1000"),
        (good(prompt=5), "prompt", "string"),
        (good(negative_prompt="y" * 1001), "negative_prompt", "1000"),
        (good(seed=-1), "seed", "between"),
        (good(seed=2**32), "seed", "between"),
        (good(seed=True), "seed", "integer"),
        (good(kind="attack"), "kind", "challenge, inference"),
        (good(extra=1), "extra", "not a known field"),
        ({"prompt": "a", "seed": 1}, "model", "required"),
        (good(request_id="x" * 200), "request_id", "128"),
        ("not a dict", "body", "JSON object"),
    ],
)
def test_bad_input_names_the_field(raw, field, words):
    with pytest.raises(InvalidRequest) as err:
        parse_request(raw)
    assert err.value.field == field
    assert words in err.value.message
    assert field in str(err.value)


def test_missing_seed_and_prompt_are_named():
    for missing in ("seed", "prompt"):
        raw = good()
        del raw[missing]
        with pytest.raises(InvalidRequest) as err:
            parse_request(raw)
        assert err.value.field == missing


def test_defaults_are_filled_and_round_trip():
    req = parse_request(good(model="TextToVideo"))
    assert (req.params.num_frames, req.params.fps, req.params.steps) == (16, 8, 25)
    assert parse_request(req.to_dict()) == req


def test_invalid_request_survives_celery_json_round_trip():
    # Celery rebuilds exceptions from their args: both must be kept.
    exc = InvalidRequest("params.steps", "must be between 1 and 50, got 60")
    rebuilt = InvalidRequest(*exc.args)
    assert (rebuilt.field, rebuilt.message) == (exc.field, exc.message)
