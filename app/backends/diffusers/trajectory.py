"""A diffusion run's trajectory, recorded by the miner and re-run one step at a time by the validator.

`record` generates as usual and keeps, for every step i, the latent before it and the
scheduler history the step resumes from (leaf i; leaf N is the final latent, with the
decoder's GroupNorm statistics for tile decoding); its root is the commitment
(app/verification/trajectory.py). `initial_latent` is leaf 0 as the validator computes it;
`replay_step` runs step i alone: one UNet evaluation (and the ControlNet's, where the
pipeline has one) with classifier-free guidance as requested, one scheduler step from the
opened state, on a fresh scheduler positioned at step i. `decode` / `decode_tile` turn a
final latent into pixels with the VAE.

Every pipeline of the catalogue (SD1.5 and SDXL text-to-image and img2img, SD1.5 ControlNet,
text-to-video): what stays the same over a run's steps (the prompt's embeddings, SDXL's
pooled embeddings and size ids, the prepared control image, leaf 0, the generator after the
initial noise) is taken from the pipeline's own preparation (`_prefix`): its `__call__` runs
up to its first UNet call and stops there, so the replay feeds the UNet what the pipeline
fed it, in every diffusers version, without copying the pipelines' set-up code.

Leaf 0 is the seed's noise, equal bit for bit, for text-to-image, ControlNet and
text-to-video; for img2img it is the init image's encoding noised to the first timestep,
which the validator computes with its own VAE encoder (the encoder drifts across
environments like the UNet: compared within the step tolerance). Schedulers: the multistep
DPM-Solver++ (its earlier model outputs are the state), Euler and DDIM (stateless per
step), and Euler ancestral, whose per-step noise comes from the seeded CPU generator and is
replayed (the generator as the preparation left it, then one draw per earlier step) with no
UNet.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from app.protocol.errors import InvalidRequest
from app.protocol.request import GenerationRequest
from app.verification.trajectory import (
    Opening,
    executed_steps,
    leaf_digest,
    merkle_levels,
    merkle_root,
    proof,
    replayable,
)

if TYPE_CHECKING:
    import torch

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
        raise InvalidRequest("pipeline", f"{engine.spec.name} {request.pipeline}: no trajectory replay")


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


class _Stop(Exception):
    """Raised from the first UNet call of a preparation run: the pipeline's set-up is all it was for."""


@dataclass
class Preparation:
    """What the pipeline prepared for its steps, taken at its first UNet call."""
    latent: "torch.Tensor"  # leaf 0, as prepare_latents returned it
    generator_state: object  # the CPU generator after the initial draws (ancestral replays go on from it)
    unet_kwargs: dict  # encoder_hidden_states, timestep_cond, added_cond_kwargs, cross_attention_kwargs
    cfg: bool
    control: dict | None  # the ControlNet call's controlnet_cond (guess mode is refused)

    def leaf0(self) -> np.ndarray:
        return _numpy(self.latent)


@contextmanager
def _on_prepared(pipe, keep: Callable[[object], None]) -> Iterator[None]:
    """Within the block, hand every latent the pipeline's prepare_latents returns to `keep` (leaf 0)."""
    real = pipe.prepare_latents

    def prepare(*a, **kw):
        latents = real(*a, **kw)
        keep(latents)
        return latents

    pipe.prepare_latents = prepare
    try:
        yield
    finally:
        del pipe.prepare_latents


def prepare(engine, request: GenerationRequest) -> Preparation:
    """The request's preparation, for a caller that re-runs several steps of one run (`replay_step`'s
    `prefix`) and compares leaf 0 (`leaf0()`)."""
    _require(engine, request)
    return _prefix(engine, request)


