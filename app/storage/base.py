"""The artifact store interface: content-addressed media, wherever they live.

A stored artifact's key is the sha256 of its bytes plus its extension, under an area
(`artifacts`: generations and reproductions; `validator`: the answers a validator
received and what its dashboard shows). `put` returns a ref, the string kept in the
database (a local absolute path, or s3://bucket/key), and anyone with the same settings
reads it back with `app.storage.load`, which checks the bytes against their name.
"""

from __future__ import annotations

import hashlib
from typing import Protocol


class StoreError(RuntimeError):
    """The store did not answer or refused: the message names the store and what to check."""


class ArtifactMissing(StoreError):
    """No artifact under this ref (pruned, or never stored)."""


class ArtifactCorrupt(ValueError):
    """The bytes read back do not hash to the artifact's name."""


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def checked(ref: str, name: str, data: bytes) -> bytes:
    """The bytes, once they hash to their name (`<sha256>.<ext>`)."""
    digest = digest_of(data)
    if not name.startswith(digest):
        raise ArtifactCorrupt(f"artifact {ref} is corrupt: its bytes hash to {digest}; delete it and regenerate")
    return data


class ArtifactStore(Protocol):
    kind: str  # "local" or "s3"

    def put(self, data: bytes, ext: str) -> tuple[str, str]:
        """Store `data` (a no-op when those bytes are there); (ref, sha256)."""

    def get(self, ref: str) -> bytes: ...

    def exists(self, ref: str) -> bool: ...

    def ref_for(self, name: str) -> str:
        """The ref of a public artifact name (`<sha256>.<ext>`) in this store."""

    def prune(self, older_than: float) -> int:
        """Delete what was stored before `older_than` (a Unix time); how many were deleted."""

    def url(self, ref: str, expires_s: int) -> str | None:
        """A URL a client may fetch the artifact from directly (S3's presigned), or None."""
