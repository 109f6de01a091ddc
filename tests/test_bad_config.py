"""Every bad setting is refused when it is read, in one line that names the variable; no traceback, no secret.
(tests/test_known_errors.py walks each known error through every command.)"""

import json

import pytest

from .helpers.commands import seedgrid

SECRET = "hunter2-secret"
TIER = {"name": "Bronze", "request_success": 0, "validation_success": 0, "min_successes": 0, "reward_factor": 0.45,
        "request_limit": 5}

CASES = [  # (variable, value, words the one line must hold)
    ("SEEDGRID_VERIFICATION_THRESHOLDS", '{"RealisticVision": -1}', "(0, 1]"),
    ("SEEDGRID_VERIFICATION_THRESHOLDS", '{"RealisticVision": 2}', "(0, 1]"),
    ("SEEDGRID_VERIFICATION_THRESHOLDS", '{"RealisticVision": NaN}', "(0, 1]"),
    ("SEEDGRID_VERIFICATION_THRESHOLDS", '{"RealisticVision": Infinity}', "(0, 1]"),
    ("SEEDGRID_CHALLENGE_PARAMS", '{"RealisticVision": {"steps": 99}}', "params.steps"),
    ("SEEDGRID_CHALLENGE_PARAMS", '{"RealisticVision": {"width": 500}}', "params.width"),
    ("SEEDGRID_CHALLENGE_PARAMS", '{"RealisticVision": {"colour": "red"}}', "params.colour"),
    ("SEEDGRID_CHALLENGE_PARAMS", '{"RealisticVision": ', "not valid JSON"),
    ("SEEDGRID_TIER_TABLE", json.dumps([{**TIER, "request_success": "0"}]), "request_success"),
    ("SEEDGRID_TIER_TABLE", json.dumps([{**TIER, "request_limit": "5"}]), "request_limit"),
    ("SEEDGRID_TIER_TABLE", json.dumps([{**TIER, "speed": 1}]), "unknown speed"),
    ("SEEDGRID_TIER_TABLE", "[1, 2]", "list of objects"),
    ("SEEDGRID_REDIS_URL", "http://127.0.0.1:6379", "redis://"),
    ("SEEDGRID_REDIS_URL", f"redis://:{SECRET}@127.0.0.1:notaport/0", "port"),
    ("SEEDGRID_DATABASE_URL", "not a url", "SQLAlchemy URL"),
    ("SEEDGRID_DATABASE_URL", f"mysql://u:{SECRET}@h/db", "postgresql"),
    ("SEEDGRID_MODEL_PATHS", "{not json", "not valid JSON"),
    ("SEEDGRID_THREADS", "many", "SEEDGRID_THREADS"),
    ("SEEDGRID_CALIBRATION_FILE", "/nonexistent/calibration.json", "seedgrid calibrate"),
    ("SEEDGRID_CALIBRATION_FILE", "/etc/hostname", "not JSON"),
]


@pytest.mark.parametrize("variable, value, words", CASES, ids=[f"{c[0][9:]}-{i}" for i, c in enumerate(CASES)])
def test_a_bad_setting_is_one_line_naming_the_variable(variable, value, words):
    p = seedgrid("settings", env={variable: value})
    assert p.returncode == 1, p.stdout
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert variable in lines[0] and words in lines[0], lines[0]
    assert SECRET not in p.stderr


def test_settings_never_print_secrets():
    env = {"SEEDGRID_REDIS_URL": f"redis://:{SECRET}@127.0.0.1:6379/0",
           "SEEDGRID_DATABASE_URL": f"postgresql+psycopg://seedgrid:{SECRET}@127.0.0.1:5432/x"}
    p = seedgrid("settings", env=env)
    assert p.returncode == 0, p.stderr
    assert SECRET not in p.stdout and "***" in p.stdout
    shown = json.loads(p.stdout)
    assert shown["redis_url"] == "redis://:***@127.0.0.1:6379/0"


def test_a_state_folder_that_cannot_be_written_is_one_line(tmp_path):
    # (a read-only folder does not stop root, who runs CI; a path through a file stops everyone)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    # (SQLite in the state folder: CI's Postgres pass sets a database URL, which needs no folder)
    p = seedgrid("db", "upgrade", env={"SEEDGRID_STATE_DIR": str(blocker / "state"), "SEEDGRID_DATABASE_URL": None})
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert len(p.stderr.strip().splitlines()) == 1 and "SEEDGRID_STATE_DIR" in p.stderr, p.stderr


def test_a_corrupted_checkpoint_stops_the_gpu_worker_with_one_line(tmp_path, redis_url, database):
    import shutil

    from .conftest import DEV_CHECKPOINTS

    broken = tmp_path / "RealisticVision"
    shutil.copytree(DEV_CHECKPOINTS / "RealisticVision", broken)
    for f in broken.rglob("*.safetensors"):
        f.write_bytes(b"\x00garbage" * 10)
    for paths in ({"RealisticVision": str(broken)}, {"RealisticVision": str(tmp_path / "missing")}):
        p = seedgrid("worker", "gpu", "--model", "RealisticVision", env={"SEEDGRID_MODEL_PATHS": json.dumps(paths)})
        assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr[-3000:]
        assert str(tmp_path) in p.stderr.strip().splitlines()[-1], p.stderr[-2000:]


def test_a_worker_that_cannot_serve_says_so_once_and_is_not_restarted(tmp_path, redis_url, database):
    """A missing checkpoint: the GPU worker's one line, exit 1, no restart loop; with -v its traceback too."""
    import time

    env = {"SEEDGRID_MODEL_PATHS": json.dumps({"RealisticVision": str(tmp_path / "missing")})}
    t0 = time.monotonic()
    p = seedgrid("worker", "gpu", "--model", "RealisticVision", env=env)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 1 and len(lines) == 1 and "Traceback" not in p.stderr, p.stderr[-3000:]
    assert str(tmp_path / "missing") in lines[0] and "SEEDGRID_MODEL_PATHS" in lines[0], lines[0]
    assert time.monotonic() - t0 < 60, "stopped at the first exit, not after a round of restarts"
    verbose = seedgrid("-v", "worker", "gpu", "--model", "RealisticVision", env=env)
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr, verbose.stderr[-3000:]
    assert lines[0] in verbose.stderr
