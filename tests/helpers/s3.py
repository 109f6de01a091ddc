"""A real S3-compatible server for tests: moto's server mode, a process speaking the S3 protocol on loopback."""

import subprocess
import sys
import time
from contextlib import contextmanager

import httpx

from ..conftest import free_port

KEY_ID, SECRET = "seedgrid-test", "seedgrid-test-secret"


@contextmanager
def s3_server(host: str = "127.0.0.1"):
    """Yields the endpoint URL; the server stops after."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://{host}:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.kill()
        proc.wait()


def make_bucket(url: str, bucket: str) -> None:
    from app.storage.s3 import s3_client

    s3_client(url, "us-east-1", KEY_ID, SECRET).create_bucket(Bucket=bucket)


def s3_env(url: str, bucket: str) -> dict[str, str]:
    return {"SEEDGRID_ARTIFACT_STORE": f"s3://{bucket}/grid", "SEEDGRID_S3_ENDPOINT_URL": url,
            "SEEDGRID_S3_ACCESS_KEY_ID": KEY_ID, "SEEDGRID_S3_SECRET_ACCESS_KEY": SECRET}
