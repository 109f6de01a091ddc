"""Train the dev checkpoints briefly on the procedural world (devworld.py), so they behave like models.

A random-weight tiny model hardly responds to its prompt, guidance or step count, which
makes every verification distance tiny and every threshold meaningless. A few minutes
of training on (caption, picture) pairs drawn in code gives the same architectures
structure: a prompt picks shapes, colours and backgrounds, guidance sharpens them, the
step count and scheduler change the picture as they do in a real model.

What is trained, in this order (`seedgrid models train-dev`):
1. one VAE for every type, on pictures of every house look (reconstruction + a light KL);
2. per model type, its text encoder(s) and denoiser together on VAE latents, with the
   epsilon objective on SD's noise schedule, weighted towards x0 (`_weight`), in stages
   that end at the challenges' size (`stages`), and 10% empty captions, so that
   classifier-free guidance has an unconditional branch to push against (SDXL's empty
   prompt is zeros, as `force_zeros_for_empty_prompt` makes it at generation time).
Everything is seeded: the same command on the same torch build and thread count gives
the same weights. They are written as fp16 safetensors (a few MB in all) into
`devweights/`, which `build-dev` loads, so building a dev checkpoint never trains; they
ship with the project.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from app.backends.diffusers.devworld import LOOKS, render
from app.backends.diffusers.schedulers import NOISE_SCHEDULE
from app.protocol.catalogue import Architecture, ModelSpec

WEIGHTS = Path(__file__).with_name("devweights")
# Each type's house look: two checkpoints of one architecture paint a prompt differently.
LOOK_OF = {"RealisticVision": "shaded", "DreamShaper": "outlined", "AnimeV3": "flat", "RealitiesEdgeXL": "pastel",
           "TextToVideo": "shaded"}
DROP_CAPTION = 0.1
MIN_SNR_GAMMA = 5.0


@dataclass(frozen=True)
class Budget:
    """How long each part trains: the defaults take about 75 minutes on two CPU cores (VAE 8, each image type 10 to 12, video 15)."""

    vae_steps: int = 2000
    denoiser_steps: int = 4000  # per image model type, over every stage
    video_steps: int = 2500
    batch: int = 16
    image_size: int = 128  # the VAE's and the first stage's size (latents of 16x16)
    video_size: int = 64
    video_frames: int = 8
    pictures: int = 1500  # per model type at the first stage, drawn once and encoded once
    seed: int = 20261124
    weighting: str = "x0"  # see _weight: with plain epsilon MSE a tiny UNet hardly learns to use its prompt
    # Image denoisers train small first, then at the sizes they are asked for (the local
    # network's 512x512): (size, share of the steps, batch divisor, share of the pictures).
    # A UNet trained at 128 px alone paints texture, not shapes, at 512.
    stages: tuple[tuple[int, float, int, float], ...] = ((128, 0.6, 1, 1.0), (256, 0.2, 2, 0.4), (512, 0.2, 4, 0.2))


def _weight(snr, weighting: str):
    """Per-sample loss weights of the epsilon objective by signal-to-noise ratio."""
    import torch

    if weighting == "eps":
        return torch.ones_like(snr)
    if weighting == "min_snr":  # min(SNR, 5) / SNR: clean steps count less
        return torch.clamp(snr, max=MIN_SNR_GAMMA) / snr
    if weighting == "x0":  # towards the x0 objective (1/SNR), capped at 5: noisy steps count more
        return torch.clamp(1.0 / snr, max=MIN_SNR_GAMMA)
    raise ValueError(f"weighting must be eps, min_snr or x0, got {weighting!r}")


def stages(spec: ModelSpec, budget: Budget) -> list[tuple[int, int, int, int]]:
    """(size, steps, batch, pictures) per training stage of `spec`'s denoiser."""
    if spec.architecture is Architecture.TEXT_TO_VIDEO:
        return [(budget.video_size, budget.video_steps, budget.batch, budget.pictures)]
    return [(size, max(1, round(budget.denoiser_steps * share)), max(1, budget.batch // div),
             max(16, round(budget.pictures * pics))) for size, share, div, pics in budget.stages]


def look_of(spec: ModelSpec) -> str:
    return LOOK_OF.get(spec.name, LOOKS[0])


def _lr(step: int, steps: int, peak: float) -> float:
    warm = max(1, steps // 20)
    if step < warm:
        return peak * (step + 1) / warm
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm))))


