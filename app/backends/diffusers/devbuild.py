"""Dev checkpoints: the real architectures at tiny widths, trained briefly or seeded random.

No weights can be downloaded, so every model type gets a checkpoint the project builds
itself: the same diffusers classes a real checkpoint uses (UNet2DConditionModel +
AutoencoderKL + CLIP text encoder for SD1.5; two text encoders and the text_time UNet
for SDXL; UNet3DConditionModel for text-to-video-ms-1.7b), saved with
`save_pretrained` in the diffusers folder format that `from_pretrained` loads. The VAE
keeps four blocks, so images are downsampled by 8 as in the real models and the request
sizes of SPEC.md apply unchanged.

Weights: trained ones from devweights/ when it holds them (`seedgrid models train-dev`,
devtrain.py, on the procedural world of devworld.py; they ship), else, and always
with `random=True`, seeded random weights.

Building is idempotent and reproducible: random weights come from a seed derived from
the model type's name, and a manifest of file hashes is written last; a folder whose
manifest matches its files and weights is left alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import zlib
from pathlib import Path

from app.backends.diffusers import devtrain
from app.backends.diffusers.loading import quiet_libraries
from app.backends.diffusers.schedulers import scheduler_for
from app.backends.diffusers.tokenizer import BOS, EOS, build_clip_tokenizer, vocab_size
from app.protocol.catalogue import Architecture, ModelSpec

MANIFEST = "seedgrid-dev-manifest.json"
FORMAT_VERSION = 3  # bump when the tiny architectures change, so old folders are rebuilt

# Tiny widths: large enough to be real networks (attention, resnets, every block type),
# small enough that a 512x512 image takes about a second on one CPU core.
_TEXT_HIDDEN = 32
_UNET_CHANNELS = (16, 32, 32)  # attention only in the lowest block keeps CPU steps ~10 ms
_VAE_CHANNELS = (16, 16, 32, 32)  # four blocks: a downsampling factor of 8, as in SD
_GROUPS = 8

# SD's training noise schedule, shared by every scheduler the catalogue names.
def model_seed(name: str) -> int:
    """Each model type gets its own weights, so two SD1.5 types differ like two checkpoints."""
    return zlib.crc32(name.encode())


def _text_config(projection: bool):
    from transformers import CLIPTextConfig

    vocab = vocab_size()
    return CLIPTextConfig(
        vocab_size=vocab, hidden_size=_TEXT_HIDDEN, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=77, projection_dim=_TEXT_HIDDEN,
        bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1,
    )


def _vae():
    from diffusers import AutoencoderKL

    n = len(_VAE_CHANNELS)
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=_VAE_CHANNELS,
        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
        layers_per_block=1, norm_num_groups=_GROUPS, sample_size=256,
        mid_block_add_attention=False,  # full-resolution attention would dominate a tiny model's time
    )


def _build_sd15(spec: ModelSpec):
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=_UNET_CHANNELS,
        down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        cross_attention_dim=_TEXT_HIDDEN, attention_head_dim=8, norm_num_groups=_GROUPS,
    )
    return StableDiffusionPipeline(
        vae=_vae(), text_encoder=CLIPTextModel(_text_config(False)), tokenizer=build_clip_tokenizer(), unet=unet,
        scheduler=scheduler_for(spec.scheduler), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )


def _build_sdxl(spec: ModelSpec):
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    time_dim = 8
    unet = UNet2DConditionModel(
        sample_size=128, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=_UNET_CHANNELS,
        down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=time_dim, transformer_layers_per_block=(1, 1, 2),
        # six size/crop conditioning numbers, each embedded to time_dim, plus the pooled text embedding
        projection_class_embeddings_input_dim=6 * time_dim + _TEXT_HIDDEN,
        cross_attention_dim=2 * _TEXT_HIDDEN, norm_num_groups=_GROUPS,
    )
    return StableDiffusionXLPipeline(
        vae=_vae(), text_encoder=CLIPTextModel(_text_config(False)),
        text_encoder_2=CLIPTextModelWithProjection(_text_config(True)),
        tokenizer=build_clip_tokenizer(), tokenizer_2=build_clip_tokenizer(), unet=unet,
        scheduler=scheduler_for(spec.scheduler), force_zeros_for_empty_prompt=True, add_watermarker=False,
    )


def _build_t2v(spec: ModelSpec):
    from diffusers import TextToVideoSDPipeline, UNet3DConditionModel
    from transformers import CLIPTextModel

    unet = UNet3DConditionModel(
        sample_size=32, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=_UNET_CHANNELS,
        down_block_types=("DownBlock3D", "DownBlock3D", "CrossAttnDownBlock3D"),
        up_block_types=("CrossAttnUpBlock3D", "UpBlock3D", "UpBlock3D"),
        cross_attention_dim=_TEXT_HIDDEN, attention_head_dim=8, norm_num_groups=_GROUPS,
    )
    return TextToVideoSDPipeline(
        vae=_vae(), text_encoder=CLIPTextModel(_text_config(False)), tokenizer=build_clip_tokenizer(), unet=unet,
        scheduler=scheduler_for(spec.scheduler),
    )


_BUILDERS = {Architecture.SD15: _build_sd15, Architecture.SDXL: _build_sdxl, Architecture.TEXT_TO_VIDEO: _build_t2v}


def _file_hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def weights_kind(spec: ModelSpec, random: bool = False) -> str:
    """What a build of `spec` holds: "trained:<hash of the shipped files>" or "random"."""
    files = None if random else devtrain.trained_weights(spec)
    if files is None:
        return "random"
    digest = hashlib.sha256((devtrain.WEIGHTS / "weights.json").read_bytes())
    for name, path in sorted(files.items()):
        digest.update(name.encode() + path.read_bytes())
    return "trained:" + digest.hexdigest()[:16]


def is_built(folder: Path, spec: ModelSpec, random: bool = False) -> bool:
    """True when the folder holds a complete dev checkpoint of this spec, format and weights."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return (
        manifest.get("format") == FORMAT_VERSION
        and manifest.get("model") == spec.name
        and manifest.get("weights") == weights_kind(spec, random)
        and manifest.get("files") == _file_hashes(folder)
    )


