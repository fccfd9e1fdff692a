"""The shard cache under faults no retry can fix: a full disk, 404 and 403, an oversized shard;
and the one retry policy of each transport.

The full disk is real (a 1 MiB tmpfs), 404 and 403 come from the real SeaweedFS
server (over S3 and over plain HTTP with presigned URLs), and an oversized shard
is served by a real HTTP server and by SeaweedFS. Requests are counted on the
wire, by a proxy in front of SeaweedFS that forwards every request (or answers
503 to the first ``fail`` of them, or cuts the first ``cut`` bodies with a reset),
so a retry inside botocore or boto3's transfer is counted too.
"""

from __future__ import annotations

import http.client
import http.server
import io
import os
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import pytest

import atdata
from atdata.cache import S3Object, ShardCache
from atdata.errors import ShardError
from atdata.sources import S3Source, open_url
from helpers import private_atdata_home, serve_directory, serve_http  # noqa: F401 - autouse fixture

MB = 1 << 20


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB file system (tmpfs), unmounted afterwards (lazily: even if a file is open)."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)


class Counting:
    """An opener that counts its calls and serves ``data`` from memory."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.calls = 0

    def __call__(self) -> IO[bytes]:
        self.calls += 1
        return io.BytesIO(self.data)


@dataclass
class Wire:
    """The requests a proxy in front of SeaweedFS saw: ``(method, path)`` in order."""

    url: str
    env: dict[str, str]
    requests: list[tuple[str, str]] = field(default_factory=list)
    fail: int = 0  # answer this many of the next requests with 503 SlowDown
    cut: int = 0  # send half the body of this many of the next GETs, then reset the connection

    def client(self, **config: Any) -> Any:
        """A boto3 client through the proxy (botocore ``Config`` settings in ``config``)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, **config),
        )


_SLOW_DOWN = (
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
)


