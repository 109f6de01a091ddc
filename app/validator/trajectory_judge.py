"""Judge a diffusion answer by its trajectory (issue 14): open k random steps at the miner, check the
openings against the committed root, re-run those steps, check the seed's noise and the final latent.

The steps are drawn after the answer arrived (SystemRandom), so a miner cannot know which of
its steps will be checked. A refusal, an opening that does not match the root, or one that
comes after `open_timeout_s` fails the answer like a wrong image.
"""

from __future__ import annotations

import json
import random
from functools import lru_cache
from pathlib import Path

import numpy as np

from app.protocol import media
from app.protocol.client import MinerError
from app.protocol.request import parse_request
from app.verification.trajectory import Opening, step_distance
from app.verification.verdict import Verdict, failed

MAX_OPEN_REPLY = 16 * 1024 * 1024
CALIBRATION = Path(__file__).resolve().parent.parent / "verification" / "trajectory_calibration.json"


@lru_cache(maxsize=1)
def _calibrated() -> dict:
    return json.loads(CALIBRATION.read_text())


def tolerances(settings) -> tuple[float, float]:
    """(step, pixel) tolerances: the settings' where set, else the calibrated ones (bench/calibrate_trajectory.py)."""
    calibrated = _calibrated()
    return (settings.trajectory_tolerance or calibrated["step_tolerance"],
            settings.trajectory_pixel_tolerance if settings.trajectory_pixel_tolerance is not None
            else calibrated["pixel_tolerance"])


def judge_trajectory(v, *, axon: str, hotkey: str, request: dict, root: str, data: bytes,
                     rng: random.Random | None = None) -> Verdict:
    from app.backends.diffusers import trajectory as tr
    from app.generation.service import get_engine

    settings = v.settings
    step_tolerance, pixel_tolerance = tolerances(settings)
    req = parse_request(request)
    n, k = req.params.steps, min(settings.trajectory_k, req.params.steps)
    steps = sorted((rng or random.SystemRandom()).sample(range(n), k))
    pixels = media.decode(data, media.MediaType.PNG)
    sha = media.pixel_sha256(pixels)
    try:
        opened = v.client.request("POST", f"http://{axon}", "/v1/open", hotkey, {"root": root, "steps": steps},
                                  timeout=settings.open_timeout_s, max_bytes=MAX_OPEN_REPLY)
    except MinerError as exc:
        return failed(f"the trajectory was not opened at steps {steps}: {exc}", pixel_sha256=sha)
    try:
        leaves = {o.index: o for o in (Opening.from_wire(raw, f"leaves.{i}")
                                       for i, raw in enumerate(opened.get("leaves") or []))}
    except ValueError as exc:
        return failed(f"a malformed opening: {exc}", pixel_sha256=sha)
    wanted = {0, n, *steps, *(i + 1 for i in steps)}
    if opened.get("steps") != n or not wanted <= set(leaves):
        return failed(f"the opening lacks leaves {sorted(wanted - set(leaves))} of a {n}-step run", pixel_sha256=sha)
    wrong = [i for i in sorted(wanted) if not leaves[i].opens(root)]
    if wrong:
        return failed(f"leaves {wrong} do not match the committed trajectory root", pixel_sha256=sha)
    engine = get_engine(req.model, settings)
    if not np.array_equal(leaves[0].latent, tr.initial_latent(engine, req)):
        return failed("the trajectory does not start from the seed's noise", pixel_sha256=sha)
    distances = []
    for i in steps:
        try:
            after = tr.replay_step(engine, req, i, leaves[i].latent, leaves[i].state)
        except (ValueError, RuntimeError) as exc:
            return failed(f"step {i} cannot be re-run from its opening: {exc}", pixel_sha256=sha)
        distances.append(step_distance(after, leaves[i + 1].latent).relative_l2)
        if distances[-1] > step_tolerance:
            return failed(f"step {i} re-run lands {distances[-1]:.3g} from the committed next latent (tolerance "
                          f"{step_tolerance:g}): not this model's step", pixel_sha256=sha)
    decoded = tr.decode(engine, req, leaves[n].latent)
    if decoded.shape != pixels.shape:
        return failed("the final latent decodes to another size than the image", pixel_sha256=sha)
    gap = float(np.abs(decoded.astype(np.int16) - pixels.astype(np.int16)).mean())
    if gap > pixel_tolerance:
        return failed(f"the image is not the committed final latent's (mean |difference| {gap:.2f} levels, "
                      f"tolerance {pixel_tolerance:g})", pixel_sha256=sha)
    return Verdict("trajectory", 1.0, f"steps {steps} of {n} re-run within {max(distances):.2g} (tolerance "
                                      f"{step_tolerance:g}); the seed's noise; the final latent "
                                      f"decodes to the image (mean |difference| {gap:.2f})", pixel_sha256=sha)