def _prefix(engine, request: GenerationRequest) -> Preparation:
    """Run the request's pipeline up to its first UNet call and keep what it prepared (see the module doc).
    It swaps the pipeline's prepare_latents and its UNet's (and ControlNet's) forward for the call, so
    an engine serves one caller at a time here, as the GPU workers' solo pool does."""
    import torch

    pipe = engine.pipe_for(request)
    args = engine._pipeline_args(request)
    generator = args["generator"]
    seen: dict = {}
    controlnet = getattr(pipe, "controlnet", None)
    real_control = controlnet.forward if controlnet is not None else None

    def prepared(latents) -> None:
        seen["latent"], seen["generator"] = latents.clone(), generator.get_state()

    def unet(sample, timestep, **kw):
        seen["unet"], seen["batch"] = kw, sample.shape[0]
        raise _Stop

    def control(sample, timestep, **kw):
        seen["control"] = kw
        return real_control(sample, timestep, **kw)

    pipe.scheduler = _scheduler(engine, request)
    pipe.unet.forward = unet
    if controlnet is not None:
        controlnet.forward = control
    try:
        with _on_prepared(pipe, prepared), torch.inference_mode():
            pipe(**args)
        raise RuntimeError(f"{type(pipe).__name__} finished without calling its UNet")
    except _Stop:
        pass
    finally:
        del pipe.unet.forward
        if controlnet is not None:
            del controlnet.forward
    unet_kwargs = {k: v for k, v in seen["unet"].items() if k in
                   ("encoder_hidden_states", "timestep_cond", "added_cond_kwargs", "cross_attention_kwargs")}
    latent = seen["latent"]
    control_kwargs = None
    if "control" in seen:
        if seen["control"].get("guess_mode"):
            raise InvalidRequest("control", "a ControlNet in guess mode has no trajectory replay")
        control_kwargs = {"controlnet_cond": seen["control"]["controlnet_cond"]}
    return Preparation(latent, seen["generator"], unet_kwargs, seen["batch"] == 2 * latent.shape[0], control_kwargs)


def begin_index(request: GenerationRequest) -> int:
    """The scheduler index of a run's first step: img2img skips the first steps (`strength`)."""
    return request.params.steps - executed_steps(request)


def initial_latent(engine, request: GenerationRequest) -> np.ndarray:
    """Leaf 0 as the pipeline prepares it: the seed's noise (scaled by the scheduler's initial sigma),
    or img2img's init image encoded and noised to its first timestep."""
    return prepare(engine, request).leaf0()


def record(engine, request: GenerationRequest, *, deadline: float | None = None):
    """(GenerationOutput, Trajectory): an ordinary generation that also keeps every step's leaf, and in
    the final leaf the decoder's GroupNorm statistics (`NORMS`) for a validator's tile decoding."""
    from app.backends.diffusers.tile_decode import record_norms, stacked

    _require(engine, request)
    trajectory = Trajectory()

    def on_step(pipe, step, latents) -> None:
        if not trajectory.latents:  # leaf 0: what the first step started from (the pipeline's own)
            trajectory.latents.append(first["latent"])
            trajectory.states.append(first["state"])
        trajectory.latents.append(_numpy(latents))
        trajectory.states.append(_snapshot(pipe.scheduler))

    pipe = engine.pipe_for(request)
    first: dict = {}

    def prepared(latents) -> None:
        first["latent"], first["state"] = _numpy(latents), _snapshot(pipe.scheduler)

    with _on_prepared(pipe, prepared), record_norms(pipe.vae.decoder) as norms:
        out = engine.generate(request, deadline=deadline, on_step=on_step)
    if norms:
        trajectory.states[-1] = {**trajectory.states[-1], NORMS: stacked(norms)}
    return out, trajectory


def _as_batch(x, video: bool):
    """A video's latents (1, c, frames, h, w) as the scheduler steps them: (frames, c, h, w)."""
    return x.permute(0, 2, 1, 3, 4).reshape(-1, *x.shape[1:2], *x.shape[3:]) if video else x


def _from_batch(x, like, video: bool):
    return x[None, :].reshape(like.shape[0], like.shape[2], like.shape[1], *like.shape[3:]).permute(
        0, 2, 1, 3, 4) if video else x


