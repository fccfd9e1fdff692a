"""The shard cache under faults no retry can fix: a full disk, 404 and 403, an oversized shard.

The full disk is real (a 1 MiB tmpfs), 404 and 403 come from the real SeaweedFS
server (over S3 and over plain HTTP with presigned URLs), and an oversized shard
is served by a real HTTP server and by SeaweedFS.
"""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

import atdata
from atdata.cache import S3Object, ShardCache
from atdata.errors import ShardError
from atdata.sources import S3Source, make_s3_client, open_url
from helpers import private_atdata_home, serve_directory  # noqa: F401 - autouse fixture

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
    s3_client: Any, s3_bucket: str, tmp_path: Path
) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="big.tar", Body=os.urandom(3 * MB))
    calls = count_gets(s3_client)
    try:
        obj = S3Object(s3_client, s3_bucket, "big.tar", part_size=MB // 2)
        cache = ShardCache(tmp_path / "cache", max_shard_bytes=MB, retries=3, backoff=0.01)
        with pytest.raises(ShardError, match="max_shard_bytes"):
            cache.fetch(f"s3://{s3_bucket}/big.tar", obj)
    finally:
        s3_client.meta.events.unregister("before-call.s3.GetObject", calls.hook)
    assert calls.n == 1  # the first ranged GET tells the size; nothing more is fetched
    assert not list((tmp_path / "cache").glob("*.part"))


# --------------------------------------------------------------------------- 404 and 403


class GetCounter:
    def __init__(self) -> None:
        self.n = 0

    def hook(self, **kwargs: Any) -> None:
        self.n += 1


def count_gets(client: Any) -> GetCounter:
    counter = GetCounter()
    client.meta.events.register("before-call.s3.GetObject", counter.hook)
    return counter


def test_a_missing_s3_object_is_not_retried(
    s3_client: Any, s3_bucket: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    calls = count_gets(s3_client)
    try:
        cache = ShardCache(tmp_path / "cache", retries=4, backoff=0.01)
        with pytest.raises(ShardError) as info:
            cache.fetch(f"s3://{s3_bucket}/gone.tar", S3Object(s3_client, s3_bucket, "gone.tar"))
    finally:
        s3_client.meta.events.unregister("before-call.s3.GetObject", calls.hook)
    assert calls.n == 1
    assert "NoSuchKey" in str(info.value) and "not retried" in str(info.value)


def test_s3_access_denied_is_not_retried(
    s3_client: Any, s3_bucket: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="a.tar", Body=b"x" * 100)
    wrong = make_s3_client(
        s3_env["AWS_ENDPOINT_URL"], s3_env["AWS_ACCESS_KEY_ID"], "not-the-secret-key"
    )
    calls = count_gets(wrong)
    cache = ShardCache(tmp_path / "cache", retries=4, backoff=0.01)
    with pytest.raises(ShardError) as info:
        cache.fetch(f"s3://{s3_bucket}/a.tar", S3Object(wrong, s3_bucket, "a.tar"))
    assert calls.n == 1
    assert "not retried" in str(info.value)
    assert "not-the-secret-key" not in str(info.value)


@pytest.mark.parametrize("fault", ["404", "403"])
def test_http_404_and_403_are_not_retried(
    fault: str, s3_client: Any, s3_bucket: str, tmp_path: Path
) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="a.tar", Body=b"x" * 100)
    key = "gone.tar" if fault == "404" else "a.tar"
    url = s3_client.generate_presigned_url(
        "get_object", Params={"Bucket": s3_bucket, "Key": key}, ExpiresIn=600
    )
    if fault == "403":
        url = url.replace("Signature=", "Signature=0")  # a forged signature
    calls = []

    def opener() -> IO[bytes]:
        calls.append(1)
        return open_url(url)

    cache = ShardCache(tmp_path / "cache", retries=4, backoff=0.01)
    with pytest.raises(ShardError) as info:
        cache.fetch(url, opener)
    assert len(calls) == 1
    assert f"HTTP {fault}" in str(info.value) and "not retried" in str(info.value)
    assert "Signature" not in str(info.value)


def test_a_missing_s3_shard_in_a_dataset_is_reported_without_retries(
    s3_client: Any, s3_bucket: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    source = S3Source.from_credentials(s3_env, s3_bucket, ["gone.tar"])
    cache = ShardCache(tmp_path / "cache", retries=4, backoff=0.01)
    with pytest.raises(ShardError, match="NoSuchKey"):
        list(atdata.Dataset(source, cache=cache))
