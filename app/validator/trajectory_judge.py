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
from app.protocol.catalogue import get_spec
from app.protocol.client import MinerError
from app.protocol.request import parse_request
from app.verification.trajectory import Opening, executed_steps, step_distance
from app.verification.verdict import Verdict, failed

MAX_OPEN_REPLY = 16 * 1024 * 1024
CALIBRATION = Path(__file__).resolve().parent.parent / "verification" / "trajectory_calibration.json"


@lru_cache(maxsize=1)
def _calibrated() -> dict:
    return json.loads(CALIBRATION.read_text())


def tolerances(settings, model: str | None = None) -> tuple[float, float]:
    """(step, pixel) tolerances: the settings' where set, else the model type's calibrated ones, else the
    tightest over every type (bench/calibrate_trajectory.py)."""
    calibrated = _calibrated()
    calibrated = next((row for row in calibrated.get("types", []) if row["model"] == model), calibrated)
    return (settings.trajectory_tolerance or calibrated["step_tolerance"],
            settings.trajectory_pixel_tolerance if settings.trajectory_pixel_tolerance is not None
            else calibrated["pixel_tolerance"])


def judge_trajectory(v, *, axon: str, hotkey: str, request: dict, root: str, data: bytes,
                     frames: bytes | None = None, rng: random.Random | None = None) -> Verdict:
    from app.backends.diffusers import trajectory as tr
    from app.generation.service import get_engine

    settings = v.settings
    rng = rng or random.SystemRandom()
    req = parse_request(request)
    step_tolerance, pixel_tolerance = tolerances(settings, req.model)
    n = executed_steps(req)
    steps = sorted(rng.sample(range(n), min(settings.trajectory_k, n)))
    detail: dict = {"path": "trajectory", "steps": steps, "of": n, "distances": []}
    pixels = media.answer_pixels(data, get_spec(req.model).media_type, frames, req.params.num_frames)
    sha = media.pixel_sha256(pixels)

    def fail(reason: str, *, measured: bool = False) -> Verdict:
        """`measured`: beyond a calibrated tolerance (disputable: a reproduction decides), not a broken proof."""
        return failed(reason, pixel_sha256=sha, detail={**detail, "disputable": measured})

    try:
        opened = v.client.request("POST", f"http://{axon}", "/v1/open", hotkey, {"root": root, "steps": steps},
                                  timeout=settings.open_timeout_s, max_bytes=MAX_OPEN_REPLY)
    except MinerError as exc:
        return fail(f"the trajectory was not opened at steps {steps}: {exc}")
    try:
        leaves = {o.index: o for o in (Opening.from_wire(raw, f"leaves.{i}")
                                       for i, raw in enumerate(opened.get("leaves") or []))}
    except ValueError as exc:
        return fail(f"a malformed opening: {exc}")
    wanted = {0, n, *steps, *(i + 1 for i in steps)}
    if opened.get("steps") != n or not wanted <= set(leaves):
        return fail(f"the opening lacks leaves {sorted(wanted - set(leaves))} of a {n}-step run")
    wrong = [i for i in sorted(wanted) if not leaves[i].opens(root)]
    if wrong:
        return fail(f"leaves {wrong} do not match the committed trajectory root")
    engine = get_engine(req.model, settings)
    prefix = tr.prepare(engine, req)
    start = prefix.leaf0()
    misshapen = [i for i in sorted(wanted) if leaves[i].latent.shape != start.shape]
    if misshapen:
        return fail(f"leaves {misshapen} are not latents of this request's size {start.shape}")
    if req.pipeline == "img2img":  # the init image encoded by our VAE: the encoder drifts like the UNet
        detail["start_distance"] = step_distance(leaves[0].latent, start).relative_l2
        if not detail["start_distance"] <= step_tolerance:  # NaN fails too
            return fail(f"the trajectory does not start from the init image noised with the seed's noise "
                        f"(distance {detail['start_distance']:.3g}, tolerance {step_tolerance:g})", measured=True)
    elif not np.array_equal(leaves[0].latent, start):
        return fail("the trajectory does not start from the seed's noise")
    for i in steps:
        try:
            after = tr.replay_step(engine, req, i, leaves[i].latent, leaves[i].state, prefix)
        except (ValueError, RuntimeError) as exc:
            return fail(f"step {i} cannot be re-run from its opening: {exc}")
        detail["distances"].append(step_distance(after, leaves[i + 1].latent).relative_l2)
        if not detail["distances"][-1] <= step_tolerance:  # NaN fails too
            return fail(f"step {i} re-run lands {detail['distances'][-1]:.3g} from the committed next latent "
                        f"(tolerance {step_tolerance:g}): not this model's step", measured=True)
    gap, where = _pixel_gap(engine, req, leaves[n], pixels, settings, rng, detail)
    if gap is None:
        return fail(where)
    if not gap <= pixel_tolerance:
        return fail(f"the image is not the committed final latent's ({where}: mean |difference| {gap:.2f} levels, "
                    f"tolerance {pixel_tolerance:g})", measured=True)
    return Verdict("trajectory", 1.0, f"steps {steps} of {n} re-run within {max(detail['distances']):.2g} "
                                      f"(tolerance {step_tolerance:g}); the seed's noise"
                                      f"{' on the init image' if req.pipeline == 'img2img' else ''}; the final latent "
                                      f"decodes to the image ({where}: mean |difference| {gap:.2f})",
                   pixel_sha256=sha, detail=detail)


def _pixel_gap(engine, req, final: Opening, pixels: np.ndarray, settings, rng, detail: dict):
    """(mean |difference| in levels, where) between the image and the committed final latent's decoding:
    one random tile from the committed decoder statistics, or the whole decode for a share of the
    checks (`trajectory_decode_share`) and for a final leaf without statistics. (None, why) when the
    sizes disagree or the statistics do not fit the decoder."""
    from app.backends.diffusers import trajectory as tr
    from app.backends.diffusers.tile_decode import UnsupportedDecoder

    norms = final.state.get(tr.NORMS)
    if norms is not None and rng.random() >= settings.trajectory_decode_share:
        rect, frame = tr.tile(pixels.shape[1:3], settings.trajectory_tile, rng), rng.randrange(pixels.shape[0])
        try:
            decoded = tr.decode_tile(engine, req, final.latent, norms, rect, frame=frame)
        except (UnsupportedDecoder, RuntimeError) as exc:
            return None, f"the final leaf's decoder statistics do not fit: {exc}"
        y0, y1, x0, x1 = rect
        where = f"tile y {y0}-{y1}, x {x0}-{x1}" + (f" of frame {frame}" if len(pixels) > 1 else "")
        pixels = pixels[frame:frame + 1, y0:y1, x0:x1]
        detail["tile"], detail["frame"] = list(rect), frame
    else:
        decoded, where = tr.decode(engine, req, final.latent), "whole image"
        detail["tile"] = None
        if decoded.shape != pixels.shape:
            return None, "the final latent decodes to another size than the image"
    gap = float(np.abs(decoded.astype(np.int16) - pixels.astype(np.int16)).mean())
    detail["pixel_gap"] = gap
    return gap, where