def replay_step(engine, request: GenerationRequest, index: int, latent: np.ndarray, state: dict,
                prefix: Preparation | None = None) -> np.ndarray:
    """Step `index` alone, from its opened latent and scheduler state: the latent after it
    (`prefix`: the request's preparation, when the caller re-runs several steps of one run)."""
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    _require(engine, request)
    n = executed_steps(request)
    if not 0 <= index < n:
        raise ValueError(f"step {index} is outside 0..{n - 1}")
    prefix = prefix or _prefix(engine, request)
    pipe = engine.pipe_for(request)
    scheduler = _scheduler(engine, request)
    device, dtype = engine.runtime.device, _dtype(engine)
    position = begin_index(request) + index
    scheduler._step_index = position
    for name in STATE_FIELDS.get(type(scheduler).__name__, ()):
        if name not in state:
            raise ValueError(f"the opened state of step {index} lacks {name}")
        value = state[name]
        if isinstance(value, list):
            value = [None if v is None else torch.from_numpy(np.array(v, dtype=np.float32)).to(device, dtype)
                     for v in value]
        setattr(scheduler, name, value)
    t = scheduler.timesteps[position]
    x = torch.from_numpy(np.array(latent, dtype=np.float32)).to(device, dtype)
    if tuple(x.shape) != tuple(prefix.latent.shape):
        raise ValueError(f"the opened latent of step {index} has shape {tuple(x.shape)}, the run's is "
                         f"{tuple(prefix.latent.shape)}")
    video = x.dim() == 5
    extra = {}
    if type(scheduler).__name__ in ANCESTRAL:  # its noise: the seeded CPU generator, replayed without the UNet
        generator = torch.Generator("cpu")
        generator.set_state(prefix.generator_state)
        for _ in range(index):  # one draw per earlier step
            randn_tensor(tuple(_as_batch(x, video).shape), generator=generator, device=torch.device(device),
                         dtype=dtype)
        extra["generator"] = generator
    with torch.inference_mode():
        model_input = scheduler.scale_model_input(torch.cat([x] * 2) if prefix.cfg else x, t)
        kwargs = dict(prefix.unet_kwargs)
        if prefix.control is not None:
            c = request.control
            keep = 1.0 - float(index / n < c.guidance_start or (index + 1) / n > c.guidance_end)
            down, mid = pipe.controlnet(model_input, t, encoder_hidden_states=kwargs["encoder_hidden_states"],
                                        controlnet_cond=prefix.control["controlnet_cond"],
                                        conditioning_scale=c.conditioning_scale * keep, guess_mode=False,
                                        return_dict=False)
            kwargs.update(down_block_additional_residuals=down, mid_block_additional_residual=mid)
        noise = pipe.unet(model_input, t, **kwargs, return_dict=False)[0]
        if prefix.cfg:
            uncond, text = noise.chunk(2)
            noise = uncond + request.params.guidance * (text - uncond)
        after = scheduler.step(_as_batch(noise, video), t, _as_batch(x, video), **extra, return_dict=False)[0]
    return _numpy(_from_batch(after, x, video))


def _frames(latent: np.ndarray):
    """A final latent as the VAE decodes it: (frames, c, h, w), divided by the scaling factor later."""
    return latent.transpose(0, 2, 1, 3, 4).reshape(-1, *latent.shape[1:2], *latent.shape[3:]) \
        if latent.ndim == 5 else latent


def decode(engine, request: GenerationRequest, latent: np.ndarray) -> np.ndarray:
    """A final latent's pixels as uint8 (frames, h, w, 3), decoded as the pipeline decodes it."""
    import torch

    from app.protocol import media

    pipe = engine.pipe_for(request)
    with torch.inference_mode():
        x = torch.from_numpy(np.array(latent, dtype=np.float32)).to(engine.runtime.device, _dtype(engine))
        if x.dim() == 5:  # text-to-video
            video = pipe.video_processor.postprocess_video(video=pipe.decode_latents(x), output_type="np")
            return media.to_uint8(video[0])
        x = x.to(pipe.vae.dtype)
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
                rect: tuple[int, int, int, int], frame: int = 0) -> np.ndarray:
    """The pixels of `rect` of frame `frame` of the final latent's decoding, uint8 (1, th, tw, 3), from
    the committed decoder statistics (app/backends/diffusers/tile_decode.py); equal to the same crop
    of `decode`. UnsupportedDecoder (a ValueError) for a frame the latent does not have or statistics
    of another shape."""
    import torch

    from app.backends.diffusers import tile_decode
    from app.protocol import media

    pipe = engine.pipe_for(request)
    frames, norms = _frames(np.asarray(latent, np.float32)), np.asarray(norms, np.float32)
    if not 0 <= frame < frames.shape[0] or norms.ndim != 4 or norms.shape[1] != frames.shape[0]:
        raise tile_decode.UnsupportedDecoder(f"statistics {norms.shape} for frame {frame} of {frames.shape[0]}")
    x = torch.from_numpy(frames[frame:frame + 1].copy()).to(engine.runtime.device, pipe.vae.dtype)
    sample = tile_decode.decode_tile(pipe.vae, x / pipe.vae.config.scaling_factor, norms[:, frame], rect)
    processor = getattr(pipe, "image_processor", None) or pipe.video_processor  # a VaeImageProcessor alike
    return media.to_uint8(processor.postprocess(sample.float(), output_type="np"))
