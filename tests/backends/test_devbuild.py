"""Dev checkpoints: real architectures, reproducible bytes, idempotent builds."""

import json

from app.backends.diffusers.devbuild import MANIFEST, build_dev_checkpoint, is_built
from app.protocol.catalogue import CATALOGUE


def test_build_is_reproducible_and_idempotent(tmp_path):
    spec = CATALOGUE["RealisticVision"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert build_dev_checkpoint(spec, a) is True
    assert build_dev_checkpoint(spec, b) is True
    files_a = json.loads((a / MANIFEST).read_text())["files"]
    assert files_a == json.loads((b / MANIFEST).read_text())["files"], "same seed, same bytes"
    assert build_dev_checkpoint(spec, a) is False, "a complete checkpoint is left alone"
    assert {"model_index.json", "unet/diffusion_pytorch_model.safetensors", "tokenizer/tokenizer.json"} <= set(files_a)


def test_damaged_checkpoint_is_rebuilt(tmp_path):
    spec = CATALOGUE["RealisticVision"]
    folder = tmp_path / "rv"
    build_dev_checkpoint(spec, folder)
    (folder / "unet" / "config.json").write_text("{}")
    assert not is_built(folder, spec)
    assert build_dev_checkpoint(spec, folder) is True and is_built(folder, spec)


def test_two_sd15_types_have_different_weights(tmp_path):
    a = tmp_path / "rv"
    b = tmp_path / "ds"
    build_dev_checkpoint(CATALOGUE["RealisticVision"], a)
    build_dev_checkpoint(CATALOGUE["DreamShaper"], b)
    ha = json.loads((a / MANIFEST).read_text())["files"]["unet/diffusion_pytorch_model.safetensors"]
    hb = json.loads((b / MANIFEST).read_text())["files"]["unet/diffusion_pytorch_model.safetensors"]
    assert ha != hb
