"""Dev checkpoints: real architectures, reproducible bytes, idempotent builds."""

import json

from app.backends.diffusers import devtrain
from app.backends.diffusers.devbuild import (
    MANIFEST,
    build_dev_checkpoint,
    build_dev_controlnet,
    is_built,
    train_dev_weights,
    weights_kind,
)
from app.protocol.catalogue import CATALOGUE


def test_build_is_reproducible_and_idempotent(tmp_path):
    spec = CATALOGUE["RealisticVision"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert build_dev_checkpoint(spec, a) is True
    assert build_dev_checkpoint(spec, b) is True
    assert json.loads((a / MANIFEST).read_text())["weights"] == weights_kind(spec), "the shipped weights, if any"
    files_a = json.loads((a / MANIFEST).read_text())["files"]
    assert files_a == json.loads((b / MANIFEST).read_text())["files"], "same seed, same bytes"
    assert build_dev_checkpoint(spec, a) is False, "a complete checkpoint is left alone"
    assert {"model_index.json", "unet/diffusion_pytorch_model.safetensors", "tokenizer/tokenizer.json"} <= set(files_a)


def test_dev_controlnets_are_seeded_per_type_idempotent_and_follow_their_base(tmp_path):
    spec = CATALOGUE["RealisticVision"]
    base = tmp_path / "rv"
    build_dev_checkpoint(spec, base)
    a, b, depth = tmp_path / "canny-a", tmp_path / "canny-b", tmp_path / "depth"
    assert build_dev_controlnet(spec, "canny", base, a) is True and build_dev_controlnet(spec, "canny", base, b) is True
    assert build_dev_controlnet(spec, "depth", base, depth) is True
    files = {f: json.loads((f / MANIFEST).read_text())["files"] for f in (a, b, depth)}
    assert files[a] == files[b], "same seed, same bytes"
    assert files[a] != files[depth], "each control type its own weights"
    assert build_dev_controlnet(spec, "canny", base, a) is False, "a complete one is left alone"
    (a / "diffusion_pytorch_model.safetensors").write_bytes(b"damaged")
    assert build_dev_controlnet(spec, "canny", base, a) is True, "a damaged one is rebuilt"
    manifest = json.loads((a / MANIFEST).read_text())
    assert manifest["base"] == json.loads((base / MANIFEST).read_text())["weights"] and manifest["control"] == "canny"


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


def test_trained_weights_are_built_in_and_random_builds_stay_available(tmp_path, monkeypatch):
    """A few steps of `seedgrid models train-dev` into a folder: builds take its weights, and
    `random=True` still builds seeded random ones; switching between them rebuilds."""
    spec = CATALOGUE["RealisticVision"]
    weights = tmp_path / "weights"
    info = train_dev_weights([spec], lambda i: f"a red fox standing at night {i}",
                             devtrain.Budget(vae_steps=2, denoiser_steps=2, pictures=16, batch=4), lambda _m: None,
                             out=weights)
    assert info["looks"] == {"RealisticVision": "shaded"} and info["vae_scaling_factor"] > 0
    assert {p.name for p in (weights / "RealisticVision").iterdir()} == {"unet.safetensors",
                                                                       "text_encoder.safetensors"}
    monkeypatch.setattr(devtrain, "WEIGHTS", weights)
    folder = tmp_path / "rv"
    assert build_dev_checkpoint(spec, folder) is True
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["weights"].startswith("trained:")
    vae_config = json.loads((folder / "vae" / "config.json").read_text())
    assert vae_config["scaling_factor"] == info["vae_scaling_factor"]
    assert is_built(folder, spec) and not is_built(folder, spec, random=True)
    assert build_dev_checkpoint(spec, folder, random=True) is True
    random_manifest = json.loads((folder / MANIFEST).read_text())
    assert random_manifest["weights"] == "random"
    unet = "unet/diffusion_pytorch_model.safetensors"
    assert random_manifest["files"][unet] != manifest["files"][unet]
