import pytest
from pydantic import ValidationError

from app.backends.registry import checkpoint_path
from app.config import Settings
from app.generation.limits import broker_visibility_timeout, time_limits


def test_visibility_timeout_must_exceed_the_longest_task_limit():
    with pytest.raises(ValidationError) as err:
        Settings(visibility_timeout=30)
    assert "visibility_timeout" in str(err.value) and "SEEDGRID_VISIBILITY_TIMEOUT" in str(err.value)
    assert broker_visibility_timeout(Settings(visibility_timeout=66)) == 66


def test_time_limits_come_from_the_model_timeout():
    s = Settings(timeout_scale=0.5)
    assert time_limits(s, "RealisticVision") == (6.0, 11.0)
    assert broker_visibility_timeout(s) == time_limits(s, "TextToVideo")[1] + 15


def test_unknown_model_in_paths_is_named(monkeypatch):
    monkeypatch.setenv("SEEDGRID_MODEL_PATHS", '{"Nope": "/x"}')
    with pytest.raises(ValidationError) as err:
        Settings()
    assert "Nope" in str(err.value) and "model_paths" in str(err.value)
    monkeypatch.setenv("SEEDGRID_MODEL_PATHS", '{"RealisticVision/controlnet-pose": "/x"}')
    with pytest.raises(ValidationError) as err:
        Settings()
    assert "controlnet-pose" in str(err.value) and "RealisticVision/controlnet-canny" in str(err.value)
    monkeypatch.setenv("SEEDGRID_MODEL_PATHS", '{"DreamShaper/controlnet-depth": "/x"}')
    assert str(Settings().model_paths["DreamShaper/controlnet-depth"]) == "/x"


def test_embedded_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv("SEEDGRID_REDIS_URL", raising=False)
    monkeypatch.delenv("SEEDGRID_DATABASE_URL", raising=False)
    monkeypatch.delenv("SEEDGRID_MODEL_PATHS", raising=False)
    s = Settings(state_dir=tmp_path)
    assert s.uses_embedded_redis and s.broker_url.startswith("redis://127.0.0.1:")
    assert s.sqlalchemy_url == f"sqlite:///{tmp_path}/seedgrid.db"
    assert checkpoint_path(s, "DreamShaper") == tmp_path / "checkpoints" / "dev" / "DreamShaper"


def test_bad_device_is_named():
    with pytest.raises(ValidationError) as err:
        Settings(device="tpu")
    assert "device" in str(err.value)
