"""A text-to-image run's trajectory, recorded by the miner and re-run one step at a time by the validator.

`record` generates as usual and keeps, for every step i, the latent before it and the
scheduler history the step resumes from (leaf i; leaf N is the final latent); its root
is the commitment (app/verification/trajectory.py). `initial_latent` is the seed's noise,
which the validator computes itself. `replay_step` runs step i alone: the prompt's
embeddings, one UNet evaluation with classifier-free guidance as requested, one scheduler
step from the opened state, on a fresh scheduler positioned at step i. `decode` turns a
latent into pixels with the VAE.

Schedulers: the multistep DPM-Solver++ (its earlier model outputs are the state), Euler
and DDIM (stateless per step), and Euler ancestral, whose per-step noise comes from the
seeded CPU generator and is replayed (one draw for the initial noise, one per step) with
no UNet. Text-to-image pipelines of SD1.5 only for now: SDXL adds its size conditioning,
img2img starts from the init image's noised latent, ControlNet adds its residuals, and
the video pipeline has no step callback with latents: each needs its own replay.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from app.protocol.errors import InvalidRequest
from app.protocol.request import GenerationRequest
from app.verification.trajectory import (
    Opening,
    leaf_digest,
    merkle_levels,
    merkle_root,
    proof,
    replayable,
)

NORMS = "decoder_norms"  # the final leaf's: every decoder GroupNorm's (mean, variance) per group
STATE_FIELDS = {"DPMSolverMultistepScheduler": ("model_outputs", "lower_order_nums")}
ANCESTRAL = ("EulerAncestralDiscreteScheduler",)


@dataclass
class Trajectory:
    latents: list[np.ndarray] = field(default_factory=list)  # leaf i's latent: before step i; the last is final
    states: list[dict] = field(default_factory=list)  # leaf i's scheduler history

    def leaves(self) -> list[bytes]:
        return [leaf_digest(i, lat, st) for i, (lat, st) in enumerate(zip(self.latents, self.states))]

    @property
    def root(self) -> str:
        return merkle_root(self.leaves())

    def levels(self) -> list[list[bytes]]:
        return merkle_levels(self.leaves())

    def opening(self, index: int, levels: list[list[bytes]] | None = None) -> Opening:
        return Opening(index, self.latents[index], self.states[index], proof(levels or self.levels(), index))

    def to_bytes(self) -> bytes:
        """The kept form (numpy's npz): every leaf's latent and state."""
        import io
        import json

        arrays, layout = {}, []
        for i, (latent, state) in enumerate(zip(self.latents, self.states)):
            arrays[f"l{i}"] = latent
            entry = {}
            for name, value in state.items():
                if isinstance(value, list):
                    entry[name] = [None if v is None else f"s{i}_{name}_{j}" for j, v in enumerate(value)]
                    arrays.update({f"s{i}_{name}_{j}": v for j, v in enumerate(value) if v is not None})
                elif isinstance(value, np.ndarray):
                    entry[name], arrays[f"s{i}_{name}"] = {"array": f"s{i}_{name}"}, value
                else:
                    entry[name] = value
            layout.append(entry)
        out = io.BytesIO()
        np.savez(out, layout=np.frombuffer(json.dumps(layout).encode(), dtype=np.uint8), **arrays)
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Trajectory":
        import io
        import json

        with np.load(io.BytesIO(data)) as z:
            layout = json.loads(z["layout"].tobytes())
            latents = [z[f"l{i}"] for i in range(len(layout))]
            states = [{name: [None if k is None else z[k] for k in value] if isinstance(value, list)
                       else z[value["array"]] if isinstance(value, dict) else value
                       for name, value in entry.items()} for entry in layout]
        return cls(latents, states)


def supports(engine, request: GenerationRequest) -> bool:
    return replayable(engine.spec.name, request.pipeline)


def _require(engine, request: GenerationRequest) -> None:
    if not supports(engine, request):
        raise InvalidRequest("pipeline", f"{engine.spec.name} {request.pipeline}: no trajectory replay (SD1.5 "
                                         "text-to-image only)")


def _dtype(engine):
    import torch

    return getattr(torch, engine.runtime.dtype)


def _numpy(t) -> np.ndarray:
    return t.detach().to("cpu", dtype=__import__("torch").float32).numpy().copy()


def _snapshot(scheduler) -> dict:
    state = {}
    for name in STATE_FIELDS.get(type(scheduler).__name__, ()):
        value = getattr(scheduler, name)
        state[name] = [None if v is None else _numpy(v) for v in value] if isinstance(value, list) else value
    return state


def _scheduler(engine, request: GenerationRequest):
    from app.backends.diffusers.schedulers import scheduler_for

    scheduler = scheduler_for(request.params.scheduler, engine._base_scheduler_config)
    scheduler.set_timesteps(request.params.steps, device=engine.runtime.device)
    return scheduler


def initial_latent(engine, request: GenerationRequest) -> np.ndarray:
    """The seed's noise as the pipeline makes it (the CPU generator, scaled by the scheduler's initial sigma)."""
    import torch

    _require(engine, request)
    pipe = engine.pipe_for(request)
    p = request.params
    generator = torch.Generator("cpu").manual_seed(request.seed)
    scheduler, pipe_scheduler = _scheduler(engine, request), pipe.scheduler
    pipe.scheduler = scheduler  # prepare_latents scales by this scheduler's init_noise_sigma
    try:
        latents = pipe.prepare_latents(1, pipe.unet.config.in_channels, p.height, p.width, _dtype(engine),
                                       engine.runtime.device, generator)
    finally:
        pipe.scheduler = pipe_scheduler
    return _numpy(latents)


def record(engine, request: GenerationRequest, *, deadline: float | None = None):
    """(GenerationOutput, Trajectory): an ordinary generation that also keeps every step's leaf, and in
    the final leaf the decoder's GroupNorm statistics (`NORMS`) for a validator's tile decoding."""
    from app.backends.diffusers.tile_decode import record_norms, stacked

    _require(engine, request)
    trajectory = Trajectory([initial_latent(engine, request)], [_snapshot(_scheduler(engine, request))])

    def on_step(pipe, _step, latents) -> None:
        trajectory.latents.append(_numpy(latents))
        trajectory.states.append(_snapshot(pipe.scheduler))

    with record_norms(engine.pipe_for(request).vae.decoder) as norms:
        out = engine.generate(request, deadline=deadline, on_step=on_step)
    if norms:
        trajectory.states[-1] = {**trajectory.states[-1], NORMS: stacked(norms)}
    return out, trajectory


def _embeddings(engine, pipe, request: GenerationRequest):
    import torch

    cfg = request.params.guidance > 1 and pipe.unet.config.time_cond_proj_dim is None
    positive, negative = pipe.encode_prompt(request.prompt, engine.runtime.device, 1, cfg,
                                            request.negative_prompt or None)
    return (torch.cat([negative, positive]) if cfg else positive), cfg


def replay_step(engine, request: GenerationRequest, index: int, latent: np.ndarray, state: dict) -> np.ndarray:
    """Step `index` alone, from its opened latent and scheduler state: the latent after it."""
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    _require(engine, request)
    if not 0 <= index < request.params.steps:
        raise ValueError(f"step {index} is outside 0..{request.params.steps - 1}")
    pipe = engine.pipe_for(request)
    scheduler = _scheduler(engine, request)
    device, dtype = engine.runtime.device, _dtype(engine)
    scheduler._step_index = index
    for name in STATE_FIELDS.get(type(scheduler).__name__, ()):
        if name not in state:
            raise ValueError(f"the opened state of step {index} lacks {name}")
        value = state[name]
        if isinstance(value, list):
            value = [None if v is None else torch.from_numpy(np.array(v, dtype=np.float32)).to(device, dtype)
                     for v in value]
        setattr(scheduler, name, value)
    t = scheduler.timesteps[index]
    extra = {}
    if type(scheduler).__name__ in ANCESTRAL:  # its noise: the seeded CPU generator, replayed without the UNet
        generator = torch.Generator("cpu").manual_seed(request.seed)
        shape = tuple(latent.shape)
        for _ in range(index + 1):  # the initial noise, then one draw per earlier step
            randn_tensor(shape, generator=generator, device=torch.device(device), dtype=dtype)
        extra["generator"] = generator
    with torch.inference_mode():
        embeddings, cfg = _embeddings(engine, pipe, request)
        x = torch.from_numpy(np.array(latent, dtype=np.float32)).to(device, dtype)
        model_input = scheduler.scale_model_input(torch.cat([x] * 2) if cfg else x, t)
        noise = pipe.unet(model_input, t, encoder_hidden_states=embeddings, return_dict=False)[0]
        if cfg:
            uncond, text = noise.chunk(2)
            noise = uncond + request.params.guidance * (text - uncond)
        after = scheduler.step(noise, t, x, **extra, return_dict=False)[0]
    return _numpy(after)


def decode(engine, request: GenerationRequest, latent: np.ndarray) -> np.ndarray:
    """A latent's pixels as uint8 (1, h, w, 3), decoded as the pipeline decodes its final latent."""
    import torch

    from app.protocol import media

    pipe = engine.pipe_for(request)
    with torch.inference_mode():
        x = torch.from_numpy(np.array(latent, dtype=np.float32)).to(engine.runtime.device, _dtype(engine))
        image = pipe.vae.decode(x / pipe.vae.config.scaling_factor, return_dict=False)[0]
        image = pipe.image_processor.postprocess(image, output_type="np")
    return media.to_uint8(image)


