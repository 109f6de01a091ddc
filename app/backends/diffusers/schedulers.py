"""Catalogue scheduler names as diffusers schedulers, rebuilt for every request.

A stateful scheduler (multistep solvers keep their history) must never carry state from
one request to the next, so the engine builds a fresh one each time from the
checkpoint's noise schedule and the name's overrides (app/protocol/catalogue.SCHEDULERS).
"""

from __future__ import annotations

from app.protocol.catalogue import SCHEDULERS

# SD1.5's noise schedule: what a dev checkpoint's scheduler config holds.
NOISE_SCHEDULE = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
                   "steps_offset": 1}


def scheduler_for(name: str, base_config: dict | None = None):
    """The diffusers scheduler a catalogue scheduler name stands for."""
    import diffusers

    cls_name, overrides = SCHEDULERS[name]
    cls = getattr(diffusers, cls_name)
    config = {**NOISE_SCHEDULE, **(base_config or {}), **overrides}
    return cls.from_config(config)
