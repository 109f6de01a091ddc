"""The verification ladder on real outputs of the dev checkpoints."""

import json
import os
import subprocess

import numpy as np
import pytest

from app.generation.service import get_engine
from app.protocol import media
from app.protocol.request import parse_request
from app.verification.fingerprint import similarity
from app.verification.pixels import verify
from app.verification.thresholds import threshold_for

from ..helpers.commands import SEEDGRID
from ..helpers.small_requests import small_request


@pytest.fixture(scope="module")
def reference(settings):
    raw = small_request("RealisticVision", seed=77)
    out = get_engine("RealisticVision", settings).generate(parse_request(raw))
    return raw, out


def judge(reference, data, media_type="image/png", duplicate_of=None):
    _, ref = reference
    return verify(data=data, media_type=media_type, expected_pixels=ref.pixels, expected_sha256=ref.pixel_sha256,
                  expected_media_type="image/png", threshold=threshold_for("RealisticVision").similarity,
                  duplicate_of=duplicate_of)


def test_same_environment_is_exact(reference):
    assert judge(reference, reference[1].data).rung == "exact"


def test_other_thread_count_is_tolerant(reference, tmp_path):
    raw, ref = reference
    out = tmp_path / "t1.png"
    p = subprocess.run([SEEDGRID, "generate", "--model", "RealisticVision", "--prompt", raw["prompt"], "--seed", "77",
                        *[a for k, v in raw["params"].items() for a in (f"--{k}", str(v))], "--out", str(out), "--json"],
                       capture_output=True, text=True, env={**os.environ, "SEEDGRID_THREADS": "1"}, timeout=300)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["environment"]["threads"] == 1
    v = judge(reference, out.read_bytes())
    if v.rung == "exact":
        pytest.skip("this CPU gives bit-identical pixels at 1 and 2 threads; the tolerant path is not exercised")
    assert v.rung == "tolerant" and v.similarity > threshold_for("RealisticVision").similarity, v


@pytest.mark.parametrize("cheat", ["seed", "steps", "scheduler"])
def test_cheats_fail_on_similarity(settings, reference, cheat):
    raw, _ = reference
    changed = {"seed": {**raw, "seed": 78}, "steps": small_request("RealisticVision", seed=77, steps=3),
               "scheduler": small_request("RealisticVision", seed=77, scheduler="euler_a")}[cheat]
    out = get_engine("RealisticVision", settings).generate(parse_request(changed))
    v = judge(reference, out.data)
    assert v.rung == "failed" and "beyond the threshold" in v.reason, v


def test_structural_failures_are_named(reference):
    _, ref = reference
    blank = media.encode_png(np.zeros_like(ref.pixels))
    assert "blank" in judge(reference, blank).reason
    assert "unreadable" in judge(reference, b"CUDA out of memory").reason
    assert "expected" in judge(reference, media.encode_png(ref.pixels[:, :128])).reason
    assert "media type" in judge(reference, ref.data, media_type="video/mp4").reason
    assert "replayed or copied" in judge(reference, ref.data, duplicate_of="challenge c1").reason


def test_similarity_compares_frames_and_shapes():
    a = np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    assert similarity(a, a) == pytest.approx(1.0)
    b = a.copy()
    b[2] = 255 - b[2]  # one frame wrong: the minimum over frames catches it
    assert similarity(a, b) < 0.5
    with pytest.raises(ValueError):
        similarity(a, a[:2])


def test_the_committed_calibration_separates_what_it_recorded():
    """Per model type: the honest maximum sits below the threshold, every cheat's minimum above
    it, the closest cheat and the margin agree with what is recorded, and the margin is x10 at
    least: a hand edit or a stale file fails here. Format 2 (app/testkit/calibration.py) also
    records distributions over many challenges; format 1 one threshold per type."""
    from app.backends.registry import SERVED_MODELS
    from app.testkit.cheats import ALTERED, sibling
    from app.verification.thresholds import CALIBRATION, load

    doc = json.loads(CALIBRATION.read_text())
    assert set(doc["models"]) == set(SERVED_MODELS)
    for model, m in doc["models"].items():
        distance = 1 - m["threshold"]
        if doc.get("format") == 2:
            honest_max = max(v["max"] for v in m["honest_by_variant"].values())
            cheats = {k: v["min"] for k, v in m["cheats"].items()}
            assert abs(m["threshold_distance"] - distance) < 1e-12, model
        else:
            honest_max, cheats = m["honest_max_distance"], m["cheats"]
        assert honest_max < distance < min(cheats.values()) == cheats[m["closest_cheat"]], model
        assert abs(m["margin"] - min(cheats.values()) / max(honest_max, 1e-12)) <= 1e-6 * m["margin"], model
        assert m["margin"] >= 10, f"{model}: margin x{m['margin']:.1f} is below the x10 the verifier needs"
        expected = {n for n in ALTERED if n != "other_checkpoint" or sibling(model)}
        assert expected <= set(cheats), f"{model}: not calibrated against {expected - set(cheats)}"
        assert list(load(CALIBRATION)[model].values()) == [m["threshold"]], model


def _calibration(tmp_path, pairs):
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"format": 2, "models": {"RealisticVision": {"pairs": {
        k: {"threshold": t} for k, t in pairs.items()}}}}))
    return path


def test_a_calibrated_pair_gets_its_own_threshold_and_an_unknown_pair_the_strictest(settings, tmp_path, caplog):
    from app.verification.thresholds import threshold_for

    path = _calibration(tmp_path, {"cpu/float32~cpu/float32": 0.9999, "cpu/float32~cuda/float16": 0.99})
    s = settings.model_copy(update={"calibration_file": path})
    cpu, gpu = {"device": "cpu", "dtype": "float32"}, {"device": "cuda:0", "dtype": "float16"}
    assert threshold_for("RealisticVision", s, cpu, gpu).similarity == 0.99
    assert threshold_for("RealisticVision", s, gpu, cpu).basis == "calibrated cpu/float32~cuda/float16"
    strict = threshold_for("RealisticVision", s, cpu, {"device": "cpu", "dtype": "bfloat16"})
    assert strict.similarity == 0.9999 and "uncalibrated pair" in strict.basis
    assert "no calibration for environments cpu/float32 against cpu/bfloat16" in caplog.text
    for claim in (None, {}, {"device": 3}, "cuda"):  # a missing or malformed claim is judged strictly
        assert threshold_for("RealisticVision", s, cpu, claim).similarity == 0.9999
    assert threshold_for("DreamShaper", s, cpu, cpu).basis == "fallback: not calibrated"
    with_setting = s.model_copy(update={"verification_thresholds": {"RealisticVision": 0.5}})
    assert threshold_for("RealisticVision", with_setting, cpu, gpu).basis == "operator setting"
