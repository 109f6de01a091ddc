"""Test equipment: dishonest miners the validator must catch (`seedgrid miner serve --cheat STRATEGY`,
`seedgrid up --cheaters`, the network tests).

Each strategy changes what is generated, or what is answered, while the reply still
claims to be the requested output. The miner API knows nothing of them: `cheat_answer`
builds the `answer` function a cheating miner's app is created with, in place of
app/miner/api.honest_answer. Honest miners never import this package.
"""

from __future__ import annotations

import base64
import dataclasses
import time
from typing import Callable

import numpy as np

from app.miner.api import read_artifact, run_generation, worker_environment
from app.protocol import media
from app.protocol.catalogue import CATALOGUE, SCHEDULERS, get_spec
from app.protocol.request import GenerationRequest
from app.protocol.schemas import GenerateResponse

# What a cheater runs: (request to generate or None) and how to turn the result into the answer.
Run = Callable[[GenerationRequest], dict]  # generate a request through the GPU queue; returns the task result


def _replace_params(req: GenerationRequest, **changes) -> GenerationRequest:
    return dataclasses.replace(req, params=dataclasses.replace(req.params, **changes))


def sibling(model: str) -> str | None:
    """Another model type of the same architecture: 'another checkpoint's weights'."""
    arch = get_spec(model).architecture
    return next((n for n, s in CATALOGUE.items() if s.architecture is arch and n != model), None)


