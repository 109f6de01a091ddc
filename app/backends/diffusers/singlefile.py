"""Export an SD1.5 diffusers folder as one original-format `.safetensors` checkpoint.

Community SD1.5 models ship as a single file in the original (LDM) key layout, which
`from_single_file` converts on load. The dev checkpoints are diffusers folders, so this
module writes the inverse of diffusers' conversion (UNet, VAE, CLIP text encoder, and a
ControlNet, which ships as one file too), for
any `layers_per_block` and block layout. It lets the single-file loading path be tested
offline on a real file, and lets an operator hand a dev model to tools that want one file.
"""

from __future__ import annotations

import json
from pathlib import Path

_UNET = "model.diffusion_model."
_VAE = "first_stage_model."
_TEXT = "cond_stage_model.transformer."
_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2",
}
_UNET_RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
                ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]
_VAE_TOP = {"conv_norm_out": "norm_out"}


def _resnet(rest: str, table=_UNET_RESNET) -> str:
    head, _, tail = rest.partition(".")
    for new, old in table:
        if head == new:
            return f"{old}.{tail}"
    return rest


def unet_key(key: str, config: dict) -> str:
    step = config["layers_per_block"] + 1
    up_has_attention = ["CrossAttn" in t for t in config.get("up_block_types", ())]  # a ControlNet has none
    for new, old in _UNET_TOP.items():
        if key.startswith(new + "."):
            return old + key[len(new):]
    parts = key.split(".")
    if parts[0] in ("down_blocks", "up_blocks") and len(parts) > 4:
        b, sub, i, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
        if parts[0] == "down_blocks":
            if sub == "resnets":
                return f"input_blocks.{b * step + i + 1}.0.{_resnet(rest)}"
            if sub == "attentions":
                return f"input_blocks.{b * step + i + 1}.1.{rest}"
            if sub == "downsamplers":  # conv.weight -> op.weight
                return f"input_blocks.{(b + 1) * step}.0.op.{rest.removeprefix('conv.')}"
        else:
            if sub == "resnets":
                return f"output_blocks.{b * step + i}.0.{_resnet(rest)}"
            if sub == "attentions":
                return f"output_blocks.{b * step + i}.1.{rest}"
            if sub == "upsamplers":  # after the block's last resnet (and its attention, if any)
                return f"output_blocks.{b * step + step - 1}.{2 if up_has_attention[b] else 1}.{rest}"
    if parts[0] == "mid_block" and len(parts) > 3:
        rest = ".".join(parts[3:])
        if parts[1] == "resnets":
            return f"middle_block.{2 * int(parts[2])}.{_resnet(rest)}"
        if parts[1] == "attentions":
            return f"middle_block.1.{rest}"
    raise ValueError(f"no original-format name for UNet weight {key!r}")


def vae_key(key: str, config: dict) -> str:
    n = len(config["up_block_types"])
    coder, rest = key.split(".", 1) if key.startswith(("encoder.", "decoder.")) else ("", key)
    prefix = f"{coder}." if coder else ""
    for new, old in _VAE_TOP.items():
        if rest.startswith(new + "."):
            return prefix + old + rest[len(new):]
    parts = rest.split(".")
    shortcut = [("conv_shortcut", "nin_shortcut")]
    if parts[0] == "down_blocks" and parts[2] == "resnets":
        return f"{prefix}down.{parts[1]}.block.{parts[3]}.{_resnet('.'.join(parts[4:]), shortcut)}"
    if parts[0] == "down_blocks" and parts[2] == "downsamplers":
        return f"{prefix}down.{parts[1]}.downsample.{'.'.join(parts[4:])}"
    if parts[0] == "up_blocks" and parts[2] == "resnets":
        return f"{prefix}up.{n - 1 - int(parts[1])}.block.{parts[3]}.{_resnet('.'.join(parts[4:]), shortcut)}"
    if parts[0] == "up_blocks" and parts[2] == "upsamplers":
        return f"{prefix}up.{n - 1 - int(parts[1])}.upsample.{'.'.join(parts[4:])}"
    if parts[0] == "mid_block" and parts[1] == "resnets":
        return f"{prefix}mid.block_{int(parts[2]) + 1}.{_resnet('.'.join(parts[3:]), shortcut)}"
    if parts[0] in ("conv_in", "conv_out", "quant_conv", "post_quant_conv"):
        return key
    raise ValueError(f"no original-format name for VAE weight {key!r} (mid-block attention is not exported)")


def text_key(key: str, config: dict) -> str:
    # transformers >= 5.6 saves CLIPTextModel flattened; the original layout keeps `text_model.`
    return key if key.startswith("text_model.") else f"text_model.{key}"


def export_sd15(folder: Path, out: Path) -> Path:
    """Write `folder`'s UNet, VAE and text encoder as one original-format .safetensors file."""
    from safetensors.torch import load_file, save_file

    folder = Path(folder)
    state: dict = {}
    for component, prefix, rename in (("unet", _UNET, unet_key), ("vae", _VAE, vae_key), ("text_encoder", _TEXT, text_key)):
        config = json.loads((folder / component / "config.json").read_text())
        weights = next((folder / component).glob("*.safetensors"))
        for key, tensor in load_file(str(weights)).items():
            state[prefix + rename(key, config)] = tensor.contiguous()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out), metadata={"format": "pt", "seedgrid": "sd15 export"})
    return out


_CONTROL = "control_model."


def controlnet_key(key: str, config: dict) -> str:
    """A ControlNet weight's original (cldm) name: the UNet encoder's names, the hint encoder's
    convolutions (input_hint_block, a SiLU between each), zero_convs and middle_block_out."""
    parts = key.split(".")
    if parts[0] == "controlnet_cond_embedding":
        blocks = 2 * (len(config["conditioning_embedding_out_channels"]) - 1)
        index = {"conv_in": 0, "conv_out": 2 * (blocks + 1)}.get(parts[1])
        if index is None:  # blocks.N
            index, parts = 2 * (int(parts[2]) + 1), parts[:2] + parts[3:]
        return f"input_hint_block.{index}.{'.'.join(parts[2:])}"
    if parts[0] == "controlnet_down_blocks":
        return f"zero_convs.{parts[1]}.0.{'.'.join(parts[2:])}"
    if parts[0] == "controlnet_mid_block":
        return f"middle_block_out.0.{'.'.join(parts[1:])}"
    return unet_key(key, config)


def export_controlnet(folder: Path, out: Path) -> Path:
    """Write a diffusers ControlNet folder as one original-format .safetensors file (as ControlNets ship)."""
    from safetensors.torch import load_file, save_file

    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    weights = next(folder.glob("*.safetensors"))
    state = {_CONTROL + controlnet_key(k, config): t.contiguous() for k, t in load_file(str(weights)).items()}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out), metadata={"format": "pt", "seedgrid": "controlnet export"})
    return out
