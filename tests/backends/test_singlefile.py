"""The single-file loading path (`from_single_file`) on a real original-format checkpoint."""

import pytest
import torch

from app.backends.diffusers.determinism import Runtime
from app.backends.diffusers.engine import Engine
from app.backends.diffusers.loading import load_controlnet
from app.backends.diffusers.singlefile import export_controlnet, export_sd15
from app.protocol.catalogue import CATALOGUE
from app.protocol.errors import CheckpointError
from app.protocol.request import parse_request

from ..conftest import DEV_CHECKPOINTS


@pytest.fixture(scope="module")
def single_file(tmp_path_factory):
    return export_sd15(DEV_CHECKPOINTS / "DreamShaper", tmp_path_factory.mktemp("sf") / "dreamshaper.safetensors")


def test_single_file_loads_the_same_weights_and_pixels(single_file):
    runtime = Runtime("cpu", "float32", torch.get_num_threads())
    folder = Engine.load(CATALOGUE["DreamShaper"], DEV_CHECKPOINTS / "DreamShaper", runtime)
    single = Engine.load(CATALOGUE["DreamShaper"], single_file, runtime, config=DEV_CHECKPOINTS / "DreamShaper")
    for name in ("unet", "vae", "text_encoder"):
        a, b = (getattr(e.pipeline, name).state_dict() for e in (folder, single))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    req = parse_request({"model": "DreamShaper", "prompt": "a cat", "seed": 4,
                         "params": {"steps": 4, "width": 256, "height": 256}})
    assert folder.generate(req).pixel_sha256 == single.generate(req).pixel_sha256


def test_single_file_without_configs_says_what_to_set(single_file):
    with pytest.raises(CheckpointError) as err:
        Engine.load(CATALOGUE["DreamShaper"], single_file, Runtime("cpu", "float32", 1))
    assert "SEEDGRID_MODEL_CONFIGS" in str(err.value)


def test_video_type_refuses_a_single_file(single_file):
    with pytest.raises(CheckpointError) as err:
        Engine.load(CATALOGUE["TextToVideo"], single_file, Runtime("cpu", "float32", 1), config=DEV_CHECKPOINTS / "TextToVideo")
    assert "diffusers folder" in str(err.value)


def test_a_controlnet_single_file_loads_the_same_weights(tmp_path):
    folder = DEV_CHECKPOINTS / "controlnet" / "RealisticVision-canny"
    single = export_controlnet(folder, tmp_path / "canny.safetensors")
    a = load_controlnet(folder, device="cpu", dtype="float32").state_dict()
    b = load_controlnet(single, device="cpu", dtype="float32", config=folder).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(CheckpointError) as err:
        load_controlnet(single, device="cpu", dtype="float32")
    assert "SEEDGRID_MODEL_CONFIGS" in str(err.value)