# Cheats that generate another request than the one asked for and claim it is that one. Each
# saves GPU time or stands in for a model the miner does not run. The calibration bench
# measures these same changes (bench/calibrate_verification.py imports ALTERED).
ALTERED: dict[str, Callable[[GenerationRequest], GenerationRequest]] = {
    "wrong_seed": lambda req: dataclasses.replace(req, seed=(req.seed + 1) % 2**32),
    "fewer_steps": lambda req: _replace_params(req, steps=max(1, req.params.steps // 2)),
    "one_step_fewer": lambda req: _replace_params(req, steps=max(1, req.params.steps - 1)),
    "other_scheduler": lambda req: _replace_params(
        req, scheduler=next(n for n in SCHEDULERS if n != req.params.scheduler)),
    # guidance 1.0 turns classifier-free guidance off in diffusers: one UNet pass per step, not two
    "no_cfg": lambda req: _replace_params(req, guidance=1.0),
    "low_guidance": lambda req: _replace_params(req, guidance=round(req.params.guidance * 2 / 3, 3)),
    "other_checkpoint": lambda req: dataclasses.replace(req, model=sibling(req.model)),
}


def as_text_to_image(req: GenerationRequest) -> GenerationRequest:
    """The request without its conditioning: what a miner that ignores the image generates."""
    return dataclasses.replace(req, pipeline="", init_image=None, strength=None, control=None)


def denoising_steps(req: GenerationRequest) -> int:
    """The steps a request's pipeline runs: img2img runs int(steps x strength) of its schedule (diffusers)."""
    if req.pipeline == "img2img":
        return int(req.params.steps * (req.strength if req.strength is not None else 1.0))
    return req.params.steps


def other_strength(req: GenerationRequest) -> GenerationRequest:
    """Another strength that runs another number of steps on the init image: a quarter fewer (at
    least one fewer), or one more where it runs a single one. A strength that runs the same number
    of steps is no cheat: diffusers then runs the very same schedule."""
    steps, n = req.params.steps, denoising_steps(req)
    target = min(n - 1, round(n * 0.75)) if n > 1 else min(2, steps)
    strength = 1.0 if target >= steps else round((target + 0.5) / steps, 4)  # int(steps x strength) == target
    return dataclasses.replace(req, strength=strength)


def altered(name: str, req: GenerationRequest) -> GenerationRequest:
    """ALTERED[name] applied to `req`. Where fewer steps would leave an img2img request no denoising
    step at all, the cheater runs its fewer steps from full noise (strength 1.0): it still cuts the
    corner, as it would, rather than turn honest for that request."""
    variant = ALTERED[name](req)
    if variant.pipeline == "img2img" and denoising_steps(variant) < 1:
        variant = dataclasses.replace(variant, strength=1.0)
    return variant


def runnable(variant: GenerationRequest, req: GenerationRequest) -> bool:
    """Whether a cheat's request differs from the honest one and runs at least one step: a cheater
    cannot run none (diffusers refuses), and a variant that runs what was asked is no cheat."""
    return variant != req and denoising_steps(variant) >= 1


def other_control_scale(req: GenerationRequest) -> GenerationRequest:
    c = req.control
    scale = c.conditioning_scale * 0.5 if c.conditioning_scale > 0 else 1.0
    return dataclasses.replace(req, control=dataclasses.replace(c, conditioning_scale=scale))


# Cheats on image-conditioned requests (issue 11): (the pipeline each applies to, the change).
# A miner running one answers every other request honestly: it cuts corners where it can.
CONDITIONED: dict[str, tuple[str, Callable[[GenerationRequest], GenerationRequest]]] = {
    "ignore_init_image": ("img2img", as_text_to_image),
    "other_strength": ("img2img", other_strength),
    "ignore_control": ("controlnet", as_text_to_image),
    "other_control_scale": ("controlnet", other_control_scale),
}


def conditioning_pixels(req: GenerationRequest) -> np.ndarray | None:
    """The request's own conditioning image fitted to its size, (1, h, w, 3): what `return_init_image` sends back."""
    from app.protocol import conditioning

    p = req.params
    if req.init_image is not None:
        return conditioning.load_image(req.init_image, "init_image", p.width, p.height)[None]
    if req.control is not None:
        return conditioning.load_image(req.control.image, "control.image", p.width, p.height)[None]
    return None


class Cheat:
    # reduced_precision: the cheater's GPU worker runs in bfloat16 (SEEDGRID_DTYPE), its answers claim float32
    strategies = (*ALTERED, "half_resolution", "reduced_precision", "blank", "error_text", "replay", "copy",
                  *CONDITIONED, "return_init_image")

    def __init__(self, strategy: str, model: str, *, database_url: str | None = None):
        if strategy not in self.strategies:
            raise ValueError(f"unknown cheat {strategy!r}; choose one of {', '.join(self.strategies)}")
        if strategy == "other_checkpoint" and sibling(model) is None:
            raise ValueError(f"other_checkpoint needs a second model type of {model}'s architecture; there is none")
        self.strategy, self.model, self.database_url = strategy, model, database_url
        self._stock: tuple[bytes, str, bytes | None] | None = None

    def answer(self, req: GenerationRequest, run: Run, read: Callable[[str], bytes]) -> tuple[bytes, str, bytes | None]:
        """(bytes, media type, a video's lossless frames) to send back in place of an honest answer to `req`."""
        spec = get_spec(req.model)
        s = self.strategy

        def output(result: dict) -> tuple[bytes, str, bytes | None]:
            frames = read(result["frames_path"]) if result.get("frames_path") else None
            return read(result["artifact_path"]), spec.media_type.value, frames

        def made(frames: np.ndarray) -> tuple[bytes, str, bytes | None]:
            lossless = media.encode_frames(frames) if spec.is_video else None
            return media.encode(frames, spec.media_type, fps=req.params.fps), spec.media_type.value, lossless

        if s == "error_text":
            return b"RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB", spec.media_type.value, None
        if s in CONDITIONED:
            pipeline, change = CONDITIONED[s]
            variant = change(req) if req.pipeline == pipeline else req
            return output(run(variant if runnable(variant, req) else req))
        if s == "return_init_image":
            pixels = conditioning_pixels(req)
            return output(run(req)) if pixels is None else made(pixels)
        if s == "blank":
            p = req.params
            return made(np.zeros((p.num_frames or 1, p.height, p.width, 3), dtype=np.uint8))
        if s == "half_resolution":
            pixels = media.answer_pixels(*output(run(half_resolution(req))), req.params.num_frames)
            return made(upscale(pixels, req.params.width, req.params.height))
        if s == "replay":
            if self._stock is None:  # its own earlier answer, to a challenge it saw (or made up) before
                self._stock = output(run(dataclasses.replace(req, seed=(req.seed + 1) % 2**32)))
            return self._stock
        if s == "copy":
            copied = self._someone_elses(req)
            if copied is not None:
                return output(copied)
            return output(run(dataclasses.replace(req, seed=(req.seed + 7) % 2**32)))
        if s == "reduced_precision":  # the request as asked, on a worker of lower precision
            return output(run(req))
        variant = altered(s, req)
        return output(run(variant if runnable(variant, req) else req))  # where it cannot cut this corner: honest

    def claimed_environment(self, actual: dict) -> dict:
        """The environment a cheater's answer claims: a reduced-precision one passes itself off as float32."""
        if self.strategy != "reduced_precision" or not actual:
            return actual
        from app.backends.diffusers.determinism import environment_class

        claimed = {**actual, "dtype": "float32"}
        claimed["class"] = environment_class(claimed)
        return claimed

    def _someone_elses(self, req: GenerationRequest) -> dict | None:
        """The newest verified answer to another challenge of this model type: what a copier
        can see of other miners' work (the dashboard's gallery and W&B publish verified
        answers). Never an output its maker has not delivered yet: a copier that read the
        shared workers' results directly could answer with them before their maker did,
        which no copier on another host can."""
        if not self.database_url:
            return None
        from sqlalchemy import select

        from app.db import session_scope
        from app.models import Challenge, Response

        with session_scope(self.database_url, read_only=True) as s:
            row = s.execute(select(Response.artifact_path, Response.frames_path).join(
                Challenge, Challenge.id == Response.challenge_id).where(
                Challenge.model == req.model, Challenge.id != req.request_id,
                Response.verdict_rung.in_(("exact", "tolerant", "trajectory"))).order_by(Response.verified_at.desc()).limit(1)).first()
            return {"artifact_path": row[0], "frames_path": row[1]} if row else None


def half_resolution(req: GenerationRequest) -> GenerationRequest:
    """The request at half its width and height (still multiples of 8): a quarter of the GPU work."""
    p = req.params
    return _replace_params(req, width=max(8, p.width // 2 // 8 * 8), height=max(8, p.height // 2 // 8 * 8))


def upscale(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """Frames resized (bicubic) to width x height: how a half-resolution cheat passes for the full size."""
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.Resampling.BICUBIC)) for f in frames])


def cheat_answer(cheat: Cheat, redis_client) -> Callable:
    """The miner API's `answer` for a cheater: the cheat's bytes, with a hash and environment that look honest."""
    def answer(req: GenerationRequest, priority: int, timeout: float, started: float) -> GenerateResponse:
        data, media_type, frames = cheat.answer(req, lambda r: run_generation(r, priority, timeout), read_artifact)
        try:
            claimed = media.pixel_sha256(media.answer_pixels(data, media_type, frames, req.params.num_frames))
        except (media.MediaError, ValueError):
            claimed = "0" * 64
        elapsed = round((time.perf_counter() - started) * 1000, 1)
        return GenerateResponse(request_id=req.request_id, model=req.model, media_type=media_type,
                                data=base64.b64encode(data).decode(), pixel_sha256=claimed,
                                frames=base64.b64encode(frames).decode() if frames else None,
                                timings={"queued_ms": 0.0, "generate_ms": elapsed, "total_ms": elapsed},
                                environment=cheat.claimed_environment(worker_environment(redis_client, req.model) or {}))

    return answer


# A miner that answers honestly, with its trajectory's root, but does not stand by it when the
# validator opens steps (issue 14): it refuses, or opens leaves that are not the ones it committed
# (a miner that kept nothing, or skipped the steps asked for, can do no better).
TRAJECTORY_CHEATS = ("refuse_open", "forged_opening")


def trajectory_cheat_openings(strategy: str) -> Callable[[str, list[int]], dict]:
    """The miner API's `open_leaves` for a trajectory cheat."""
    from app.miner.api import openings
    from app.verification.trajectory import decode_array, encode_array
    from app.web import Refused

    if strategy not in TRAJECTORY_CHEATS:
        raise ValueError(f"unknown trajectory cheat {strategy!r}; choose one of {', '.join(TRAJECTORY_CHEATS)}")

    def open_leaves(ref: str, steps: list[int]) -> dict:
        if strategy == "refuse_open":
            raise Refused(404, "not_kept", "no trajectory kept")
        opened = openings(ref, steps)
        for leaf in opened["leaves"]:  # each asked-for step's result moved, as a skipped step's would be
            if leaf["index"] - 1 in steps:
                latent = decode_array(leaf["latent"], "latent")
                leaf["latent"] = encode_array(latent * 0.98)
        return opened

    return open_leaves
