"""The gateway's shared hint subscription on a real Redis: delivery, isolation, and resync after a lost connection."""

import time

import pytest
import redis

from app.gateway.hints import RESYNC, Hints, parse_hint
from app.gateway.jobs import notify, rebased


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


def test_a_deliverys_hint_carries_the_view_with_links_on_the_callers_base(hub):
    hints, client = hub
    view = {"id": "job-d", "status": "done", "links": {"self": "/v1/jobs/job-d", "result": "/v1/jobs/job-d/result"},
            "result": {"media_type": "image/png", "url": "/v1/jobs/job-d/result"}}
    with hints.watch("job-d") as d:
        notify(client, "job-d", "running")
        notify(client, "job-d", "done", view=view)
        assert next_of(d, {RESYNC}) == "running" and d.view is None
        assert next_of(d, {RESYNC}) == "done" and d.view == view
    shown = rebased(view, "https://gw.example")
    assert shown["links"]["self"] == "https://gw.example/v1/jobs/job-d"
    assert shown["result"]["url"] == shown["links"]["result"] == "https://gw.example/v1/jobs/job-d/result"
    assert parse_hint("done {not json") == ("done", None), "a view that does not parse: the row is read"
    assert parse_hint("failed") == ("failed", None)


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


def test_recent_keeps_a_value_for_its_seconds_only():
    from app.gateway.recent import Recent

    kept, off = Recent(0.2), Recent(0)
    assert kept.put("k", 1) == 1 and kept.get("k") == 1 and kept.get("other") is None
    assert off.put("k", 1) == 1 and off.get("k") is None, "0 s keeps nothing"
    time.sleep(0.25)
    assert kept.get("k") is None
