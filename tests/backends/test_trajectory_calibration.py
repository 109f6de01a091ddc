"""The calibrated trajectory tolerances hold on a fresh sample: 24 challenges per diffusion type, through
its pipelines (other seeds than the calibration's, and the SD1.5 types at another size), honest
trajectories recorded on another thread count and another CPU ISA pass, and every cheat's re-run
step, leaf 0 or image lands beyond them (app/testkit/trajectory_calibration.py)."""

import pytest

from app.protocol.catalogue import CATALOGUE
from app.testkit.trajectory_calibration import DIFFUSION_TYPES, measure
from app.validator.trajectory_judge import tolerances

pytestmark = pytest.mark.slow
TEST_SIZE = 256  # the SD1.5 types at another size than the calibration's (512): the tolerances hold there too


@pytest.mark.parametrize("model", DIFFUSION_TYPES)
def test_honest_miners_elsewhere_pass_and_every_cheat_fails(settings, model):
    step_tolerance, pixel_tolerance = tolerances(settings, model)  # what the judge applies to this type
    tol = {"step_tolerance": step_tolerance, "pixel_tolerance": pixel_tolerance}
    row = measure(model, 24, settings, isa=True, seed=23, size=TEST_SIZE, log=lambda _: None)
    assert set(row["honest_step"]) == {"threads", "isa"}
    assert row["pipelines"] == sorted(p.value for p in CATALOGUE[model].pipelines), "each of its pipelines"
    assert max(row["honest_step"].values()) <= tol["step_tolerance"], row
    assert max(row["honest_pixel_gap"].values()) <= tol["pixel_tolerance"], row
    for cheat, closest in row["cheats"].items():
        limit = tol["pixel_tolerance"] if cheat == "other_image" else tol["step_tolerance"]
        assert closest > limit, (cheat, closest, limit)
