"""Shard sources: local paths and URLs (``URLSource``) and S3 buckets (``S3Source``)."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from atdata._braces import MAX_SHARDS, count_shards, iter_shards, too_many
from atdata._urls import ReadPolicy, checked_http_client, public_s3_url, redact_url
from atdata.errors import PrivateURLError, ShardError, ShardListError, ShardUnavailableError

__all__ = ["MAX_SHARDS", "S3Source", "URLSource", "expand_urls", "redact_url"]


def expand_urls(urls: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    """Expand brace patterns (``data-{000..009}.tar``) in one URL or a list of them.

    The shards are counted first: patterns naming more than :data:`MAX_SHARDS`
    in all raise :class:`~atdata.errors.ShardListError` before anything is expanded.
    """
    texts = (
        [os.fspath(urls)] if isinstance(urls, str | os.PathLike) else [os.fspath(u) for u in urls]
    )
    if any("{" in t for t in texts):
        total = sum(count_shards(t) for t in texts)
        if total > MAX_SHARDS:
            shown = (
                repr(texts[0][:200])
                if len(texts) == 1
                else f"the list of {len(texts)} URLs (first {texts[0][:100]!r})"
            )
            raise ShardListError(too_many(shown, total))
    return [shard for t in texts for shard in iter_shards(t)]


class _HTTPStream(io.RawIOBase):
    """A readable stream over an HTTP GET response body."""

    def __init__(
        self,
        url: str,
        timeout: float = 60.0,
        *,
        policy: ReadPolicy | None = None,
        shard_id: str | None = None,
    ) -> None:
        import httpx

        shard = redact_url(shard_id or url)
        if policy is None:
            self._client = httpx.Client(timeout=timeout, follow_redirects=True)
        else:
            self._client = checked_http_client(policy, timeout=timeout)
        try:
            self._response = self._client.send(self._client.build_request("GET", url), stream=True)
        except httpx.HTTPError as exc:
            self._client.close()
            raise ShardError(shard, f"cannot connect ({type(exc).__name__})") from None
        except PrivateURLError as exc:  # a hop (the first or a redirect) the policy refuses
            self._client.close()
            raise PrivateURLError(f"{shard}: {exc}", url=shard) from None
        if self._response.status_code != 200:
            status = self._response.status_code
            self._response.close()
            self._client.close()
            if status in (401, 403, 404, 410):  # retrying cannot help
                raise ShardUnavailableError(shard, f"HTTP {status}", status=status)
            raise ShardError(shard, f"HTTP {status}")
        self._chunks: Iterator[bytes] = self._response.iter_raw()
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = chunk
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            self._response.close()
            self._client.close()
        super().close()


@dataclass
class URLSource:
    """Shards named by local paths, ``file://`` or ``http(s)://`` URLs, with brace patterns.

    ``s3://`` URLs are read with the standard AWS credential chain; use
    :class:`S3Source` to pass credentials or an endpoint explicitly.

    ``policy`` (for URLs taken from someone else's record) refuses what it does
    not allow, at construction and on every connection and redirect;
    ``s3_endpoint`` reads ``s3://`` URLs anonymously over HTTP(S) from that
    endpoint (a public bucket on a non-AWS store).

    >>> URLSource("data-{0..2}.tar").list_shards()
    ['data-0.tar', 'data-1.tar', 'data-2.tar']
    """

    url: str | Sequence[str]
    policy: ReadPolicy | None = None
    s3_endpoint: str | None = None
    _shards: list[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._shards = expand_urls(self.url)
        if self.policy is not None:
            if self.s3_endpoint is not None:
                self.policy.check(self.s3_endpoint)
            for shard in self._shards:
                self.policy.check(shard)

    def list_shards(self) -> list[str]:
        """The shard URLs, brace patterns expanded, in order."""
        return list(self._shards)

    @property
    def shard_list(self) -> list[str]:
        """The existing atdata's name of :meth:`list_shards`."""
        return self.list_shards()

    @property
    def shards(self) -> Iterator[tuple[str, IO[bytes]]]:
        """``(shard_id, stream)`` pairs, opened lazily."""
        for shard in self._shards:
            yield shard, self.open_shard(shard)

    def open_shard(self, shard_id: str) -> IO[bytes]:
        """Open one shard for reading."""
        if shard_id not in self._shards:
            raise KeyError(f"{shard_id!r} is not a shard of this source")
        if self.s3_endpoint is not None and shard_id.startswith("s3://"):
            http_url = public_s3_url(shard_id, self.s3_endpoint)
            stream = _HTTPStream(http_url, policy=self.policy, shard_id=shard_id)
            return io.BufferedReader(stream, buffer_size=1 << 20)
        return open_url(shard_id, policy=self.policy)


def open_url(url: str, *, policy: ReadPolicy | None = None) -> IO[bytes]:
    """Open a path or URL for reading (local, ``file://``, ``http(s)://``, ``s3://``).

    With ``policy``, URLs it does not allow raise :class:`~atdata.errors.PrivateURLError`.
    """
    if policy is not None:
        policy.check(url)
    scheme = urlsplit(url).scheme
    if scheme in ("http", "https"):
        return io.BufferedReader(_HTTPStream(url, policy=policy), buffer_size=1 << 20)
    if scheme == "s3":
        bucket, key = _split_s3(url)
        return S3Source(bucket=bucket, keys=[key]).open_shard(url)
    path = url[len("file://") :] if scheme == "file" else url
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise ShardError(url, "no such file") from None
    except OSError as exc:
        raise ShardError(url, f"cannot open ({exc.strerror})") from None


def _split_s3(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or not parts.path.strip("/"):
        raise ValueError(f"not an s3://bucket/key URL: {url!r}")
    return parts.netloc, parts.path.lstrip("/")


@dataclass
class S3Source:
    """Shards in one S3 bucket (AWS or any S3-compatible store).

    Without ``access_key``/``secret_key`` the standard AWS credential chain is used.

    >>> src = S3Source.from_urls(["s3://bucket/a.tar", "s3://bucket/b.tar"])
    >>> src.list_shards()
    ['s3://bucket/a.tar', 's3://bucket/b.tar']
    """

    bucket: str
    keys: list[str]
    endpoint: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    region: str | None = None
    _client: Any = field(default=None, init=False, repr=False)

    @classmethod
    def from_urls(
        cls,
        urls: str | Sequence[str],
        *,
        endpoint: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        region: str | None = None,
    ) -> S3Source:
        """Build a source from ``s3://bucket/key`` URLs (brace patterns allowed), one bucket."""
        expanded = expand_urls(urls)
        if not expanded:
            raise ValueError("no S3 URLs given")
        pairs = [_split_s3(u) for u in expanded]
        buckets = {b for b, _ in pairs}
        if len(buckets) != 1:
            raise ValueError(f"S3Source reads one bucket; these URLs span {sorted(buckets)}")
        return cls(pairs[0][0], [k for _, k in pairs], endpoint, access_key, secret_key, region)

    @classmethod
    def from_credentials(
        cls, credentials: Mapping[str, str], bucket: str, keys: list[str]
    ) -> S3Source:
        """Build a source from an ``AWS_*`` credentials mapping (as in a ``.env`` file)."""
        return cls(
            bucket,
            keys,
            endpoint=credentials.get("AWS_ENDPOINT") or credentials.get("AWS_ENDPOINT_URL"),
            access_key=credentials.get("AWS_ACCESS_KEY_ID"),
            secret_key=credentials.get("AWS_SECRET_ACCESS_KEY"),
            region=credentials.get("AWS_REGION"),
        )

    def __repr__(self) -> str:
        # never the secret key (nor credentials an endpoint URL might carry)
        endpoint = redact_url(self.endpoint) if self.endpoint else None
        keys = self.keys if len(self.keys) <= 3 else [*self.keys[:3], f"... {len(self.keys)} keys"]
        return (
            f"S3Source(bucket={self.bucket!r}, keys={keys!r}, endpoint={endpoint!r}, "
            f"region={self.region!r}, credentials={'given' if self.secret_key else 'AWS chain'})"
        )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_client"] = None  # boto3 clients do not pickle; each process makes its own
        return state

    @property
    def client(self) -> Any:
        """The boto3 S3 client (created on first use)."""
        if self._client is None:
            self._client = make_s3_client(
                self.endpoint, self.access_key, self.secret_key, self.region
            )
        return self._client

    def list_shards(self) -> list[str]:
        """``s3://bucket/key`` for every key, in order."""
        return [f"s3://{self.bucket}/{k}" for k in self.keys]

    @property
    def shard_list(self) -> list[str]:
        """The existing atdata's name of :meth:`list_shards`."""
        return self.list_shards()

    @property
    def shards(self) -> Iterator[tuple[str, IO[bytes]]]:
        """``(shard_id, stream)`` pairs, opened lazily."""
        for shard in self.list_shards():
            yield shard, self.open_shard(shard)

    def open_shard(self, shard_id: str) -> IO[bytes]:
        """Stream one object."""
        bucket, key = _split_s3(shard_id)
        if bucket != self.bucket or key not in self.keys:
            raise KeyError(f"{shard_id!r} is not a shard of this source")
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise ShardError(shard_id, f"S3 {code}") from None
        except BotoCoreError as exc:
            raise ShardError(shard_id, f"S3 request failed ({type(exc).__name__})") from None
        return body  # type: ignore[no-any-return]


def make_s3_client(
    endpoint: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    region: str | None = None,
    *,
    s3_config: Mapping[str, Any] | None = None,
) -> Any:
    """A boto3 S3 client; explicit keys if both are given, else the AWS credential chain.

    Path-style addressing; ``s3_config`` adds botocore ``s3`` settings
    (for example ``{"payload_signing_enabled": False}``).
    """
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("S3 support needs boto3: pip install 'atdata[s3]'") from exc
    kwargs: dict[str, Any] = {
        "config": Config(
            s3={"addressing_style": "path", **(s3_config or {})},
            retries={"max_attempts": 5, "mode": "standard"},
        )
    }
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    if access_key and secret_key:
        kwargs["aws_access_key_id"] = access_key
        kwargs["aws_secret_access_key"] = secret_key
    kwargs["region_name"] = (
        region
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1"
    )
    return boto3.client("s3", **kwargs)


def local_path(url: str) -> Path | None:
    """The filesystem path of a local shard URL, or None for a remote one."""
    scheme = urlsplit(url).scheme
    if scheme == "file":
        return Path(url[len("file://") :])
    if scheme in ("",) or len(scheme) == 1:
        return Path(url)
    return None
