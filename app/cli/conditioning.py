"""The command-line options of image-conditioned requests, shared by `seedgrid generate` and `seedgrid submit`.

--init-image alone means img2img and --control alone means controlnet; --pipeline says it
outright. Files are read and sent as base64, as the protocol carries images; what is
wrong with them is said by parse_request, naming the field.
"""

from __future__ import annotations

import base64
from pathlib import Path

import click

from app.protocol.conditioning import CONTROL_TYPES

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
OPTIONS = (
    click.option("--pipeline", default=None, help="txt2img (images), txt2vid (video), img2img or controlnet; "
                                                  "`GET /v1/info` of a miner lists what its model serves"),
    click.option("--init-image", type=_FILE, default=None, help="img2img: the image to start from (PNG, JPEG, WebP)"),
    click.option("--strength", type=click.FloatRange(0, 1), default=None,
                 help="img2img: how much of the init image is noised away (default 0.75)"),
    click.option("--control", "control_type", type=click.Choice(CONTROL_TYPES), default=None,
                 help="controlnet: canny (edges are found in --control-image), depth or normal (the image is the map)"),
    click.option("--control-image", type=_FILE, default=None, help="controlnet: the conditioning image"),
    click.option("--control-scale", type=click.FloatRange(0, 2), default=None,
                 help="controlnet: how strongly it guides (default 1.0)"),
)


def conditioning_options(command):
    """Add the image-conditioning options to a click command (its function takes them as keywords)."""
    for option in reversed(OPTIONS):
        command = option(command)
    return command


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def conditioning_fields(pipeline: str | None, init_image: Path | None, strength: float | None,
                        control_type: str | None, control_image: Path | None, control_scale: float | None) -> dict:
    """The request fields the options give (none for a text-only request)."""
    if pipeline is None:
        pipeline = "img2img" if init_image else "controlnet" if control_type or control_image else None
    fields: dict = {"pipeline": pipeline} if pipeline else {}
    if init_image is not None:
        fields["init_image"] = _b64(init_image)
    if strength is not None:
        fields["strength"] = strength
    if control_type or control_image or control_scale is not None:
        if control_type is None or control_image is None:
            raise click.UsageError("controlnet needs both --control TYPE and --control-image FILE")
        control = {"type": control_type, "image": _b64(control_image)}
        if control_scale is not None:
            control["conditioning_scale"] = control_scale
        fields["control"] = control
    return fields
