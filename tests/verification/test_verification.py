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
    near = ref.pixels.copy()
    near[0, 0, 0, 0] ^= 1  # within any threshold, yet not the reproduction
    assert "replayed or copied" in judge(reference, media.encode_png(near), duplicate_of="challenge c1").reason
    assert judge(reference, ref.data, duplicate_of="challenge c1").rung == "exact"  # its own pixels, asked again


@pytest.fixture(scope="module")
def video(settings):
    raw = small_request("TextToVideo", seed=78)
    return get_engine("TextToVideo", settings).generate(parse_request(raw))


def judge_video(ref, data, frames):
    return verify(data=data, media_type="video/mp4", expected_pixels=ref.pixels, expected_sha256=ref.pixel_sha256,
                  expected_media_type="video/mp4", threshold=threshold_for("TextToVideo").similarity, frames=frames)


def test_a_video_is_judged_on_its_lossless_frames_and_its_mp4_must_show_them(video):
    assert judge_video(video, video.data, video.frames).rung == "exact"
    # frames one level apart in a few pixels (another environment): the encoder's noise is out of the comparison
    nudged = video.pixels.astype(np.int16)
    nudged[:, ::7, ::5] += 1
    nudged = np.clip(nudged, 0, 255).astype(np.uint8)
    v = judge_video(video, media.encode_mp4(nudged, 8), media.encode_frames(nudged))
    assert v.rung == "tolerant" and 1 - v.similarity < 1e-5, v
    missing = judge_video(video, video.data, None)
    assert missing.rung == "failed" and "frames" in missing.reason and not missing.well_formed, missing
    other = media.encode_mp4(np.ascontiguousarray(video.pixels[:, ::-1]), 8)  # an MP4 of another picture
    lie = judge_video(video, other, video.frames)
    assert lie.rung == "failed" and "does not show its frames" in lie.reason, lie
    short = judge_video(video, video.data, media.encode_frames(video.pixels[:-1]))
    assert short.rung == "failed", short


def test_similarity_compares_frames_and_shapes():
    a = np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    assert similarity(a, a) == pytest.approx(1.0)
    b = a.copy()
    b[2] = 255 - b[2]  # one frame wrong: the minimum over frames catches it
    assert similarity(a, b) < 0.5
    with pytest.raises(ValueError):
        similarity(a, a[:2])


def test_the_committed_calibration_separates_what_it_recorded():
    """Per model type and pipeline: the honest maximum sits below the threshold, every cheat's minimum above
    it, the closest cheat and the margin agree with what is recorded, and the margin is x10 at
    least: a hand edit or a stale file fails here. The file must be format 2
    (app/testkit/calibration.py): distributions over 24 challenges per type at least."""
    from app.backends.registry import SERVED_MODELS
    from app.testkit.calibration import targets
    from app.testkit.cheats import ALTERED, CONDITIONED, sibling
    from app.verification.pixels import MP4_MAX_MSE
    from app.verification.thresholds import CALIBRATION, load, pair_key, split_key

    doc = json.loads(CALIBRATION.read_text())
    assert set(doc["models"]) == set(targets(SERVED_MODELS)), "every served pipeline of every served type"
    assert doc.get("format") == 2, "the committed calibration predates the measurement over many challenges"
    for model, m in doc["models"].items():
        distance = 1 - m["threshold"]
        honest_max = max(v["max"] for v in m["honest_by_variant"].values())
        cheats = {k: v["min"] for k, v in m["cheats"].items()}
        assert set(m.get("inseparable", [])) <= {"reduced_precision"}, f"{model}: a cheat honest drift reaches"
        for name in m.get("inseparable", []):  # recorded, not judged: honest drift reaches it
            assert cheats.pop(name) <= honest_max, (model, name)
        assert abs(m["threshold_distance"] - distance) < 1e-12, model
        assert m["challenges"] >= 24 and m["honest"]["n"] >= 24 * len(m["honest_by_variant"]), model
        if "mp4_fidelity" in m:  # video: the MP4 must show its frames, with room for other x264 builds
            farthest = max(v["max"] for v in m["mp4_fidelity"].values())
            assert farthest * 10 <= MP4_MAX_MSE, f"{model}: an honest MP4 lands {farthest:.1f} (MSE) from its frames"
        for pair, p in m["pairs"].items():  # other pairs (bfloat16, a GPU's) separate what they recorded too
            if "threshold" in p and "honest" in p:  # reduced precision is no cheat where a side claims it
                rivals = [v for k, v in cheats.items() if k != "reduced_precision" or "bfloat16" not in pair]
                assert p["honest"]["max"] < 1 - p["threshold"] < min(rivals), (model, pair)
            elif "honest" in p:
                assert p["separable"] is False and p["margin"] <= 1, (model, pair)
        assert honest_max < distance < min(cheats.values()) == cheats[m["closest_cheat"]], model
        assert abs(m["margin"] - min(cheats.values()) / max(honest_max, 1e-12)) <= 1e-6 * m["margin"], model
        assert m["margin"] >= 10, f"{model}: margin x{m['margin']:.1f} is below the x10 the verifier needs"
        name, pipeline = split_key(model)
        expected = {n for n in ALTERED if n != "other_checkpoint" or sibling(name)}
        if pipeline:  # its own cheats, and the conditioning image sent back
            expected |= {n for n, (p, _) in CONDITIONED.items() if p == pipeline} | {"return_init_image"}
        assert expected <= set(m["cheats"]), f"{model}: not calibrated against {expected - set(m['cheats'])}"
        assert load(CALIBRATION)[model][pair_key("cpu/float32", "cpu/float32")] == m["threshold"], model


