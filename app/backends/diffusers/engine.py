"""The generation engine: a loaded pipeline that turns a validated request into media.

An `Engine` is built once per worker process (never per task) and reused. `generate`
seeds a CPU `torch.Generator` (the same random stream on every device), sets the
requested scheduler, runs the pipeline (`render`), encodes the media and hashes the
pixels: a PNG decodes to them, and a video answer carries them losslessly beside its
MP4, so the published hash is the one any receiver computes from the bytes it gets.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Mapping

import numpy as np

from app.backends.base import GenerationOutput
from app.backends.diffusers.determinism import Runtime, fingerprint
from app.backends.diffusers.loading import load_controlnet, load_pipeline
from app.backends.diffusers.schedulers import scheduler_for
from app.protocol import conditioning, media
from app.protocol.catalogue import Architecture, ModelSpec, Pipeline
from app.protocol.errors import GenerationTimeout, InvalidRequest
from app.protocol.request import GenerationRequest

# Pipelines made from a loaded text-to-image one (`from_pipe`), by architecture (issue 11).
DERIVED_PIPELINES = {
    Pipeline.IMAGE_TO_IMAGE.value: {Architecture.SD15: "StableDiffusionImg2ImgPipeline",
                                    Architecture.SDXL: "StableDiffusionXLImg2ImgPipeline"},
    Pipeline.CONTROLNET.value: {Architecture.SD15: "StableDiffusionControlNetPipeline"},
}


class Engine:
    def __init__(self, spec: ModelSpec, pipeline, runtime: Runtime, checkpoint: Path,
                 controlnets: Mapping[str, tuple[Path, Path | None]] | None = None):
        self.spec = spec
        self.pipeline = pipeline
        self.runtime = runtime
        self.checkpoint = checkpoint
        self.controlnets = dict(controlnets or {})  # control type -> (checkpoint, config folder)
        self.environment = fingerprint(runtime)
        self.load_seconds = 0.0
        self._base_scheduler_config = dict(pipeline.scheduler.config)
        self._pipes = {spec.pipeline.value: pipeline}  # others made from it on first use, sharing its modules

    @classmethod
    def load(cls, spec: ModelSpec, checkpoint: Path, runtime: Runtime, config: Path | None = None, *,
             controlnets: Mapping[str, tuple[Path, Path | None]] | None = None) -> "Engine":
        t0 = time.perf_counter()
        pipe = load_pipeline(spec, checkpoint, device=runtime.device, dtype=runtime.dtype, config=config)
        engine = cls(spec, pipe, runtime, Path(checkpoint), controlnets)
        engine.load_seconds = time.perf_counter() - t0
        return engine

    def count_tokens(self, text: str) -> int:
        return len(self.pipeline.tokenizer(text, truncation=False)["input_ids"])

    def check_prompt(self, request: GenerationRequest) -> None:
        limit = self.spec.bounds.max_prompt_tokens
        for name in ("prompt", "negative_prompt"):
            text = getattr(request, name)
            if text and (n := self.count_tokens(text)) > limit:
                raise InvalidRequest(name, f"is {n} tokens long; the limit is {limit} (shorten it, or split details)")

    def _pipeline_args(self, request: GenerationRequest) -> dict[str, object]:
        import torch

        p = request.params
        args: dict[str, object] = {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt or None,
            "num_inference_steps": p.steps,
            "guidance_scale": p.guidance,
            "width": p.width,
            "height": p.height,
            # A CPU generator: the initial noise is the same on every device.
            "generator": torch.Generator("cpu").manual_seed(request.seed),
            "output_type": "np",
        }
        if self.spec.is_video:
            args["num_frames"] = p.num_frames
        if request.pipeline == Pipeline.IMAGE_TO_IMAGE.value:  # the size is the init image's, fitted to the request's
            del args["width"], args["height"]
            args["image"] = _tensor(conditioning.load_image(request.init_image, "init_image", p.width, p.height))
            args["strength"] = request.strength
        elif request.pipeline == Pipeline.CONTROLNET.value:
            c = request.control
            args["image"] = _pil(conditioning.control_image(c.type, c.image, "control.image", p.width, p.height))
            args["controlnet_conditioning_scale"] = c.conditioning_scale
            args["control_guidance_start"], args["control_guidance_end"] = c.guidance_start, c.guidance_end
        return args

    def pipe_for(self, request: GenerationRequest):
        """The diffusers pipeline of the request's pipeline: the loaded one, or one made from it with
        `from_pipe` (the same UNet, VAE and text encoders, no second copy of the weights); a
        ControlNet pipeline per control type, its ControlNet loaded on first use."""
        name = request.pipeline or self.spec.pipeline.value
        key = f"{name}-{request.control.type}" if name == Pipeline.CONTROLNET.value else name
        if key not in self._pipes:
            classes = DERIVED_PIPELINES.get(name, {})
            if self.spec.architecture not in classes:
                raise InvalidRequest("pipeline", f"{self.spec.name} has no {name} pipeline")
            import diffusers

            extra = {"controlnet": self._controlnet(request.control.type)} if name == Pipeline.CONTROLNET.value else {}
            self._pipes[key] = getattr(diffusers, classes[self.spec.architecture]).from_pipe(self.pipeline, **extra)
            self._pipes[key].set_progress_bar_config(disable=True)
        return self._pipes[key]

    def _controlnet(self, control_type: str):
        if control_type not in self.controlnets:
            raise InvalidRequest("control.type", f"{self.spec.name} has no {control_type} ControlNet; it has "
                                                 f"{', '.join(self.controlnets) or 'none'}")
        path, config = self.controlnets[control_type]
        return load_controlnet(path, device=self.runtime.device, dtype=self.runtime.dtype, config=config)

    def _deadline_callbacks(self, deadline: float | None, steps: int, on_step=None) -> dict[str, object]:
        """Pipeline arguments that stop the run between steps once `deadline` (monotonic) passes, and call
        on_step(pipe, step, latents) after each step (the trajectory's recorder)."""
        if deadline is None and on_step is None:
            return {}

        def check(step: int) -> None:
            if deadline is not None and time.monotonic() > deadline:
                raise GenerationTimeout(f"stopped after step {step + 1} of {steps}: the time limit passed")

        if self.spec.is_video:  # TextToVideoSDPipeline has the older per-step callback only
            pipe = self.pipeline  # the one pipeline a video type has

            def callback(step, _t, latents):
                if on_step is not None:
                    on_step(pipe, step, latents)
                check(step)
            return {"callback": callback, "callback_steps": 1}

        def on_step_end(pipe, step, _t, kwargs):
            if on_step is not None:
                on_step(pipe, step, kwargs["latents"])
            check(step)
            return kwargs

        return {"callback_on_step_end": on_step_end, "callback_on_step_end_tensor_inputs": ["latents"]}

    def render(self, request: GenerationRequest, *, deadline: float | None = None,
               on_step=None) -> tuple[np.ndarray, float]:
        """The generated frames as uint8 RGB (frames, height, width, 3), before any encoding, and the seconds it took."""
        import torch

        if request.model != self.spec.name:
            raise InvalidRequest("model", f"this engine serves {self.spec.name}, not {request.model}")
        self.check_prompt(request)
        pipe = self.pipe_for(request)
        pipe.scheduler = scheduler_for(request.params.scheduler, self._base_scheduler_config)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = pipe(**self._pipeline_args(request),
                       **self._deadline_callbacks(deadline, request.params.steps, on_step))
        if self.runtime.device.startswith("cuda"):
            torch.cuda.synchronize()
        frames = media.to_uint8(out.frames[0] if self.spec.is_video else out.images)
        return frames, time.perf_counter() - t0

    def generate(self, request: GenerationRequest, *, deadline: float | None = None,
                 on_step=None) -> GenerationOutput:
        """Generate; with `deadline` (time.monotonic()), stop with GenerationTimeout once it passes;
        on_step(pipe, step, latents) sees each step's latents (app/backends/diffusers/trajectory.py)."""
        frames, seconds = self.render(request, deadline=deadline, on_step=on_step)
        t1 = time.perf_counter()
        if deadline is not None and time.monotonic() > deadline:
            raise GenerationTimeout("stopped before encoding: the time limit passed while decoding")
        data = media.encode(frames, self.spec.media_type, fps=request.params.fps)
        # The hash is of the lossless pixels: a PNG decodes to `frames`; a video carries them beside its MP4.
        lossless = media.encode_frames(frames) if self.spec.is_video else None
        t2 = time.perf_counter()
        return GenerationOutput(
            request=request,
            media_type=self.spec.media_type.value,
            data=data,
            pixels=frames,
            pixel_sha256=media.pixel_sha256(frames),
            timings={"generate_ms": round(seconds * 1000, 1), "encode_ms": round((t2 - t1) * 1000, 1)},
            environment=dict(self.environment),
            frames=lossless,
        )


def _pil(pixels: np.ndarray):
    from PIL import Image

    return Image.fromarray(pixels)


def _tensor(pixels: np.ndarray):
    """uint8 (h, w, 3) -> a contiguous float32 (1, 3, h, w) tensor in [0, 1], the values diffusers makes of
    a PIL image. Not a PIL image: diffusers turns one into a channels-last view, and the VAE encoder's
    first convolution on it takes a CPU path whose sums depend on the thread count (img2img latents
    1.7e-2 apart between 1 and 2 threads, against 1.9e-6 for the same values laid out contiguously)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).contiguous().float() / 255.0
    return x.unsqueeze(0)
