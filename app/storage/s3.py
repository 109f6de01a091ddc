"""An S3-compatible store (MinIO, Cloudflare R2, AWS S3) through boto3: `s3://bucket/prefix/area/ab/abcd....ext`.

Every call has a connect and read timeout and botocore's standard retries; what still
fails is a StoreError naming the endpoint, the bucket and what to check, never a
botocore exception. Results can be handed to clients as presigned URLs.
"""

from __future__ import annotations

import time

from app.storage.base import ArtifactMissing, StoreError, checked, digest_of

CONTENT_TYPES = {"png": "image/png", "mp4": "video/mp4", "json": "application/json"}


def s3_client(endpoint: str | None, region: str, key_id: str | None, secret: str | None):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=endpoint, region_name=region, aws_access_key_id=key_id, aws_secret_access_key=secret,
        config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"},
                      signature_version="s3v4", s3={"addressing_style": "path"}))


def split_url(url: str) -> tuple[str, str]:
    """s3://bucket/prefix -> (bucket, prefix without slashes at its ends)."""
    rest = url[len("s3://"):]
    bucket, _, prefix = rest.partition("/")
    return bucket, prefix.strip("/")


class S3Store:
    kind = "s3"

    def __init__(self, client, bucket: str, prefix: str, *, endpoint: str | None = None):
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")
        self.endpoint = endpoint or "AWS S3"

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name[:2]}/{name}" if self.prefix else f"{name[:2]}/{name}"

    def _failed(self, what: str, exc: Exception) -> StoreError:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
        if code in ("NoSuchKey", "404", "NotFound"):
            return ArtifactMissing(f"no artifact {what} in s3://{self.bucket} (pruned, or never stored)")
        code = code or {"NoCredentialsError": "NoCredentials", "PartialCredentialsError": "NoCredentials"}.get(
            type(exc).__name__)
        hint = {"NoCredentials": "set SEEDGRID_S3_ACCESS_KEY_ID and SEEDGRID_S3_SECRET_ACCESS_KEY",
                "NoSuchBucket": f"create the bucket {self.bucket!r} first",
                "AccessDenied": "check SEEDGRID_S3_ACCESS_KEY_ID and SEEDGRID_S3_SECRET_ACCESS_KEY and the "
                                "bucket's policy",
                "InvalidAccessKeyId": "check SEEDGRID_S3_ACCESS_KEY_ID",
                "SignatureDoesNotMatch": "check SEEDGRID_S3_SECRET_ACCESS_KEY"}.get(
            code, f"is SEEDGRID_S3_ENDPOINT_URL ({self.endpoint}) reachable?")
        return StoreError(f"the artifact store s3://{self.bucket} at {self.endpoint} failed to {what}: "
                          f"{code or type(exc).__name__}: {str(exc)[:200]}; {hint}")

    def ref(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def key_of(self, ref: str) -> str:
        bucket, key = split_url(ref)
        if bucket != self.bucket:
            raise StoreError(f"{ref} is not in this store's bucket {self.bucket!r}")
        return key

    def put(self, data: bytes, ext: str) -> tuple[str, str]:
        from botocore.exceptions import BotoCoreError, ClientError

        digest = digest_of(data)
        key = self._key(f"{digest}.{ext}")
        try:  # content-addressed: the same bytes under the same key, so a second put is harmless
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data,
                                   ContentType=CONTENT_TYPES.get(ext, "application/octet-stream"))
        except (BotoCoreError, ClientError) as exc:
            raise self._failed(f"store {key}", exc) from None
        return self.ref(key), digest

    def get(self, ref: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self.key_of(ref)
        try:
            data = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise self._failed(f"read {key}", exc) from None
        return checked(ref, key.rsplit("/", 1)[-1], data)

    def exists(self, ref: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key_of(ref))
            return True
        except ClientError as exc:
            error = self._failed("look up " + ref, exc)
            if isinstance(error, ArtifactMissing):
                return False
            raise error from None
        except BotoCoreError as exc:
            raise self._failed("look up " + ref, exc) from None

    def ref_for(self, name: str) -> str:
        return self.ref(self._key(name))

    def prune(self, older_than: float) -> int:
        from botocore.exceptions import BotoCoreError, ClientError

        removed = 0
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{self.prefix}/" if self.prefix else "")
            for page in pages:
                old = [{"Key": o["Key"]} for o in page.get("Contents", [])
                       if o["LastModified"].timestamp() < older_than]
                for i in range(0, len(old), 1000):
                    self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": old[i:i + 1000], "Quiet": True})
                    removed += len(old[i:i + 1000])
        except (BotoCoreError, ClientError) as exc:
            raise self._failed("prune", exc) from None
        return removed

    def url(self, ref: str, expires_s: int) -> str | None:
        return self.client.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": self.key_of(ref)},
                                                  ExpiresIn=expires_s)


def wait_ready(client, bucket: str, timeout: float = 10.0) -> None:
    """Until the bucket answers (a store that has just started)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.head_bucket(Bucket=bucket)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
