"""Trajectory commitments on the real pipelines (dev checkpoints): a recorded run's every step
re-runs alone to its committed next latent, the initial latent is the seed's noise, the final latent
decodes to the returned pixels, and the Merkle proofs hold; the cheats' steps do not."""

import dataclasses

import numpy as np
import pytest
import torch

from app.backends.diffusers import trajectory as tr
from app.generation.service import get_engine
from app.protocol.catalogue import SCHEDULERS
from app.protocol.errors import InvalidRequest
from app.protocol.request import parse_request
from app.verification.trajectory import leaf_digest, proof, step_distance, verify_proof

STEPS = 6
CHEAT_FLOOR = 1e-2  # every cheat below was measured at 2.7e-2 or more (relative L2); honest at 4e-6 or less


def request(model="RealisticVision", scheduler="dpmpp_2m", seed=3, prompt="a red fox in snow"):
    return parse_request({"model": model, "prompt": prompt, "seed": seed,
                          "params": {"steps": STEPS, "width": 256, "height": 256, "scheduler": scheduler}})


def worst(engine, req, traj, steps=range(STEPS)) -> float:
    return max(step_distance(tr.replay_step(engine, req, i, traj.latents[i], traj.states[i]),
                             traj.latents[i + 1]).relative_l2 for i in steps)


@pytest.mark.parametrize("scheduler", sorted(SCHEDULERS))
def test_every_step_of_an_honest_run_replays_exactly(settings, scheduler):
    engine = get_engine("RealisticVision", settings)
    req = request(scheduler=scheduler)
    out, traj = tr.record(engine, req)
    assert len(traj.latents) == STEPS + 1
    assert np.array_equal(traj.latents[0], tr.initial_latent(engine, req)), "leaf 0 is the seed's noise"
    assert worst(engine, req, traj) == 0.0, "one environment: each step re-runs bit for bit"
    assert np.array_equal(tr.decode(engine, req, traj.latents[-1]), out.pixels), "the final latent is the image"
    assert out.pixel_sha256 == engine.generate(req).pixel_sha256, "recording changes nothing in the output"


def test_another_thread_count_stays_far_below_every_cheat(settings):
    engine = get_engine("RealisticVision", settings)
    for scheduler in ("dpmpp_2m", "euler_a"):
        req = request(scheduler=scheduler)
        _, traj = tr.record(engine, req)
        threads = torch.get_num_threads()
        torch.set_num_threads(1 if threads > 1 else 2)
        try:
            honest = worst(engine, req, traj)
        finally:
            torch.set_num_threads(threads)
        assert honest < CHEAT_FLOOR / 100, (scheduler, honest)


def test_the_cheats_steps_do_not_replay(settings):
    engine, other = get_engine("RealisticVision", settings), get_engine("DreamShaper", settings)
    req = request()
    out, traj = tr.record(engine, req)
    # a trajectory from another checkpoint: no step of it is this model's
    _, foreign = tr.record(other, request(model="DreamShaper"))
    assert min(step_distance(tr.replay_step(engine, req, i, foreign.latents[i], foreign.states[i]),
                             foreign.latents[i + 1]).relative_l2 for i in range(STEPS)) > CHEAT_FLOOR
    # skipped steps, their latents interpolated: the step before each skipped one gives away the fake
    for k in range(1, STEPS):
        fake = (traj.latents[k - 1] + traj.latents[k + 1]) / 2
        assert step_distance(tr.replay_step(engine, req, k - 1, traj.latents[k - 1], traj.states[k - 1]),
                             fake).relative_l2 > CHEAT_FLOOR, k
    # a fabricated final latent: the last step does not lead to it
    fabricated = traj.latents[-1] + np.random.default_rng(0).normal(0, 0.1, traj.latents[-1].shape).astype(np.float32)
    assert step_distance(tr.replay_step(engine, req, STEPS - 1, traj.latents[-2], traj.states[-2]),
                         fabricated).relative_l2 > CHEAT_FLOOR
    # an honest trajectory with another image returned: its final latent decodes to other pixels
    other_pixels = engine.generate(request(seed=4)).pixels
    assert not np.array_equal(tr.decode(engine, req, traj.latents[-1]), other_pixels)
    # another seed's noise is not this request's initial latent
    assert not np.array_equal(tr.initial_latent(engine, request(seed=4)), traj.latents[0])