@pytest.fixture
def wire(s3_env: dict[str, str]) -> Iterator[Wire]:
    upstream = urlsplit(s3_env["AWS_ENDPOINT_URL"])
    seen = Wire("", s3_env)
    lock = threading.Lock()

    class Proxy(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_one(self) -> None:
            size = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(size) if size else None
            with lock:
                seen.requests.append((self.command, self.path.split("?", 1)[0]))
                failing = seen.fail > 0
                seen.fail -= failing
                cutting = self.command == "GET" and seen.cut > 0 and not failing
                seen.cut -= cutting
            if failing:
                self.send_response(503)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(_SLOW_DOWN)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(_SLOW_DOWN)
                return
            conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
            try:  # the Host header goes on unchanged: the signature covers it
                conn.request(self.command, self.path, body=body, headers=dict(self.headers))
                response = conn.getresponse()
                data = response.read()
            finally:
                conn.close()
            self.send_response(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                    self.send_header(name, value)
            length = response.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length or str(len(data)))
            self.end_headers()
            if cutting:
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                # RST instead of FIN: the client sees a connection reset mid-body
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
                self.close_connection = True
            elif self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_HEAD = do_PUT = handle_one

        def log_message(self, *args: Any) -> None:
            pass

    with serve_http(Proxy) as seen.url:
        yield seen


# --------------------------------------------------------------------------- a full disk


def test_a_full_disk_is_reported_as_such_and_not_retried(small_disk: Path) -> None:
    cache = ShardCache(small_disk / "cache", retries=4, backoff=0.01)
    opener = Counting(os.urandom(2 * MB))
    with pytest.raises(ShardError) as info:
        cache.fetch("https://example.org/big.tar", opener)
    message = str(info.value)
    assert message.startswith("https://example.org/big.tar: ")
    assert "no space left" in message and str(small_disk / "cache") in message
    assert opener.calls == 1
    assert not list((small_disk / "cache").glob("*.part"))  # the partial file is removed
    small = Counting(b"x" * 1000)  # the cache still works for what fits
    assert cache.fetch("https://example.org/small.tar", small).read_bytes() == b"x" * 1000


def test_a_full_disk_while_reading_a_dataset_is_skipped_with_on_error(
    small_disk: Path, tmp_path: Path
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    atdata.write_samples(
        [atdata.DictSample({"x": os.urandom(4000)}) for _ in range(400)], served / "big.tar"
    )
    with serve_directory(served) as url:
        cache = ShardCache(small_disk / "cache", retries=3, backoff=0.01)
        ds = atdata.Dataset(f"{url}/big.tar", cache=cache, on_error="skip")
        with pytest.warns(UserWarning, match="no space left"):
            assert list(ds) == []


# --------------------------------------------------------------------------- a size limit


def test_one_download_is_bounded_by_a_size_limit(tmp_path: Path) -> None:
    cache = ShardCache(tmp_path / "cache", max_shard_bytes=64 * 1024, retries=4, backoff=0.01)
    opener = Counting(b"x" * (1 * MB))
    with pytest.raises(ShardError) as info:
        cache.fetch("https://example.org/huge.tar?token=secret", opener)
    assert "65536" in str(info.value) and "max_shard_bytes" in str(info.value)
    assert "secret" not in str(info.value)
    assert opener.calls == 1
    assert not list((tmp_path / "cache").glob("*.part"))
    assert "https://example.org/huge.tar?token=secret" not in cache


def test_the_default_size_limit_is_sensible() -> None:
    cache = ShardCache("/nonexistent")
    assert 1 << 30 <= cache.max_shard_bytes <= 64 << 30


def test_an_oversized_http_shard_is_refused(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    (served / "big.tar").write_bytes(os.urandom(3 * MB))
    with serve_directory(served) as url:
        cache = ShardCache(tmp_path / "cache", max_shard_bytes=MB, retries=2, backoff=0.01)
        with pytest.raises(ShardError, match="max_shard_bytes"):
            cache.fetch(f"{url}/big.tar", lambda: open_url(f"{url}/big.tar"))
    assert not list((tmp_path / "cache").glob("*.part"))


def test_an_oversized_s3_shard_is_refused_before_it_is_downloaded(
    wire: Wire, s3_client: Any, s3_bucket: str, tmp_path: Path
) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="big.tar", Body=os.urandom(3 * MB))
    obj = S3Object(wire.client(), s3_bucket, "big.tar", part_size=MB // 2)
    cache = ShardCache(tmp_path / "cache", max_shard_bytes=MB, retries=3, backoff=0.01)
    with pytest.raises(ShardError, match="max_shard_bytes"):
        cache.fetch(f"s3://{s3_bucket}/big.tar", obj)
    assert wire.requests == [("HEAD", f"/{s3_bucket}/big.tar")]  # the size; no byte fetched
    assert not list((tmp_path / "cache").glob("*.part"))


def test_a_full_disk_under_an_s3_download_is_reported_and_not_retried(
    wire: Wire, s3_client: Any, s3_bucket: str, small_disk: Path
) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="big.tar", Body=os.urandom(2 * MB))
    obj = S3Object(wire.client(), s3_bucket, "big.tar", part_size=MB // 2)
    cache = ShardCache(small_disk / "cache", retries=4, backoff=0.01)
    with pytest.raises(ShardError, match="no space left on the disk of the shard cache"):
        cache.fetch(f"s3://{s3_bucket}/big.tar", obj)
    assert [m for m, _ in wire.requests].count("HEAD") == 1  # one download, not one per retry
    assert not list((small_disk / "cache").glob("*.part"))


# --------------------------------------------------------------------------- one policy per transport


def test_a_missing_s3_object_is_requested_exactly_once(
    wire: Wire, s3_bucket: str, tmp_path: Path
) -> None:
    cache = ShardCache(tmp_path / "cache", retries=4, backoff=0.01)
    with pytest.raises(ShardError) as info:
        cache.fetch(f"s3://{s3_bucket}/gone.tar", S3Object(wire.client(), s3_bucket, "gone.tar"))
    assert wire.requests == [("HEAD", f"/{s3_bucket}/gone.tar")]
    assert str(info.value) == (
        f"s3://{s3_bucket}/gone.tar: download failed (not retried): S3 Not Found (HTTP 404)"
    )


def test_s3_access_denied_is_requested_exactly_once(
    wire: Wire, s3_client: Any, s3_bucket: str, tmp_path: Path
) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="a.tar", Body=b"x" * 100)
    wire.env = {**wire.env, "AWS_SECRET_ACCESS_KEY": "not-the-secret-key"}
    cache = ShardCache(tmp_path / "cache", retries=4, backoff=0.01)
    with pytest.raises(ShardError) as info:
        cache.fetch(f"s3://{s3_bucket}/a.tar", S3Object(wire.client(), s3_bucket, "a.tar"))
    assert wire.requests == [("HEAD", f"/{s3_bucket}/a.tar")]
    assert "not retried" in str(info.value) and "HTTP 403" in str(info.value)
    assert "not-the-secret-key" not in str(info.value)


def test_s3_errors_are_retried_by_botocore_alone(
    wire: Wire, s3_client: Any, s3_bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(MB + 1)
    s3_client.put_object(Bucket=s3_bucket, Key="a.tar", Body=data)
    client = wire.client(retries={"mode": "standard", "total_max_attempts": 2})
    cache = ShardCache(tmp_path / "cache", retries=4, backoff=0.01)
    wire.fail = 1  # one 503: botocore's second attempt succeeds
    path = cache.fetch(f"s3://{s3_bucket}/a.tar", S3Object(client, s3_bucket, "a.tar"))
    assert path.read_bytes() == data
    assert wire.requests[:2] == [("HEAD", f"/{s3_bucket}/a.tar")] * 2
    assert [m for m, _ in wire.requests[2:]] == ["GET"]
    wire.requests.clear()
    wire.fail = 100  # a server that keeps failing: botocore's attempts, and no more
    with pytest.raises(ShardError) as info:
        cache.fetch(f"s3://{s3_bucket}/b.tar", S3Object(client, s3_bucket, "b.tar"))
    assert wire.requests == [("HEAD", f"/{s3_bucket}/b.tar")] * 2
    assert str(info.value) == (
        f"s3://{s3_bucket}/b.tar: download failed after 2 tries: S3 Service Unavailable (HTTP 503)"
    )


def test_an_unreachable_s3_endpoint_is_tried_by_botocore_only(
    wire: Wire, s3_bucket: str, tmp_path: Path
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        wire.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    client = wire.client(retries={"mode": "standard", "total_max_attempts": 2})
    cache = ShardCache(tmp_path / "cache", retries=4, backoff=0.01)
    with pytest.raises(ShardError) as info:
        cache.fetch(f"s3://{s3_bucket}/a.tar", S3Object(client, s3_bucket, "a.tar"))
    assert str(info.value) == f"s3://{s3_bucket}/a.tar: download failed: EndpointConnectionError"


def test_an_s3_body_cut_mid_range_is_asked_for_again_by_the_transfer(
    wire: Wire, s3_client: Any, s3_bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(2 * MB)
    s3_client.put_object(Bucket=s3_bucket, Key="a.tar", Body=data)
    obj = S3Object(wire.client(), s3_bucket, "a.tar", part_size=MB, concurrency=1)
    cache = ShardCache(tmp_path / "cache", retries=4, backoff=0.01)
    wire.cut = 1
    assert cache.fetch(f"s3://{s3_bucket}/a.tar", obj).read_bytes() == data
    assert [m for m, _ in wire.requests] == ["HEAD", "GET", "GET", "GET"]  # 2 ranges, 1 again


@pytest.mark.parametrize("fault", ["404", "403"])
def test_http_404_and_403_are_requested_exactly_once(
    fault: str, wire: Wire, s3_client: Any, s3_bucket: str, tmp_path: Path
) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="a.tar", Body=b"x" * 100)
    key = "gone.tar" if fault == "404" else "a.tar"
    url = wire.client().generate_presigned_url(
        "get_object", Params={"Bucket": s3_bucket, "Key": key}, ExpiresIn=600
    )
    if fault == "403":
        url = url.replace("Signature=", "Signature=0")  # a forged signature
    cache = ShardCache(tmp_path / "cache", retries=4, backoff=0.01)
    with pytest.raises(ShardError) as info:
        cache.fetch(url, lambda: open_url(url))
    assert wire.requests == [("GET", f"/{s3_bucket}/{key}")]
    assert f"HTTP {fault}" in str(info.value) and "not retried" in str(info.value)
    assert "Signature" not in str(info.value)


def test_http_errors_are_retried_by_the_cache_loop(
    wire: Wire, s3_client: Any, s3_bucket: str, tmp_path: Path
) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="a.tar", Body=b"x" * 100)
    url = wire.client().generate_presigned_url(
        "get_object", Params={"Bucket": s3_bucket, "Key": "a.tar"}, ExpiresIn=600
    )
    cache = ShardCache(tmp_path / "cache", retries=2, backoff=0.01)
    wire.fail = 2
    assert cache.fetch(url, lambda: open_url(url)).read_bytes() == b"x" * 100
    assert wire.requests == [("GET", f"/{s3_bucket}/a.tar")] * 3
    wire.requests.clear()
    wire.fail = 100
    with pytest.raises(ShardError, match=r"download failed after 3 tries: HTTP 503"):
        cache.fetch(url + "&again", lambda: open_url(url))
    assert len(wire.requests) == 3


def test_a_missing_s3_shard_in_a_dataset_is_reported_without_retries(
    s3_client: Any, s3_bucket: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    source = S3Source.from_credentials(s3_env, s3_bucket, ["gone.tar"])
    cache = ShardCache(tmp_path / "cache", retries=4, backoff=0.01)
    with pytest.raises(ShardError, match=r"not retried\): S3 Not Found \(HTTP 404\)"):
        list(atdata.Dataset(source, cache=cache))