def tile(image_size: tuple[int, int], size: int, rng) -> tuple[int, int, int, int]:
    """A `size` square (clipped to the image) at a random place on the 8-pixel grid: (y0, y1, x0, x1)."""
    h, w = image_size
    th, tw = min(size, h), min(size, w)
    y0, x0 = 8 * rng.randrange((h - th) // 8 + 1), 8 * rng.randrange((w - tw) // 8 + 1)
    return y0, y0 + th, x0, x0 + tw


def decode_tile(engine, request: GenerationRequest, latent: np.ndarray, norms: np.ndarray,
                rect: tuple[int, int, int, int]) -> np.ndarray:
    """The pixels of `rect` of the latent's decoding, uint8 (1, th, tw, 3), from the committed decoder
    statistics (app/backends/diffusers/tile_decode.py); equal to the same crop of `decode`."""
    import torch

    from app.backends.diffusers import tile_decode
    from app.protocol import media

    pipe = engine.pipe_for(request)
    x = torch.from_numpy(np.array(latent, dtype=np.float32)).to(engine.runtime.device, _dtype(engine))
    sample = tile_decode.decode_tile(pipe.vae, x / pipe.vae.config.scaling_factor, np.asarray(norms, np.float32), rect)
    return media.to_uint8(pipe.image_processor.postprocess(sample, output_type="np"))
