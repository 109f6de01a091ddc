"""Where media live: one store per area, from settings (no Celery, no web framework).

`store_for(settings, area)` is the store new artifacts go to: the local folder
(SEEDGRID_ARTIFACT_STORE=local, the default) or an S3-compatible bucket
(s3://bucket[/prefix]). `load(settings, ref)` reads any ref back, whichever store wrote it,
so rows written before a switch stay readable. Nothing else reads or writes media paths.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from app.storage.base import ArtifactCorrupt, ArtifactMissing, ArtifactStore, StoreError
from app.storage.local import LocalStore

# generations and reproductions; a validator's received answers; a miner's kept trajectories (pruned after
# trajectory_ttl_s by the GPU workers)
AREAS = ("artifacts", "validator", "trajectories")

__all__ = ["AREAS", "ArtifactCorrupt", "ArtifactMissing", "ArtifactStore", "StoreError", "load", "store_for",
           "all_stores"]


def store_for(settings, area: str) -> ArtifactStore:
    if area not in AREAS:
        raise ValueError(f"unknown artifact area {area!r}; one of {', '.join(AREAS)}")
    if settings.artifact_store == "local":
        roots = {"artifacts": settings.artifacts_dir, "validator": settings.validator_artifacts_dir,
                 "trajectories": settings.state_path / "trajectories"}
        return LocalStore(roots[area])
    return _s3_store(settings, area)


def all_stores(settings) -> list[ArtifactStore]:
    return [store_for(settings, area) for area in AREAS if area != "trajectories"]


def _s3_store(settings, area: str):
    from app.storage.s3 import S3Store, split_url

    bucket, prefix = split_url(settings.artifact_store)
    return S3Store(_client(settings), bucket, "/".join(p for p in (prefix, area) if p),
                   endpoint=settings.s3_endpoint_url)


def _client(settings):
    """One boto3 client per process and credentials (boto3 clients are thread-safe)."""
    return _cached_client(settings.s3_endpoint_url, settings.s3_region, settings.s3_access_key_id,
                          settings.s3_secret_access_key)


@lru_cache(maxsize=4)
def _cached_client(endpoint: str | None, region: str, key_id: str | None, secret: str | None):
    from app.storage.s3 import s3_client

    return s3_client(endpoint, region, key_id, secret)


def _holder(settings, ref: str):
    """The store that holds `ref`: its bucket's for an s3:// ref, else a folder (the ref is a path)."""
    if ref.startswith("s3://"):
        from app.storage.s3 import S3Store, split_url

        return S3Store(_client(settings), split_url(ref)[0], "", endpoint=settings.s3_endpoint_url)
    return LocalStore(Path(ref).parent)


def load(settings, ref: str) -> bytes:
    """An artifact's bytes by its ref; ArtifactMissing, ArtifactCorrupt or StoreError saying what is wrong."""
    return _holder(settings, ref).get(ref)


def exists(settings, ref: str) -> bool:
    return _holder(settings, ref).exists(ref)
