"""The calibrated trajectory tolerances hold on a fresh sample: 24 challenges per SD1.5 type (other seeds
than the calibration's), honest trajectories recorded on another thread count and another CPU ISA pass,
and every cheat's re-run step or image lands beyond them (app/testkit/trajectory_calibration.py)."""

import json

import pytest

from app.testkit.trajectory_calibration import SD15_TYPES, measure
from app.validator.trajectory_judge import CALIBRATION

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("model", SD15_TYPES)
def test_honest_miners_elsewhere_pass_and_every_cheat_fails(settings, model):
    tol = json.loads(CALIBRATION.read_text())
    row = measure(model, 24, settings, isa=True, seed=23, log=lambda _: None)
    assert set(row["honest_step"]) == {"threads", "isa"}
    assert max(row["honest_step"].values()) <= tol["step_tolerance"], row
    assert max(row["honest_pixel_gap"].values()) <= tol["pixel_tolerance"], row
    for cheat, closest in row["cheats"].items():
        limit = tol["pixel_tolerance"] if cheat == "other_image" else tol["step_tolerance"]
        assert closest > limit, (cheat, closest, limit)