def _to_tensor(pictures: np.ndarray, device="cpu"):
    """(N, F, H, W, 3) uint8 -> (N*F, 3, H, W) in [-1, 1]."""
    import torch

    n, f, h, w, _ = pictures.shape
    x = torch.from_numpy(pictures.reshape(n * f, h, w, 3)).permute(0, 3, 1, 2).float().to(device)
    return x / 127.5 - 1.0


def no_tick(what: str) -> None:
    """No progress display: a tick that shows nothing."""


def train_vae(vae, captions: Callable[[int], str], budget: Budget, log: Callable[[str], None],
              tick: Callable[[str], None] = no_tick) -> None:
    """Train `vae` in place on pictures of every look; `tick(what)` once per step (a progress display's)."""
    import torch

    rng = np.random.default_rng(budget.seed)
    torch.manual_seed(budget.seed)
    size = budget.image_size // 2
    opt = torch.optim.AdamW(vae.parameters(), lr=2e-3, weight_decay=0.0)
    vae.train()
    t0 = time.time()
    for step in range(budget.vae_steps):
        tick(f"VAE: step {step + 1} of {budget.vae_steps}")
        pics = np.stack([render(captions(int(rng.integers(1 << 30))), size, size, rng, look=LOOKS[i % len(LOOKS)])
                         for i in range(budget.batch)])
        x = _to_tensor(pics, vae.device)
        posterior = vae.encode(x).latent_dist
        # the mode plus a little noise: a full-variance sample drowns a tiny decoder early on
        y = vae.decode(posterior.mode() + 0.1 * torch.randn_like(posterior.mean)).sample
        loss = (y - x).abs().mean() + 1e-6 * posterior.kl().mean()
        for group in opt.param_groups:
            group["lr"] = _lr(step, budget.vae_steps, 2e-3)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 250 == 0 or step == budget.vae_steps - 1:
            log(f"vae step {step + 1}/{budget.vae_steps} L1 {loss.item():.4f} ({time.time() - t0:.0f} s)")
    vae.eval()


def latent_scale(vae, captions: Callable[[int], str], budget: Budget) -> float:
    """The latent scaling factor: 1 / the standard deviation of the VAE's latents of 64 pictures."""
    import torch

    rng = np.random.default_rng(budget.seed + 1)
    with torch.no_grad():
        pics = np.stack([render(captions(i), budget.image_size, budget.image_size, rng) for i in range(64)])
        std = vae.encode(_to_tensor(pics, vae.device)).latent_dist.mean.std().item()
    return 1.0 / std


def _latents(pipe, spec: ModelSpec, captions: list[str], size: int, budget: Budget, rng: np.random.Generator):
    """Draw and encode a stage's training set once: (N, 4, [F,] h, w) scaled latents."""
    import torch

    video = spec.architecture is Architecture.TEXT_TO_VIDEO
    frames = budget.video_frames if video else 1
    out = []
    with torch.no_grad():
        for start in range(0, len(captions), 8):
            pics = np.stack([render(c, size, size, rng, look=look_of(spec), frames=frames)
                             for c in captions[start:start + 8]])
            z = pipe.vae.encode(_to_tensor(pics, pipe.device)).latent_dist.mean * pipe.vae.config.scaling_factor
            if video:
                n = pics.shape[0]
                z = z.reshape(n, frames, *z.shape[1:]).permute(0, 2, 1, 3, 4)
            out.append(z)
    return torch.cat(out)


def _conditioning(pipe, spec: ModelSpec, prompts: list[str], rng: np.random.Generator):
    """The UNet's text conditioning for `prompts`, exactly as the pipeline computes it, with gradients."""
    import torch

    if spec.architecture is Architecture.SDXL:
        embeds, _, pooled, _ = pipe.encode_prompt(prompts, device=pipe.device, do_classifier_free_guidance=False)
        keep = torch.tensor([p != "" for p in prompts], dtype=embeds.dtype, device=pipe.device)
        embeds, pooled = embeds * keep[:, None, None], pooled * keep[:, None]  # the empty prompt is zeros
        sizes = rng.choice([512, 768, 1024], size=len(prompts))
        time_ids = torch.tensor([[s, s, 0, 0, s, s] for s in sizes], dtype=embeds.dtype, device=pipe.device)
        return {"encoder_hidden_states": embeds, "added_cond_kwargs": {"text_embeds": pooled, "time_ids": time_ids}}
    embeds, _ = pipe.encode_prompt(prompts, device=pipe.device, num_images_per_prompt=1,
                                   do_classifier_free_guidance=False)
    return {"encoder_hidden_states": embeds}