def test_a_near_honest_cheat_that_honest_drift_reaches_is_recorded_not_judged():
    from app.testkit.calibration import model_row

    st = lambda lo, hi: {"n": 24, "max": hi, "p99": hi, "median": lo, "min": lo}  # noqa: E731
    measured = {"challenges": 24, "sizes": ["local"], "honest_by_variant": {"threads=1": st(1e-7, 3e-5)},
                "cheats": {"reduced_precision": st(2e-5, 6e-5), "one_step_fewer": st(2e-4, 0.3), "no_cfg": st(0.1, 0.5)}}
    row = model_row({"local": measured}, "cpu/float32")
    assert row["inseparable"] == ["reduced_precision"] and row["closest_cheat"] == "one_step_fewer"
    assert 3e-5 < row["threshold_distance"] < 2e-4 and abs(row["margin"] - 2e-4 / 3e-5) < 1e-9
    measured["cheats"]["reduced_precision"] = st(4e-5, 6e-5)  # above honest drift: judged like any cheat
    row = model_row({"local": measured}, "cpu/float32")
    assert "inseparable" not in row and row["closest_cheat"] == "reduced_precision"


def test_a_second_size_class_adds_to_the_committed_one(tmp_path):
    """`--sizes default` after `--sizes local`: write() keeps the local measurement and the row
    is judged over both; the committed row rebuilt from its size classes is unchanged."""
    from app.testkit.calibration import _size_class, model_row, write
    from app.verification.thresholds import CALIBRATION

    doc = json.loads(CALIBRATION.read_text())
    committed = doc["models"]["RealisticVision"]
    by_size = committed.get("by_size") or {"local": _size_class(committed)}
    assert model_row(by_size, "cpu/float32")["threshold_distance"] == committed["threshold_distance"]
    row = model_row({"local": by_size["local"]}, "cpu/float32")  # as if only the local sizes were measured
    wider = {k: {**v, "max": v["max"] * 3} for k, v in row["honest_by_variant"].items()}
    default = {"challenges": 24, "sizes": ["default"], "honest_by_variant": wider, "cheats": row["cheats"]}
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({**doc, "models": {**doc["models"], "RealisticVision": row}}))
    write({**doc, "models": {"RealisticVision": model_row({"default": default}, "cpu/float32")}}, path)
    merged = json.loads(path.read_text())["models"]["RealisticVision"]
    assert merged["sizes"] == ["default", "local"] and merged["challenges"] == row["challenges"] + 24
    assert merged["honest"]["max"] == 3 * row["honest"]["max"] and merged["honest"]["n"] == 2 * row["honest"]["n"]
    assert merged["threshold_distance"] > row["threshold_distance"], "the wider honest spread moves the threshold"
    assert set(merged["by_size"]) == {"local", "default"}
    assert json.loads(path.read_text())["models"]["DreamShaper"] == doc["models"]["DreamShaper"]


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


def test_each_pipeline_is_judged_by_its_own_row_and_an_uncalibrated_one_by_the_strictest(settings, tmp_path, caplog):
    from app.verification.thresholds import calibration_key, threshold_for

    pair = "cpu/float32~cpu/float32"
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"format": 2, "models": {
        "RealisticVision": {"pairs": {pair: {"threshold": 0.9999}}},
        "RealisticVision/img2img": {"pairs": {pair: {"threshold": 0.99999}}}}}))
    s = settings.model_copy(update={"calibration_file": path})
    cpu = {"device": "cpu", "dtype": "float32"}
    assert calibration_key("RealisticVision", "txt2img") == calibration_key("RealisticVision") == "RealisticVision"
    assert calibration_key("RealisticVision", "img2img") == "RealisticVision/img2img"
    assert threshold_for("RealisticVision", s, cpu, cpu, pipeline="txt2img").similarity == 0.9999
    assert threshold_for("RealisticVision", s, cpu, cpu, pipeline="img2img").similarity == 0.99999
    uncalibrated = threshold_for("RealisticVision", s, cpu, cpu, pipeline="controlnet")
    assert uncalibrated.similarity == 0.99999 and "uncalibrated pipeline" in uncalibrated.basis
    assert "RealisticVision/controlnet has no calibration" in caplog.text
    assert threshold_for("DreamShaper", s, cpu, cpu, pipeline="img2img").basis == "fallback: not calibrated"


