"""One pub/sub subscription per gateway process for every job's hints, shared by all waiting calls.

The I/O workers publish a hint on a job's channel each time its status or attempts change
(`jobs.notify`); a delivery's hint carries the job's view as it was committed, so the calls
waiting for it answer without reading the row. A waiting call (`?wait=`, the OpenAI route, an event stream) used to open
a subscription of its own: redis-py closes a subscribed connection when the subscription
ends, so each job paid a new TCP connection, its handshake, SUBSCRIBE and UNSUBSCRIBE (the
largest single cost py-spy found in the gateway per job). Here one listener thread holds a
pattern subscription to all jobs' channels and hands each hint to the calls watching that
job.

No hint is lost silently: whenever the subscription is (re)made, every watcher is woken
with RESYNC and reads its job's row again, so hints published while it was down are read
from the database, which is the source of truth. While it is down, `live` is False and
the waiting calls poll.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque

import redis

from app.keys import gateway_job_changed

log = logging.getLogger(__name__)

RESYNC = "resync"  # not a job status: "read the row again, a hint may have been missed"
RETRY_S = 1.0  # between attempts to subscribe again after Redis failed
CONFIRM_S = 5.0  # the longest wait for Redis to confirm the subscription


class Watch:
    """The hints of one job, from the moment it was made: `next(seconds)` the next one's status or
    None; `view`, the job's view that hint carried (a delivery's does: `jobs.notify`), else None."""

    def __init__(self, hints: "Hints", job_id: str):
        self.hints, self.job_id = hints, job_id
        self.live_at_start = hints.live  # hints flow since before this watch existed
        self.view: dict | None = None
        self._queue: deque[tuple[str, dict | None]] = deque()
        self._ready = threading.Condition()

    def push(self, status: str, view: dict | None = None) -> None:
        with self._ready:
            self._queue.append((status, view))
            self._ready.notify()

    def next(self, seconds: float) -> str | None:
        with self._ready:
            if not self._queue:
                self._ready.wait(max(0.0, seconds))
            if not self._queue:
                return None
            status, self.view = self._queue.popleft()
            return status

    def close(self) -> None:
        self.hints.forget(self)

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def parse_hint(data: str) -> tuple[str, dict | None]:
    """A hint's (status, view): `jobs.notify` publishes the status, then a space and the job's
    view as JSON when it has one; a view that does not parse is dropped (the row is read)."""
    status, _, payload = data.partition(" ")
    if not payload:
        return status, None
    try:
        view = json.loads(payload)
    except ValueError:
        return status, None
    return status, view if isinstance(view, dict) else None


class Hints:
    """The process's listener: started on the first watch, a daemon thread that resubscribes
    after a Redis failure."""

    def __init__(self, redis_client: redis.Redis):
        self._redis = redis_client
        self._prefix = gateway_job_changed("")
        self._watches: dict[str, set[Watch]] = {}
        self._lock = threading.Lock()
        self._live = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sub: redis.client.PubSub | None = None  # the listener's subscription (its connection)

    @property
    def live(self) -> bool:
        return self._live.is_set()

    def watch(self, job_id: str, *, ready_s: float = 0.5) -> Watch:
        """Hints for `job_id` from now on. The first watch starts the listener and waits up to
        `ready_s` for its subscription, so that a new job's first hints are not missed."""
        self._start()
        if not self.live:
            self._live.wait(ready_s)
        w = Watch(self, job_id)
        with self._lock:
            self._watches.setdefault(job_id, set()).add(w)
        return w

    def forget(self, w: Watch) -> None:
        with self._lock:
            watches = self._watches.get(w.job_id)
            if watches is not None:
                watches.discard(w)
                if not watches:
                    del self._watches[w.job_id]

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._listen, name="gateway-hints", daemon=True)
                self._thread.start()

    def _dispatch(self, job_id: str, data: str) -> None:
        with self._lock:
            watches = list(self._watches.get(job_id, ()))
        if not watches:
            return
        status, view = parse_hint(data)
        for w in watches:
            w.push(status, view)

    def _resync_all(self) -> None:
        with self._lock:
            watches = [w for ws in self._watches.values() for w in ws]
        for w in watches:
            w.push(RESYNC)

    def _listen(self) -> None:
        failing = False
        while not self._stop.is_set():
            sub = self._sub = self._redis.pubsub()
            try:
                sub.psubscribe(self._prefix + "*")
                confirmed = time.monotonic() + CONFIRM_S
                while (m := sub.get_message(timeout=1.0)) is None or m.get("type") != "psubscribe":
                    if time.monotonic() > confirmed:
                        raise redis.TimeoutError(f"Redis did not confirm the subscription within {CONFIRM_S:g} s")
                self._live.set()  # subscribed from here on
                self._resync_all()  # anything published while not subscribed is read from the rows
                if failing:
                    log.info("job hints flow again; waiting calls read their jobs again")
                failing = False
                while not self._stop.is_set():
                    message = sub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "pmessage":
                        channel, data = message["channel"], message["data"]
                        channel = channel.decode() if isinstance(channel, bytes) else str(channel)
                        data = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
                        self._dispatch(channel[len(self._prefix):], data)
            except (redis.RedisError, OSError) as exc:
                self._live.clear()
                self._resync_all()  # waiting calls fall back to polling their rows
                if not failing:
                    log.warning("job hints lost (%s); waiting calls poll their jobs until Redis answers again", exc)
                failing = True
                time.sleep(RETRY_S)
            finally:
                try:
                    sub.close()
                except (redis.RedisError, OSError):
                    pass
        self._live.clear()
