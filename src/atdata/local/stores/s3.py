"""Shards in an S3 bucket: AWS, MinIO, Cloudflare R2, SeaweedFS or any S3-compatible store."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from atdata._storage import HashingReader, ShardInfo
from atdata.errors import OrphanedDataError, ShardError
from atdata.local.stores.base import DataStore
from atdata.protocols import DataSource
from atdata.sources import S3Source, make_s3_client, redact_url

__all__ = ["S3DataStore", "load_credentials"]

MiB = 1 << 20


def load_credentials(credentials: Mapping[str, str] | str | os.PathLike[str]) -> dict[str, str]:
    """``AWS_*`` settings from a mapping or a ``.env`` file (``KEY=value`` lines).

    >>> load_credentials({"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"})["AWS_ACCESS_KEY_ID"]
    'k'
    """
    if isinstance(credentials, Mapping):
        return {str(k): str(v) for k, v in credentials.items() if v is not None}
    path = Path(credentials).expanduser()
    try:
        text = path.read_text()
    except OSError as exc:
        raise FileNotFoundError(f"cannot read S3 credentials from {path}: {exc.strerror}") from None
    out: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"{path}, line {number}: expected KEY=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out


class S3DataStore(DataStore):
    """Shards in one bucket, as ``s3://bucket/prefix/data-<run>-000000.tar``.

    ``credentials`` is a mapping or a ``.env`` file path with ``AWS_ENDPOINT``
    (or ``AWS_ENDPOINT_URL``; leave it out for AWS itself), ``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY`` and optionally ``AWS_REGION``. Without it the
    standard AWS credential chain (environment, config files, instance role)
    is used. Shards are streamed with boto3's managed transfer: multipart for
    shards over ``part_size``, ``workers`` shards at a time.

    >>> store = S3DataStore(
    ...     credentials={"AWS_ENDPOINT": "http://localhost:9000",
    ...                  "AWS_ACCESS_KEY_ID": "key", "AWS_SECRET_ACCESS_KEY": "secret"},
    ...     bucket="datasets-bucket",
    ... )
    >>> store.url_for("features/a.tar")
    's3://datasets-bucket/features/a.tar'
    """

    def __init__(
        self,
        credentials: Mapping[str, str] | str | os.PathLike[str] | None = None,
        *,
        bucket: str,
        part_size: int = 8 * MiB,
        max_concurrency: int = 10,
        workers: int = 2,
    ) -> None:
        if not isinstance(bucket, str) or not bucket or "/" in bucket:
            raise ValueError(f"bucket must be a bucket name, not {bucket!r}")
        creds = load_credentials(credentials) if credentials is not None else {}
        self.bucket: str = bucket
        self.endpoint: str | None = creds.get("AWS_ENDPOINT") or creds.get("AWS_ENDPOINT_URL")
        self._access_key = creds.get("AWS_ACCESS_KEY_ID")
        self._secret_key = creds.get("AWS_SECRET_ACCESS_KEY")
        if bool(self._access_key) != bool(self._secret_key):
            raise ValueError("S3 credentials need both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        self.region: str | None = creds.get("AWS_REGION") or creds.get("AWS_DEFAULT_REGION")
        self.part_size: int = part_size
        self.max_concurrency: int = max_concurrency
        self.workers: int = workers
        where = redact_url(self.endpoint) if self.endpoint else "AWS"
        self.location: str = f"S3 bucket {bucket!r} at {where}"
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The boto3 S3 client (created on first use)."""
        if self._client is None:
            # Skip SigV4 payload signing (one more SHA-256 pass over every byte, done by
            # default over plain HTTP only): each part carries a checksum the server checks,
            # and each shard's own SHA-256 is recorded here and checked on every read.
            self._client = make_s3_client(
                self.endpoint,
                self._access_key,
                self._secret_key,
                self.region,
                s3_config={"payload_signing_enabled": False},
            )
        return self._client

    def _transfer_config(self) -> Any:
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(
            multipart_threshold=self.part_size,
            multipart_chunksize=self.part_size,
            max_concurrency=self.max_concurrency,
            max_io_queue=64,
        )

    def _key(self, url: str) -> str:
        if not self.owns(url):
            raise ValueError(f"{url!r} is not in {self.location}")
        return url[len(f"s3://{self.bucket}/") :]

    def prepare(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            reason = (
                "does not exist" if code in ("404", "NoSuchBucket") else f"is not usable ({code})"
            )
            raise ShardError(f"s3://{self.bucket}", f"{self.location} {reason}") from None
        except BotoCoreError as exc:
            raise ShardError(
                f"s3://{self.bucket}", f"{self.location} cannot be reached ({exc})"
            ) from None

    def url_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def put(self, reader: HashingReader, url: str, shard_id: str) -> None:
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.upload_fileobj(
                reader, self.bucket, self._key(url), Config=self._transfer_config()
            )
        except (S3UploadFailedError, ClientError, BotoCoreError) as exc:
            raise ShardError(
                url, f"upload of {redact_url(shard_id)} failed ({type(exc).__name__}: {exc})"
            ) from None

    def verify_written(self, shard: ShardInfo) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(shard.url))
        except (ClientError, BotoCoreError) as exc:
            raise ShardError(shard.url, f"not readable after upload ({exc})") from None
        if head["ContentLength"] != shard.size:
            raise ShardError(
                shard.url,
                f"{head['ContentLength']} bytes stored, {shard.size} read from the source",
            )

    def delete(self, urls: Sequence[str]) -> None:
        """Remove these objects; :class:`~atdata.OrphanedDataError` lists any that remain."""
        from botocore.exceptions import BotoCoreError, ClientError

        keys = [self._key(u) for u in urls if self.owns(u)]
        failed: list[str] = []
        reasons: set[str] = set()
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            try:
                answer = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
            except (ClientError, BotoCoreError) as exc:
                failed += batch
                reasons.add(f"{type(exc).__name__}: {exc}")
                continue
            for error in answer.get("Errors", []):
                failed.append(error.get("Key", "?"))
                reasons.add(str(error.get("Code", "error")))
        if failed:
            raise OrphanedDataError(
                f"{self.location}: {len(failed)} object(s) could not be deleted "
                f"({'; '.join(sorted(reasons))})",
                [self.url_for(k) for k in failed],
            )

    def owns(self, url: str) -> bool:
        return url.startswith(f"s3://{self.bucket}/")

    def create_source(self, urls: Sequence[str]) -> DataSource:
        """An :class:`~atdata.S3Source` for these URLs, carrying the store's credentials."""
        return S3Source(
            self.bucket,
            [self._key(u) for u in urls],
            endpoint=self.endpoint,
            access_key=self._access_key,
            secret_key=self._secret_key,
            region=self.region,
        )

    def read_url(self, url: str, *, expires: int = 3600) -> str:
        """A presigned HTTPS URL for a shard, readable without credentials for ``expires`` s."""
        return str(
            self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self._key(url)},
                ExpiresIn=expires,
            )
        )
