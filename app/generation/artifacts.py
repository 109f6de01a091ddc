"""A content-addressed artifact store: a file's name is the sha256 of its bytes.

Writing the same bytes twice is a no-op, so a redelivered task never duplicates an
artifact, and readers can check what they got against its name.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def content_path(root: Path, digest: str, ext: str) -> Path:
    return root / digest[:2] / f"{digest}.{ext}"


def store(root: Path, data: bytes, ext: str) -> tuple[Path, str]:
    """Write `data` under `root`; return (path, sha256 of the bytes)."""
    digest = hashlib.sha256(data).hexdigest()
    path = content_path(root, digest, ext)
    if path.exists() and path.stat().st_size == len(data):
        return path, digest
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)  # atomic: readers never see a partial file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path, digest


def load(path: Path) -> bytes:
    """Read an artifact back, refusing one whose bytes no longer match its name."""
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if not Path(path).name.startswith(digest):
        raise ValueError(f"artifact {path} is corrupt: its bytes hash to {digest}; delete it and regenerate")
    return data
