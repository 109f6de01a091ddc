"""One tile of a latent's decoding, equal to the same tile of the full decoding, at a small part of its cost.

The VAE decoder is local (3x3 convolutions, nearest upsampling) except for two things:
its GroupNorms, whose statistics span the whole feature map, and the mid-block's attention
(SD1.5's VAE; the dev checkpoints have none). The miner records every decoder GroupNorm's
per-group mean and variance while its pipeline decodes (`record_norms`) and commits them
in the final leaf. The validator (`decode_tile`):

- where the mid-block has attention, runs it natively on the whole latent (with the
  post-quant conv and conv_in before it: cheap at 1/8 scale);
- runs the rest (every layer, where there is no attention) on the region the tile depends on, with the committed statistics in place of the GroupNorms' own: each 3x3
  convolution needs one more pixel of margin at its resolution, so the region shrinks
  towards the tile as the resolution grows and the costly full-resolution layers see little
  more than the tile.

Where the statistics are the miner's true ones the tile equals the full decode's to float
rounding (measured: bench/calibrate_trajectory.py). Committed statistics that are not the
decode's change the whole image's tone per channel group, the same everywhere; what that
leaves unproven is in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

Rect = tuple[int, int, int, int]  # y0, y1, x0, x1 at one resolution


class UnsupportedDecoder(ValueError):
    pass


def _norms(decoder) -> list:
    import torch

    return [m for m in decoder.modules() if isinstance(m, torch.nn.GroupNorm)]


@contextmanager
def record_norms(decoder):
    """While decoding inside this block, every decoder GroupNorm's input (mean, variance) per sample
    (a video's frames) and group; yields a list that holds, after the block, one (samples, groups, 2)
    float32 array per norm in module order (a decoder called once per frame adds up alike)."""
    import torch

    norms = _norms(decoder)
    seen: dict[int, list[np.ndarray]] = {i: [] for i in range(len(norms))}

    def hook(index):
        def capture(module, args):
            x = args[0]
            var, mean = torch.var_mean(x.reshape(x.shape[0], module.num_groups, -1).float(), dim=-1,
                                       unbiased=False)
            seen[index].append(torch.stack([mean, var], dim=-1).detach().cpu().numpy())
        return capture

    handles = [m.register_forward_pre_hook(hook(i)) for i, m in enumerate(norms)]
    out: list[np.ndarray] = []
    try:
        yield out
    finally:
        for h in handles:
            h.remove()
    if norms and all(seen.values()):
        out.extend(np.concatenate(seen[i]) for i in range(len(norms)))


def stacked(norms: list[np.ndarray]) -> np.ndarray:
    """(norms, samples, groups, 2), the committed form: a sample per frame of a video, one for an image."""
    return np.stack(norms).astype(np.float32)


@dataclass
class _Stage:
    run: object  # callable on a feature map
    scale: int  # 2 where the stage upsamples
    margin: int  # pixels of its output that depend on what lies beyond its input's crop


def _fixed_norm(module, x, stats):
    """GroupNorm with given (mean, variance) per group instead of the input's own, in the form
    PyTorch's CPU kernel applies it: one scale and one shift per channel."""
    import torch

    c, g = x.shape[1], module.num_groups
    s = torch.tensor(np.asarray(stats), dtype=torch.float32, device=x.device)
    rstd = torch.rsqrt(s[:, 1] + module.eps).repeat_interleave(c // g)
    mean = s[:, 0].repeat_interleave(c // g)
    scale = rstd * module.weight.float() if module.affine else rstd
    shift = (module.bias.float() - mean * scale) if module.affine else -mean * scale
    return torch.addcmul(shift.to(x.dtype).view(1, c, 1, 1), x, scale.to(x.dtype).view(1, c, 1, 1))


def _check_conv3(conv, where: str) -> None:
    if tuple(conv.kernel_size) != (3, 3) or tuple(conv.padding) != (1, 1) or tuple(conv.stride) != (1, 1):
        raise UnsupportedDecoder(f"{where}: a {conv.kernel_size} convolution; tile decoding expects 3x3")


def _resnet_stage(block, stats_of) -> _Stage:
    for attr in ("time_emb_proj", "upsample", "downsample"):
        if getattr(block, attr, None) is not None:
            raise UnsupportedDecoder(f"a decoder resnet with {attr}: tile decoding does not cover it")
    _check_conv3(block.conv1, "resnet conv1")
    _check_conv3(block.conv2, "resnet conv2")

    def run(x):
        h = block.conv1(block.nonlinearity(_fixed_norm(block.norm1, x, stats_of(block.norm1))))
        h = block.conv2(block.dropout(block.nonlinearity(_fixed_norm(block.norm2, h, stats_of(block.norm2)))))
        shortcut = block.conv_shortcut(x) if block.conv_shortcut is not None else x
        return (shortcut + h) / block.output_scale_factor
    return _Stage(run, 1, 2)


def _upsample_stage(upsampler) -> _Stage:
    if getattr(upsampler, "norm", None) is not None or getattr(upsampler, "use_conv_transpose", False) \
            or not getattr(upsampler, "interpolate", True) or not upsampler.use_conv:
        raise UnsupportedDecoder("an upsampler other than nearest x2 and a 3x3 convolution")
    _check_conv3(upsampler.conv, "upsampler conv")
    return _Stage(lambda x: upsampler(x), 2, 1)


def _global_mid(decoder) -> bool:
    """Whether the mid-block attends over the whole map (SD1.5's VAE): then it runs whole, natively."""
    return any(a is not None for a in getattr(decoder.mid_block, "attentions", None) or [])


def _stages(vae, stats_of) -> list[_Stage]:
    decoder, stages = vae.decoder, []
    if not _global_mid(decoder):
        if getattr(vae, "post_quant_conv", None) is not None:
            stages.append(_Stage(vae.post_quant_conv, 1, 0))  # 1x1
        _check_conv3(decoder.conv_in, "conv_in")
        stages.append(_Stage(decoder.conv_in, 1, 1))
        stages += [_resnet_stage(r, stats_of) for r in decoder.mid_block.resnets]
    for block in decoder.up_blocks:
        if getattr(block, "attentions", None):
            raise UnsupportedDecoder("an up block with attention")
        stages += [_resnet_stage(r, stats_of) for r in block.resnets]
        stages += [_upsample_stage(u) for u in (block.upsamplers or [])]
    _check_conv3(decoder.conv_out, "conv_out")
    stages.append(_Stage(lambda x: decoder.conv_out(decoder.conv_act(
        _fixed_norm(decoder.conv_norm_out, x, stats_of(decoder.conv_norm_out)))), 1, 1))
    return stages


def _needed(stages: list[_Stage], tile: Rect, size: tuple[int, int]) -> list[Rect]:
    """Per stage, the region of its input the tile depends on (clipped to the map: a real border
    is zero-padded alike in the full decode); the last entry is the tile."""
    h, w = size
    regions = [tile]
    for stage in reversed(stages):
        y0, y1, x0, x1 = regions[0]
        y0, y1, x0, x1 = max(0, y0 - stage.margin), min(h, y1 + stage.margin), max(0, x0 - stage.margin), \
            min(w, x1 + stage.margin)
        if stage.scale == 2:
            y0, y1, x0, x1, h, w = y0 // 2, (y1 + 1) // 2, x0 // 2, (x1 + 1) // 2, h // 2, w // 2
        regions.insert(0, (y0, y1, x0, x1))
    return regions


def decode_tile(vae, latent, norms: np.ndarray, tile: Rect):
    """The decoder's output (1, C, th, tw) for `tile` (pixels at the image's resolution) of the latent
    (already divided by the VAE's scaling factor), with the committed GroupNorm statistics `norms`
    ((norms, groups, 2), the module order of `record_norms`)."""
    import torch

    decoder = vae.decoder
    modules = _norms(decoder)
    if norms.shape != (len(modules), modules[0].num_groups, 2) or \
            any(m.num_groups != modules[0].num_groups for m in modules):
        raise UnsupportedDecoder(f"{norms.shape[0]} committed norm statistics for a decoder with {len(modules)}")
    index = {id(m): i for i, m in enumerate(modules)}

    def stats_of(module):
        return norms[index[id(module)]]

    stages = _stages(vae, stats_of)
    with torch.inference_mode():
        x = latent
        if _global_mid(decoder):  # the attention spans the map: the latent-resolution part runs whole
            x = vae.post_quant_conv(x) if getattr(vae, "post_quant_conv", None) is not None else x
            x = decoder.mid_block(decoder.conv_in(x), None)
        scale = 2 ** sum(s.scale == 2 for s in stages)
        regions = _needed(stages, tile, (x.shape[-2] * scale, x.shape[-1] * scale))
        y0, y1, x0, x1 = regions[0]
        x = x[..., y0:y1, x0:x1]
        for stage, here, nxt in zip(stages, regions, regions[1:]):
            x = stage.run(x)
            oy, ox = here[0] * stage.scale, here[2] * stage.scale
            x = x[..., nxt[0] - oy:nxt[1] - oy, nxt[2] - ox:nxt[3] - ox]
    return x