def _random_pipeline(spec: ModelSpec):
    import torch

    if spec.architecture not in _BUILDERS:
        raise ValueError(f"{spec.name} is not a diffusers model type; it has no dev checkpoint here")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(model_seed(spec.name))
        return _BUILDERS[spec.architecture](spec)


def _load_trained(pipe, files: dict[str, Path]) -> None:
    for component, path in files.items():
        devtrain.load_component(getattr(pipe, component), path)
    pipe.vae.register_to_config(scaling_factor=devtrain.weights_info()["vae_scaling_factor"])


def build_dev_checkpoint(spec: ModelSpec, folder: Path, *, force: bool = False, random: bool = False) -> bool:
    """Build `spec`'s dev checkpoint into `folder`; return False when it was already there.

    It holds the shipped trained weights when there are some, else (or with `random`)
    seeded random ones.
    """
    if not force and is_built(folder, spec, random):
        return False
    quiet_libraries()  # no "writing shards" bars from the libraries' own saving
    pipe = _random_pipeline(spec)
    kind = weights_kind(spec, random)
    if kind != "random":
        _load_trained(pipe, devtrain.trained_weights(spec))
    tmp = folder.with_name(folder.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.save_pretrained(tmp, safe_serialization=True)
    manifest = {"format": FORMAT_VERSION, "model": spec.name, "architecture": spec.architecture.value,
                "weights": kind, "tokens": {"bos": BOS, "eos": EOS}, "files": _file_hashes(tmp)}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)  # the manifest lands with the folder: a half-built folder never looks complete
    return True


# ControlNets (issue 11): one per control type of an SD1.5 type, made from its dev UNet.
CONTROLNET_FORMAT = 1
_CONTROL_EMBEDDING = (8, 16, 32, 32)  # the control image's encoder: four blocks, down by 8 like the VAE
# ControlNetModel.from_unet zero-initialises its output convolutions: a ControlNet that changes
# nothing until trained, which no cheat test could tell from plain txt2img. Seeded weights of this
# scale instead make the control image steer the picture from the start.
_CONTROL_OUTPUT_STD = 0.05