def test_merkle_proofs_open_each_leaf_and_nothing_else(settings):
    engine = get_engine("RealisticVision", settings)
    req = request()
    _, traj = tr.record(engine, req)
    root, levels, leaves = traj.root, traj.levels(), traj.leaves()
    for i, leaf in enumerate(leaves):
        assert verify_proof(root, i, leaf, proof(levels, i))
    tampered = leaf_digest(2, traj.latents[2] + 1e-3, traj.states[2])
    assert not verify_proof(root, 2, tampered, proof(levels, 2)), "a changed latent does not open"
    assert not verify_proof(root, 3, leaves[2], proof(levels, 3)), "a leaf opens only at its own index"


PIPELINES = [("RealisticVision", "img2img"), ("RealisticVision", "controlnet"), ("RealitiesEdgeXL", "txt2img"),
             ("RealitiesEdgeXL", "img2img"), ("TextToVideo", "txt2vid")]


@pytest.mark.parametrize("model,pipeline", PIPELINES)
def test_every_pipeline_replays_and_decodes_exactly(settings, model, pipeline):
    """SDXL's size ids and pooled embeddings, img2img's encoded init image and skipped steps, the
    ControlNet's residuals, the video's frames: each step of a run re-runs bit for bit, leaf 0 is the
    validator's own, and the final latent decodes to the pixels, whole exactly and in a tile of any
    frame to float rounding (the tile's region and fixed statistics sum in another order)."""
    import random

    from app.backends.diffusers.tile_decode import UnsupportedDecoder
    from app.local_plan import LOCAL_CHALLENGES
    from app.protocol.catalogue import get_spec
    from app.validator.conditioning import challenge_conditioning
    from app.verification.trajectory import executed_steps

    engine, spec = get_engine(model, settings), get_spec(model)
    params = {**spec.default_params(), **LOCAL_CHALLENGES[model], "steps": STEPS}
    if not spec.is_video:
        params.update(width=spec.bounds.min_size, height=spec.bounds.min_size)
    for scheduler in ("dpmpp_2m", "euler_a"):
        raw = {"model": model, "prompt": "a red fox in snow", "seed": 7, "params": {**params, "scheduler": scheduler}}
        if pipeline != spec.pipeline.value:
            raw.update(pipeline=pipeline, **challenge_conditioning(pipeline, params["width"], params["height"],
                                                                   spec.control_types, random.Random(1), [], STEPS))
        req = parse_request(raw)
        out, traj = tr.record(engine, req)
        n = executed_steps(req)
        assert len(traj.latents) == n + 1 and n <= STEPS
        prefix = tr.prepare(engine, req)
        assert np.array_equal(traj.latents[0], prefix.leaf0()), "leaf 0 is the validator's own"
        assert all(np.array_equal(tr.replay_step(engine, req, i, traj.latents[i], traj.states[i], prefix),
                                  traj.latents[i + 1]) for i in range(n)), (scheduler, "each step bit for bit")
        assert np.array_equal(tr.decode(engine, req, traj.latents[-1]), out.pixels)
        norms, last = traj.states[-1][tr.NORMS], len(out.pixels) - 1
        assert norms.shape[1] == len(out.pixels), "the decoder's statistics per frame"
        for rect in ((0, 32, 0, 32), tr.tile(out.pixels.shape[1:3], 32, random.Random(5))):
            y0, y1, x0, x1 = rect
            tile = tr.decode_tile(engine, req, traj.latents[-1], norms, rect, frame=last).astype(int)
            gap = np.abs(tile - out.pixels[last:, y0:y1, x0:x1])  # float rounding: at most a level, rarely
            assert gap.max() <= 1 and gap.mean() < 0.01, (rect, gap.max(), gap.mean())
        with pytest.raises(UnsupportedDecoder):
            tr.decode_tile(engine, req, traj.latents[-1], norms[:-1], (0, 32, 0, 32))


def test_other_pipelines_have_no_replay(settings):
    engine = get_engine("RealisticVision", settings)
    req = parse_request({"model": "RealisticVision", "prompt": "x", "seed": 1,
                         "params": {"steps": 2, "width": 256, "height": 256}})
    with pytest.raises(InvalidRequest, match="no trajectory replay"):
        tr.record(engine, dataclasses.replace(req, pipeline="txt2vid"))
