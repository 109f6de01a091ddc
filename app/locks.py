"""An inter-process file lock, for one-time set-up steps that several processes may race to."""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class AlreadyHeld(RuntimeError):
    """Another process holds the lock; `owner` is what it wrote there (its pid)."""

    def __init__(self, path: Path, owner: str):
        self.path, self.owner = path, owner
        super().__init__(f"{path} is held by {owner or 'another process'}")


class ProcessLock:
    """A lock held for a process's lifetime (released when it exits, however it exits)."""

    def __init__(self, path: Path):
        self.path = path
        self._file = None

    def acquire(self) -> "ProcessLock":
        import os

        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            owner = f.read().strip()
            f.close()
            raise AlreadyHeld(self.path, owner) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}\n")
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
