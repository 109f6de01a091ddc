"""The artifact store's two implementations against the same contract: the local folder, and an
S3-compatible server (moto's, a real process on loopback) through boto3."""

import os
import time

import httpx
import pytest

from app import storage
from app.settings import Settings
from app.storage.base import ArtifactCorrupt, ArtifactMissing, StoreError

from ..conftest import free_port
from ..helpers.s3 import make_bucket, s3_env, s3_server


@pytest.fixture(scope="module")
def s3_url():
    with s3_server() as url:
        make_bucket(url, "contract")
        yield url


def settings_for(kind: str, tmp_path, s3_url: str) -> Settings:
    env = s3_env(s3_url, "contract") if kind == "s3" else {}
    fields = {k[len("SEEDGRID_"):].lower(): v for k, v in env.items()}
    return Settings(state_dir=tmp_path, **fields)


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_the_store_contract(kind, tmp_path, s3_url):
    settings = settings_for(kind, tmp_path, s3_url)
    store = storage.store_for(settings, "validator")
    ref, digest = store.put(b"\x89PNG one", "png")
    assert ref.startswith("s3://contract/grid/validator/" if kind == "s3" else str(tmp_path))
    assert ref.endswith(f"{digest[:2]}/{digest}.png")
    assert store.put(b"\x89PNG one", "png") == (ref, digest), "content-addressed: the same bytes, the same ref"
    assert storage.load(settings, ref) == b"\x89PNG one" and store.exists(ref)
    assert store.ref_for(f"{digest}.png") == ref
    assert storage.store_for(settings, "artifacts").ref_for(f"{digest}.png") != ref, "areas are apart"
    missing = store.ref_for("0" * 64 + ".png")
    assert not store.exists(missing)
    with pytest.raises(ArtifactMissing):
        storage.load(settings, missing)
    # bytes that no longer match their name are refused
    if kind == "local":
        open(ref, "wb").write(b"tampered")
    else:
        store.client.put_object(Bucket="contract", Key=store.key_of(ref), Body=b"tampered")
    with pytest.raises(ArtifactCorrupt, match="corrupt"):
        storage.load(settings, ref)
    # pruning by age
    kept, _ = store.put(b"kept", "json")
    assert store.prune(time.time() - 3600) == 0 and store.exists(kept)
    assert store.prune(time.time() + 60) >= 2 and not store.exists(kept)


def test_a_presigned_url_serves_the_bytes(tmp_path, s3_url):
    settings = settings_for("s3", tmp_path, s3_url)
    store = storage.store_for(settings, "validator")
    ref, _ = store.put(b"result bytes", "png")
    url = store.url(ref, 60)
    assert url.startswith(s3_url) and "Signature" in url
    r = httpx.get(url)
    assert r.status_code == 200 and r.content == b"result bytes" and r.headers["content-type"] == "image/png"
    assert storage.store_for(Settings(state_dir=tmp_path), "validator").url("x", 60) is None, "a folder has none"


def test_an_unreachable_or_misnamed_store_says_what_to_check(tmp_path, s3_url):
    down = Settings(state_dir=tmp_path, **{k[len("SEEDGRID_"):].lower(): v for k, v in
                                           s3_env(f"http://127.0.0.1:{free_port()}", "contract").items()})
    with pytest.raises(StoreError, match="SEEDGRID_S3_ENDPOINT_URL"):
        storage.store_for(down, "validator").put(b"x", "png")
    no_bucket = Settings(state_dir=tmp_path, **{k[len("SEEDGRID_"):].lower(): v for k, v in
                                                s3_env(s3_url, "nonesuch").items()})
    with pytest.raises(StoreError, match="create the bucket 'nonesuch'"):
        storage.store_for(no_bucket, "validator").put(b"x", "png")


def test_the_setting_is_checked():
    with pytest.raises(ValueError, match="s3://bucket"):
        Settings(artifact_store="s3://")
    with pytest.raises(ValueError, match="local or s3://"):
        Settings(artifact_store="/tmp/somewhere")
    assert Settings(artifact_store="s3://b/p/").artifact_store == "s3://b/p"
    assert os.environ.get("SEEDGRID_ARTIFACT_STORE") in (None, "local"), "tests run on the folder by default"


def test_a_miner_keeps_trajectories_only_for_their_time(tmp_path, monkeypatch):
    from app.generation import service
    from app.generation.service import prune_kept

    monkeypatch.setattr(service, "_last_prune", {})  # this process's clocks, fresh

    settings = Settings(state_dir=tmp_path, trajectory_ttl_s=60, artifact_retention=86_400)
    store = storage.store_for(settings, "trajectories")
    kept, _ = store.put(b"leaves", "npz")
    start = time.time() + 10_000
    assert prune_kept(settings, now=start) == 1 and not os.path.exists(kept), "past its time: dropped"
    kept, _ = store.put(b"other leaves", "npz")
    assert prune_kept(settings, now=start + 30) == 0 and os.path.exists(kept), "at most once a minute"
    assert prune_kept(settings, now=start + 90) == 1 and not os.path.exists(kept)
    fresh, _ = store.put(b"fresh leaves", "npz")
    assert prune_kept(settings, now=time.time() + 20_000) == 1
    assert prune_kept(settings, now=time.time() + 40_000) == 0


def test_a_miner_on_its_own_host_prunes_its_outputs(tmp_path, monkeypatch):
    """No validator beat prunes a standalone miner's outputs: its GPU worker does, after artifact_retention."""
    from app.generation import service
    from app.generation.service import prune_kept

    monkeypatch.setattr(service, "_last_prune", {})

    settings = Settings(state_dir=tmp_path, artifact_retention=3600)
    outputs = storage.store_for(settings, "artifacts")
    old, _ = outputs.put(b"an old answer", "png")
    start = time.time() + 1800
    assert prune_kept(settings, now=start) == 0 and os.path.exists(old), "within its retention: kept"
    assert prune_kept(settings, now=start + 3600) == 1 and not os.path.exists(old)
    fresh, _ = outputs.put(b"a fresh answer", "png")
    assert prune_kept(settings, now=start + 3600 + 1800) == 0 and os.path.exists(fresh), "at most once an hour"
