"""Challenge prompts: reproducible from their seed, and in the shapes people write."""

import random

from app.validator.prompts import (
    challenge_params,
    challenge_prompt,
    synthetic_prompt,
)


def test_challenge_prompts_are_reproducible_and_vary_in_shape():
    prompts = [challenge_prompt(seed) for seed in range(300)]
    assert prompts == [challenge_prompt(seed) for seed in range(300)]
    commas = {p.count(",") for p in prompts}
    assert {0, 1} <= commas and max(commas) >= 4, "bare subjects, short phrases and long tag lists"
    assert any(p[0].isupper() for p in prompts) and any(p[0].islower() for p in prompts)
    template = sum(p == synthetic_prompt(seed) for seed, p in enumerate(prompts))
    assert template < 100, "the fixed template is one shape among several"


def test_challenge_params_copy_organic_jobs_half_the_time_and_vary_the_rest():
    configured = {"steps": 4, "guidance": 3.0, "width": 256, "height": 256, "scheduler": "euler"}
    rng = random.Random(3)
    alone = [challenge_params(configured, [], rng) for _ in range(200)]
    assert {p["steps"] for p in alone} == {3, 4, 5} and {p["guidance"] for p in alone} == {1.5, 2.0, 3.0, 4.0, 5.0}
    assert all(p["width"] == 256 and p["scheduler"] == "euler" for p in alone), "only guidance and steps vary"
    organic = [{"steps": 20, "guidance": 6.5, "width": 512, "height": 768, "scheduler": "dpmpp_2m"}]
    mixed = [challenge_params(configured, organic, rng) for _ in range(200)]
    copied = sum(p == organic[0] for p in mixed)
    assert 60 < copied < 140, f"about half copy a client's params, got {copied} of 200"
    assert all(p == organic[0] or p["width"] == 256 for p in mixed)


def test_the_calibration_draws_the_spread_challenges_use():
    from app.testkit.calibration import challenges

    drawn = challenges("RealisticVision", 48)
    assert len({(r.params.steps, r.params.guidance) for r in drawn}) >= 6, "guidance and steps vary as in rounds"
