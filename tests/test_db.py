"""Sessions on the real database: read-only ones read without waiting for a writer, and cannot write."""

import threading
import time

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from app.db import session_scope
from app.models import ApiKey


def _key(name: str) -> ApiKey:
    return ApiKey(name=name, key_hash=name.ljust(64, "0"), prefix=name[:16], rate_per_minute=1, daily_quota=1)


def test_a_read_only_session_sees_committed_rows_and_refuses_writes(database):
    name = f"ro-{time.monotonic_ns()}"
    with session_scope(database) as s:
        s.add(_key(name))
    with session_scope(database, read_only=True) as s:
        row = s.scalar(select(ApiKey).where(ApiKey.name == name))
    assert row is not None and row.prefix == name[:16], "its objects stay loaded after the session"
    with pytest.raises(DBAPIError):
        with session_scope(database, read_only=True) as s:
            s.add(_key(name + "-w"))
    with session_scope(database, read_only=True) as s:
        assert s.scalar(select(ApiKey).where(ApiKey.name == name + "-w")) is None


def test_a_read_only_session_does_not_wait_behind_a_writer(database):
    name = f"rw-{time.monotonic_ns()}"
    writing, release = threading.Event(), threading.Event()

    def writer():
        with session_scope(database) as s:  # holds SQLite's write lock (BEGIN IMMEDIATE) until released
            s.add(_key(name))
            s.flush()
            writing.set()
            release.wait(10)

    t = threading.Thread(target=writer)
    t.start()
    try:
        assert writing.wait(10)
        t0 = time.monotonic()
        with session_scope(database, read_only=True) as s:
            assert s.scalar(select(ApiKey).where(ApiKey.name == name)) is None, "it reads the last commit"
        assert time.monotonic() - t0 < 2, "the read waited for the writer"
    finally:
        release.set()
        t.join()
