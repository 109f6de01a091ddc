"""Trajectory commitments on the real SD1.5 pipelines (dev checkpoints): a recorded run's every step
re-runs alone to its committed next latent, the initial latent is the seed's noise, the final latent
decodes to the returned pixels, and the Merkle proofs hold; the cheats' steps do not."""

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


def test_pipelines_without_a_replay_are_named(settings):
    engine = get_engine("RealitiesEdgeXL", settings)
    req = parse_request({"model": "RealitiesEdgeXL", "prompt": "x", "seed": 1,
                         "params": {"steps": 2, "width": 512, "height": 512}})
    with pytest.raises(InvalidRequest, match="SD1.5 text-to-image only"):
        tr.record(engine, req)