def _trainable(pipe):
    modules = [pipe.unet, pipe.text_encoder]
    if getattr(pipe, "text_encoder_2", None) is not None:
        modules.append(pipe.text_encoder_2)
    return modules


def train_denoiser(pipe, spec: ModelSpec, captions: Callable[[int], str], budget: Budget,
                   log: Callable[[str], None], tick: Callable[[str], None] = no_tick) -> None:
    """Train `pipe`'s text encoder(s) and UNet in place on its look of the world; `tick(what)` once per step."""
    import torch

    seed = budget.seed + sum(spec.name.encode())
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    betas = torch.linspace(NOISE_SCHEDULE["beta_start"] ** 0.5, NOISE_SCHEDULE["beta_end"] ** 0.5,
                           NOISE_SCHEDULE["num_train_timesteps"]) ** 2  # scaled_linear
    alphas = torch.cumprod(1.0 - betas, dim=0).to(pipe.device)
    modules = _trainable(pipe)
    params = [p for m in modules for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)
    for m in modules:
        m.train()
    plan = stages(spec, budget)
    total, done, t0 = sum(steps for _, steps, _, _ in plan), 0, time.time()
    for size, steps, batch, pictures in plan:
        texts = [captions(int(rng.integers(1 << 30))) for _ in range(pictures)]
        latents = _latents(pipe, spec, texts, size, budget, rng)
        log(f"{spec.name} stage {size}px: {steps} steps of {batch} on {pictures} pictures ({time.time() - t0:.0f} s)")
        for step in range(steps):
            tick(f"{spec.name} at {size}px: step {step + 1} of {steps}")
            idx = rng.integers(0, len(texts), batch)
            prompts = ["" if rng.random() < DROP_CAPTION else texts[i] for i in idx]
            x0 = latents[torch.from_numpy(idx).to(latents.device)]
            noise = torch.randn_like(x0)
            t = torch.randint(0, len(alphas), (batch,), device=latents.device)
            a = alphas[t].view(-1, *([1] * (x0.ndim - 1)))
            noisy = a.sqrt() * x0 + (1 - a).sqrt() * noise
            pred = pipe.unet(noisy, t, **_conditioning(pipe, spec, prompts, rng)).sample
            # min-SNR weighting (gamma 5): the noisy steps, where the prompt decides the picture,
            # weigh as much as the nearly clean ones, so the text conditioning is learnt in minutes
            snr = alphas[t] / (1 - alphas[t])
            weight = _weight(snr, budget.weighting)
            per_sample = (pred - noise).square().flatten(1).mean(1)
            loss = (weight * per_sample).mean()
            for group in opt.param_groups:
                group["lr"] = _lr(done, total, 1e-3)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            done += 1
            if step % 200 == 0 or step == steps - 1:
                log(f"{spec.name} {size}px step {step + 1}/{steps} loss {loss.item():.4f} ({time.time() - t0:.0f} s)")
    for m in modules:
        m.eval()


def save_component(module, path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().half().cpu().contiguous() for k, v in module.state_dict().items()}, str(path))


def load_component(module, path: Path) -> None:
    from safetensors.torch import load_file

    state = load_file(str(path))
    module.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)


def trained_weights(spec: ModelSpec, folder: Path | None = None) -> dict[str, Path] | None:
    """The shipped weight files of `spec` by pipeline component, or None when it has none."""
    folder = folder or WEIGHTS
    files = {"vae": folder / "vae.safetensors", **{p.stem: p for p in sorted((folder / spec.name).glob("*.safetensors"))}}
    if not (folder / "weights.json").exists() or len(files) < 3 or not all(p.exists() for p in files.values()):
        return None
    return files


def weights_info(folder: Path | None = None) -> dict:
    return json.loads(((folder or WEIGHTS) / "weights.json").read_text())
