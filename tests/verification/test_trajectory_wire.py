"""An opening on the wire (app/verification/trajectory.py): what a miner's POST /v1/open returns is
parsed strictly, each malformed part named, and a parsed opening proves its place under the root."""

import base64

import numpy as np
import pytest

from app.verification.trajectory import (
    Opening,
    encode_array,
    leaf_digest,
    merkle_levels,
    merkle_root,
    proof,
)


def trajectory(n=5):
    rng = np.random.default_rng(0)
    latents = [rng.normal(size=(1, 4, 8, 8)).astype(np.float32) for _ in range(n + 1)]
    states = [{"model_outputs": [None, latents[max(0, i - 1)]], "lower_order_nums": min(i, 1)} for i in range(n + 1)]
    leaves = [leaf_digest(i, lat, st) for i, (lat, st) in enumerate(zip(latents, states))]
    return latents, states, merkle_levels(leaves), merkle_root(leaves)


def test_an_opening_survives_the_wire_and_opens_only_its_own_place():
    latents, states, levels, root = trajectory()
    wire = Opening(3, latents[3], states[3], proof(levels, 3)).to_wire()
    opened = Opening.from_wire(wire, "leaves.0")
    assert opened.opens(root) and np.array_equal(opened.latent, latents[3])
    assert not Opening.from_wire({**wire, "index": 2}, "leaves.0").opens(root)
    moved = {**wire, "latent": encode_array(latents[3] * 0.98)}
    assert not Opening.from_wire(moved, "leaves.0").opens(root)


@pytest.mark.parametrize("change,field", [
    ({"index": -1}, "leaves.0.index"),
    ({"index": True}, "leaves.0.index"),
    ({"proof": ["ab"]}, "leaves.0.proof"),
    ({"proof": "x" * 64}, "leaves.0.proof"),
    ({"latent": {"shape": [1, 4, 8, 8], "f32": "!!!"}}, "leaves.0.latent"),
    ({"latent": {"shape": [1, 4, 8, 8], "f32": base64.b64encode(b"\0" * 12).decode()}}, "leaves.0.latent"),
    ({"latent": {"shape": [0, 4], "f32": ""}}, "leaves.0.latent"),
    ({"latent": {"shape": [4096, 4096, 4], "f32": ""}}, "leaves.0.latent"),
    ({"latent": encode_array(np.full((1, 4, 8, 8), np.nan, np.float32))}, "leaves.0.latent"),
    ({"latent": encode_array(np.full((1, 4, 8, 8), np.inf, np.float32))}, "leaves.0.latent"),
    ({"state": {"model_outputs": [encode_array(np.full((2,), np.nan, np.float32))]}}, "leaves.0.state.model_outputs.0"),
    ({"state": {str(i): 0 for i in range(9)}}, "leaves.0.state"),
    ({"state": "x"}, "leaves.0.state"),
])
def test_each_malformed_part_is_named(change, field):
    latents, states, levels, _ = trajectory()
    wire = {**Opening(1, latents[1], states[1], proof(levels, 1)).to_wire(), **change}
    with pytest.raises(ValueError) as err:
        Opening.from_wire(wire, "leaves.0")
    assert str(err.value).startswith(field), err.value
