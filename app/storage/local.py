"""The local folder store (the default): `<root>/ab/abcd....ext`, written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from app.storage.base import ArtifactMissing, checked, digest_of


class LocalStore:
    kind = "local"

    def __init__(self, root: Path):
        self.root = Path(root)

    def path_for(self, digest: str, ext: str) -> Path:
        return self.root / digest[:2] / f"{digest}.{ext}"

    def put(self, data: bytes, ext: str) -> tuple[str, str]:
        digest = digest_of(data)
        path = self.path_for(digest, ext)
        if path.exists() and path.stat().st_size == len(data):
            return str(path), digest
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)  # atomic: readers never see a partial file
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return str(path), digest

    def get(self, ref: str) -> bytes:
        return read_path(ref)

    def exists(self, ref: str) -> bool:
        return Path(ref).is_file()

    def ref_for(self, name: str) -> str:
        return str(self.root / name[:2] / name)

    def prune(self, older_than: float) -> int:
        removed = 0
        for path in self.root.rglob("*"):
            if path.is_file() and path.stat().st_mtime < older_than:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def url(self, ref: str, expires_s: int) -> str | None:
        return None


def read_path(ref: str) -> bytes:
    path = Path(ref)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactMissing(f"no artifact at {ref} (pruned, or on another host's folder: roles on separate "
                              "hosts need SEEDGRID_ARTIFACT_STORE=s3://...)") from None
    return checked(ref, path.name, data)
