"""The procedural world the dev checkpoints train on: a caption decides what is drawn, the seed the rest."""

import numpy as np

from app.backends.diffusers.devworld import render


def test_the_world_draws_what_a_caption_says_and_the_seed_decides_the_rest():
    a = render("a red fox standing at night", 64, 64, np.random.default_rng(1))
    assert np.array_equal(a, render("a red fox standing at night", 64, 64, np.random.default_rng(1)))
    assert not np.array_equal(a, render("a red fox standing at night", 64, 64, np.random.default_rng(2)))
    snow = render("a red fox standing in winter", 64, 64, np.random.default_rng(1))
    assert a[0, :8].astype(float).mean() < 80 < snow[0, :8].astype(float).mean(), "the setting picks the background"
    red = render("a red knight standing in winter", 64, 64, np.random.default_rng(1))[0].astype(float)
    blue = render("a blue knight standing in winter", 64, 64, np.random.default_rng(1))[0].astype(float)
    assert (red[..., 0] - red[..., 2]).mean() > (blue[..., 0] - blue[..., 2]).mean() + 5, "a colour word colours"
    clip = render("a whale running at sunset", 64, 64, np.random.default_rng(3), frames=4)
    assert clip.shape == (4, 64, 64, 3) and not np.array_equal(clip[0], clip[-1]), "running moves"