def test_calibration_rows_are_checked_and_conditioned_challenges_carry_their_images():
    from app.testkit.calibration import challenges, check_target, targets

    assert targets(["RealisticVision", "AnimeV3", "TextToVideo"]) == [
        "RealisticVision", "RealisticVision/img2img", "RealisticVision/controlnet", "AnimeV3", "AnimeV3/img2img",
        "TextToVideo"]
    assert check_target("RealisticVision/txt2img") == "RealisticVision"
    for bad, words in (("Nope", "no model type 'Nope'"), ("AnimeV3/controlnet", "AnimeV3 serves txt2img, img2img")):
        with pytest.raises(ValueError, match=words):
            check_target(bad)
    drawn = challenges("DreamShaper/controlnet", 6)
    assert [r.control.type for r in drawn] == ["canny", "canny", "depth", "depth", "normal", "normal"]
    assert max(r.params.steps for r in drawn[::2]) < min(r.params.steps for r in drawn[1::2]), "both size classes"
    assert challenges("DreamShaper/controlnet", 6) == drawn, "the plan is reproducible"
    assert all(r.init_image and 0 < r.strength <= 1 for r in challenges("AnimeV3/img2img", 2))


def test_pairs_measured_elsewhere_get_a_threshold_only_when_they_separate(tmp_path):
    from app.testkit.calibration import add_pairs
    from app.verification.thresholds import load

    doc = {"format": 2, "models": {"RealisticVision": {
        "threshold": 0.9999, "pairs": {"cpu/float32~cpu/float32": {"threshold": 0.9999}},
        "cheats": {"one_step_fewer": {"min": 1e-2}, "reduced_precision": {"min": 1e-3}}}}}
    measured = {"pairs": {"RealisticVision": {
        "cpu/float32~cuda/float16": {"distances": [1e-4, 2e-3], "environment": {"device_name": "H100"}},
        "cpu/float32~cuda/float32": {"distances": [1e-8, 5e-3]}}}}
    lines = add_pairs(doc, measured)
    pairs = doc["models"]["RealisticVision"]["pairs"]
    # fp16 is judged against the compute cheats only; fp32 also against reduced precision, which it reaches
    assert 2e-3 < pairs["cpu/float32~cuda/float16"]["threshold_distance"] < 1e-2, lines
    assert pairs["cpu/float32~cuda/float16"]["measured_on"] == "H100"
    assert pairs["cpu/float32~cuda/float32"]["separable"] is False and "NOT separable" in lines[1], lines
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc))
    assert set(load(path)["RealisticVision"]) == {"cpu/float32~cpu/float32", "cpu/float32~cuda/float16"}


def test_a_calibration_resumes_from_its_work_folder(tmp_path):
    """A stopped calibration keeps what it made: honest outputs and each challenge's distances are
    read back, never made again; a folder of another plan is refused."""
    from app.testkit.calibration import (
        _check_plan,
        _honest_runs,
        _measure_or_load,
        challenges,
    )

    plan = challenges("TextToVideo", 1, sizes=("local",))
    _check_plan(tmp_path, plan)
    first = _honest_runs(plan, {"threads=1": {"SEEDGRID_THREADS": "1"}}, print, tmp_path)["threads=1"][0]
    broken = {"threads=1": {"SEEDGRID_DTYPE": "no-such-dtype"}}  # a worker started with it would fail
    again = _honest_runs(plan, broken, print, tmp_path)["threads=1"][0]
    assert np.array_equal(first, again), "the kept output, with no worker started"
    (tmp_path / "honest" / "threads_1" / "0.npy").unlink()
    with pytest.raises(RuntimeError, match="the honest run threads=1 failed"):  # a missing one is made again
        _honest_runs(plan, broken, print, tmp_path)
    saved = tmp_path / "measured" / "TextToVideo-0.json"
    saved.parent.mkdir()
    saved.write_text(json.dumps({"honest": {"threads=1": 1e-7}, "cheats": {"no_cfg": 0.2}, "encoder": {}}))
    assert _measure_or_load(None, plan[0], 0, {}, 8, saved)["cheats"] == {"no_cfg": 0.2}, "read, not measured"
    _check_plan(tmp_path, challenges("TextToVideo", 1, sizes=("local",)))  # a rerun draws the same plan again
    for other in (challenges("TextToVideo", 1, sizes=("default",)), challenges("RealisticVision", 1, sizes=("local",))):
        with pytest.raises(ValueError, match="another calibration's plan"):
            _check_plan(tmp_path, other)
    longer = challenges("TextToVideo", 3, sizes=("local",))
    assert longer[0].to_dict() | {"request_id": ""} == plan[0].to_dict() | {"request_id": ""}, "the same first one"
    _check_plan(tmp_path, longer)  # more challenges of the same plan extend the folder
    _check_plan(tmp_path, plan)  # and a shorter run may use part of it
    assert len(json.loads((tmp_path / "plan.json").read_text())) == 3, "the folder keeps the longer plan"
