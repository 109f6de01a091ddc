"""The gateway's shared hint subscription on a real Redis: delivery, isolation, and resync after a lost connection."""

import time

import pytest
import redis

from app.gateway.hints import RESYNC, Hints
from app.gateway.jobs import notify


@pytest.fixture
def hub(redis_url):
    client = redis.Redis.from_url(redis_url)
    hints = Hints(client)
    yield hints, client
    hints.stop()


def next_of(watch, kinds, seconds=5.0):
    """The next hint that is not a resync (the first subscription wakes every watch once)."""
    until = time.monotonic() + seconds
    while (left := until - time.monotonic()) > 0:
        status = watch.next(left)
        if status is not None and status not in kinds:
            return status
    return None


def test_a_watch_gets_its_jobs_hints_in_order_and_no_others(hub):
    hints, client = hub
    with hints.watch("job-a") as a, hints.watch("job-b") as b:
        assert hints.live and a.live_at_start
        for status in ("running", "done"):
            notify(client, "job-a", status)
        assert [next_of(a, {RESYNC}), next_of(a, {RESYNC})] == ["running", "done"]
        assert next_of(b, {RESYNC}, seconds=0.3) is None
    notify(client, "job-a", "cancelled")  # no watch left: nothing is kept for it
    assert hints._watches == {}


def test_a_lost_subscription_wakes_every_watch_and_comes_back(hub):
    hints, client = hub
    with hints.watch("job-c") as c:
        while c.next(0.05) is not None:  # drain the first subscription's resync
            pass
        host, port = hints._sub.connection._sock.getsockname()[:2]
        assert client.client_kill(f"{host}:{port}")  # the listener's connection only
        assert c.next(5.0) == RESYNC  # the waiting call reads its row again
        deadline = time.monotonic() + 10
        while not hints.live and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hints.live, "the listener did not subscribe again"
        notify(client, "job-c", "done")
        assert next_of(c, {RESYNC}) == "done"