def build_dev_controlnet(spec: ModelSpec, control_type: str, base: Path, folder: Path, *, force: bool = False) -> bool:
    """Build the dev ControlNet of `control_type` for `spec` into `folder` from the dev checkpoint at
    `base` (its UNet's encoder, as ControlNet training starts); False when it was already there."""
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    base_weights = json.loads((base / MANIFEST).read_text())["weights"]
    wanted = {"format": CONTROLNET_FORMAT, "model": spec.name, "control": control_type, "base": base_weights}
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        if not force and {k: manifest.get(k) for k in wanted} == wanted and manifest.get("files") == _file_hashes(
                folder):
            return False
    except (OSError, ValueError):
        pass
    unet = UNet2DConditionModel.from_pretrained(base / "unet", local_files_only=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(model_seed(f"{spec.name}/controlnet-{control_type}"))
        controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=_CONTROL_EMBEDDING)
        for conv in (controlnet.controlnet_cond_embedding.conv_out, *controlnet.controlnet_down_blocks,
                     controlnet.controlnet_mid_block):
            torch.nn.init.normal_(conv.weight, std=_CONTROL_OUTPUT_STD)
            torch.nn.init.zeros_(conv.bias)
    tmp = folder.with_name(folder.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    controlnet.save_pretrained(tmp, safe_serialization=True)
    (tmp / MANIFEST).write_text(json.dumps({**wanted, "files": _file_hashes(tmp)}, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(folder)
    return True


def training_steps(specs: list[ModelSpec], budget: devtrain.Budget, keep_vae: bool = False) -> int:
    """How many optimiser steps `train_dev_weights` takes (a progress display's total)."""
    denoisers = sum(steps for s in specs if s.architecture in _BUILDERS for _, steps, _, _ in devtrain.stages(s, budget))
    return denoisers + (0 if keep_vae else budget.vae_steps)


def train_dev_weights(specs: list[ModelSpec], captions, budget: devtrain.Budget, log,
                      out: Path | None = None, keep_vae: bool = False, device: str = "cpu",
                      tick=devtrain.no_tick) -> dict:
    """Train one VAE for all, then each spec's text encoders and UNet; write the weights to `out`.

    keep_vae: train the denoisers against the VAE already in `out` (its latent space stays).
    device: where to train ("cuda" is minutes faster; the weights are equivalent, not bit-identical).
    tick: told what is trained next, once per optimiser step (`training_steps` in all).
    """
    out = out or devtrain.WEIGHTS
    specs = [s for s in specs if s.architecture in _BUILDERS]
    if not specs:
        raise ValueError("no diffusers model type to train")
    vae = _random_pipeline(specs[0]).vae.to(device)
    if keep_vae:
        devtrain.load_component(vae, out / "vae.safetensors")
    else:
        devtrain.train_vae(vae, captions, budget, log, tick)
        devtrain.save_component(vae, out / "vae.safetensors")
        devtrain.load_component(vae, out / "vae.safetensors")  # the shipped fp16 weights, as builds will load them
    scaling = devtrain.latent_scale(vae, captions, budget)
    vae.register_to_config(scaling_factor=scaling)
    trained = {}
    for spec in specs:
        pipe = _random_pipeline(spec).to(device)
        pipe.vae.load_state_dict(vae.state_dict())
        pipe.vae.register_to_config(scaling_factor=scaling)
        devtrain.train_denoiser(pipe, spec, captions, budget, log, tick)
        for component in ("unet", "text_encoder", "text_encoder_2"):
            if getattr(pipe, component, None) is not None:
                devtrain.save_component(getattr(pipe, component), out / spec.name / f"{component}.safetensors")
        trained[spec.name] = devtrain.look_of(spec)
    info = {"vae_scaling_factor": scaling, "looks": trained, "budget": dataclasses.asdict(budget), "device": device,
            "made_by": "seedgrid models train-dev" + (" --keep-vae" if keep_vae else "") + f" --device {device}"}
    (out / "weights.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info
