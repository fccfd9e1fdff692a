"""The shard cache: atomic entries, LRU eviction, several processes, retries, prefetching,
and remote shards that disappear or break mid-epoch (real SeaweedFS S3, misbehaving HTTP)."""

from __future__ import annotations

import http.server
import io
import itertools
import multiprocessing
import os
import socket
import struct
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import pytest
from numpy.typing import NDArray

import atdata
from atdata.cache import Prefetcher, S3Object, ShardCache, default_cache_dir, opener_for
from atdata.sources import S3Source, URLSource
from helpers import serve_http

KB = 1024


@atdata.packable
class Item:
    data: NDArray[np.uint8]
    index: int


def write_shards(root: Path, n_shards: int, per_shard: int = 4, size: int = 4096) -> list[str]:
    """Shards ``data-00000i.tar`` of ``Item``s numbered 0, 1, 2, ... in order."""
    samples = (Item(np.full(size, i % 251, np.uint8), i) for i in range(n_shards * per_shard))
    ds = atdata.write_samples(samples, root / "data.tar", maxcount=per_shard)
    return ds.list_shards()


def payload(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


class Broken(io.RawIOBase):
    """A stream that hands out ``good`` bytes and then fails like a dropped connection."""

    def __init__(self, data: bytes, good: int) -> None:
        self._data, self._good, self._pos = data, good, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self._good:
            raise ConnectionResetError("connection reset by peer")
        n = min(len(buffer), self._good - self._pos)
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


# --------------------------------------------------------------------------- entries


def test_default_root_follows_atdata_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ATDATA_HOME", str(tmp_path))
    assert ShardCache().root == tmp_path / "cache" == default_cache_dir()
    monkeypatch.delenv("ATDATA_HOME")
    assert ShardCache().root == Path.home() / ".atdata" / "cache"


def test_entries_are_named_by_hash_never_by_url(tmp_path: Path) -> None:
    cache = ShardCache(tmp_path)
    url = "https://host/bucket/data-000001.tar?X-Amz-Signature=secret-token"
    path = cache.fetch(url, lambda: io.BytesIO(b"abc"))
    assert path.read_bytes() == b"abc"
    assert path.parent == tmp_path
    assert "secret" not in path.name and "data-000001" not in path.name
    assert url in cache and "https://host/other.tar" not in cache
    # a second fetch is a cache hit: the opener is not called
    assert cache.fetch(url, lambda: pytest.fail("downloaded twice")) == path


def test_a_failed_download_leaves_nothing_that_looks_complete(tmp_path: Path) -> None:
    cache = ShardCache(tmp_path, retries=2, backoff=0.001)
    data = payload(300 * KB)
    calls = []

    def opener() -> IO[bytes]:
        calls.append(1)
        return Broken(data, 100 * KB)  # type: ignore[return-value]

    url = "https://user:pw@host:8443/d/shard.tar?token=abc"
    with pytest.raises(atdata.ShardError) as info:
        cache.fetch(url, opener)
    message = str(info.value)
    assert "https://host:8443/d/shard.tar" in message  # the URL, redacted
    assert "token" not in message and "pw" not in message
    assert "3 tries" in message and "ConnectionResetError" in message
    assert len(calls) == 3
    assert sorted(os.listdir(tmp_path)) == [cache.path(url).with_suffix(".lock").name]


def _crash_mid_download(root: str, url: str) -> None:
    def opener() -> IO[bytes]:
        class Dies(io.RawIOBase):
            sent = False

            def readable(self) -> bool:
                return True

            def readinto(self, buffer: Any) -> int:
                if self.sent:
                    os._exit(3)  # the process dies with half the shard written
                self.sent = True
                buffer[:4] = b"half"
                return 4

        return Dies()  # type: ignore[return-value]

    ShardCache(root).fetch(url, opener)


def test_a_crash_mid_download_leaves_no_entry_and_the_part_is_cleaned(tmp_path: Path) -> None:
    url = "s3://bucket/crash.tar"
    proc = multiprocessing.get_context("fork").Process(
        target=_crash_mid_download, args=(str(tmp_path), url)
    )
    proc.start()
    proc.join(30)
    assert proc.exitcode == 3
    cache = ShardCache(tmp_path)
    assert url not in cache
    assert [p for p in os.listdir(tmp_path) if p.endswith(".part")]  # the crash left a part
    assert cache.fetch(url, lambda: io.BytesIO(b"whole")).read_bytes() == b"whole"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".part")]


def test_transient_errors_are_retried_with_backoff(tmp_path: Path) -> None:
    cache = ShardCache(tmp_path, retries=3, backoff=0.02)
    data = payload(50 * KB)
    times: list[float] = []

    def opener() -> IO[bytes]:
        times.append(time.monotonic())
        if len(times) == 1:
            raise ConnectionError("connection refused")
        if len(times) == 2:
            return Broken(data, 10 * KB)  # type: ignore[return-value]
        return io.BytesIO(data)

    assert cache.fetch("https://host/a.tar", opener).read_bytes() == data
    assert len(times) == 3
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert (
        gaps[0] >= 0.01 and gaps[1] >= 0.02
    )  # exponential: base, then twice the base (jitter >= 1/2)


def test_unknown_shards_and_bad_requests_are_not_retried(tmp_path: Path) -> None:
    cache = ShardCache(tmp_path, retries=5, backoff=10)
    calls = []

    def unknown() -> IO[bytes]:
        calls.append(1)
        raise KeyError("not a shard of this source")

    with pytest.raises(KeyError):
        cache.fetch("s3://b/x.tar", unknown)
    assert len(calls) == 1


# --------------------------------------------------------------------------- eviction


def test_lru_eviction_keeps_the_cache_under_its_cap(tmp_path: Path) -> None:
    size = 100 * KB
    cache = ShardCache(tmp_path, max_bytes=3 * size + 10)
    urls = [f"https://host/{i}.tar" for i in range(5)]
    for i, url in enumerate(urls[:3]):
        cache.fetch(url, lambda i=i: io.BytesIO(payload(size, i)))
        time.sleep(0.01)
    cache.fetch(urls[0], lambda: pytest.fail("cached"))  # touch: 0 is now the most recent
    time.sleep(0.01)
    cache.fetch(urls[3], lambda: io.BytesIO(payload(size, 3)))
    assert [u in cache for u in urls] == [True, False, True, True, False]
    time.sleep(0.01)
    cache.fetch(urls[4], lambda: io.BytesIO(payload(size, 4)))
    assert [u in cache for u in urls] == [True, False, False, True, True]
    assert cache.total_bytes() <= cache.max_bytes
    assert len(list(tmp_path.glob("*.lock"))) == 3  # evicted entries lose their lock file too


def test_an_open_entry_is_never_evicted(tmp_path: Path) -> None:
    size = 100 * KB
    cache = ShardCache(tmp_path, max_bytes=2 * size)
    first = payload(size, 0)
    with cache.open("https://host/0.tar", lambda: io.BytesIO(first)) as f:
        for i in range(1, 5):
            cache.fetch(f"https://host/{i}.tar", lambda i=i: io.BytesIO(payload(size, i)))
            time.sleep(0.01)
        assert "https://host/0.tar" in cache  # oldest, but open
        assert f.read() == first
    cache.fetch("https://host/5.tar", lambda: io.BytesIO(payload(size, 5)))
    assert "https://host/0.tar" not in cache
    assert cache.total_bytes() <= cache.max_bytes


def test_an_entry_bigger_than_the_cap_is_still_readable(tmp_path: Path) -> None:
    cache = ShardCache(tmp_path, max_bytes=10)
    data = payload(10 * KB)
    with cache.open("https://host/big.tar", lambda: io.BytesIO(data)) as f:
        assert f.read() == data


# --------------------------------------------------------------------------- several processes


def _fetch_slowly(root: str, url: str, log: str, data: bytes) -> bytes:
    def opener() -> IO[bytes]:
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")

        class Slow(io.RawIOBase):
            pos = 0

            def readable(self) -> bool:
                return True

            def readinto(self, buffer: Any) -> int:
                time.sleep(0.002)
                n = min(len(buffer), 8 * KB, len(data) - self.pos)
                buffer[:n] = data[self.pos : self.pos + n]
                self.pos += n
                return n

        return Slow()  # type: ignore[return-value]

    with ShardCache(root).open(url, opener) as f:
        return f.read()


def test_processes_sharing_the_cache_download_a_shard_once(tmp_path: Path) -> None:
    data = payload(400 * KB)
    log = tmp_path / "downloads.log"
    root = tmp_path / "cache"
    with multiprocessing.get_context("fork").Pool(4) as pool:
        results = pool.starmap(
            _fetch_slowly, [(str(root), "s3://b/shared.tar", str(log), data)] * 4
        )
    assert all(r == data for r in results)  # no process ever saw a partial file
    assert len(log.read_text().split()) == 1


# --------------------------------------------------------------------------- prefetching


class SlowSource:
    """An in-memory DataSource whose shards take a while to download; records opens."""

    def __init__(self, shards: dict[str, bytes], delay: float = 0.05) -> None:
        self.shards, self.delay = shards, delay
        self.opened: list[str] = []

    def list_shards(self) -> list[str]:
        return list(self.shards)

    def open_shard(self, shard_id: str) -> IO[bytes]:
        data = self.shards[shard_id]
        self.opened.append(shard_id)
        time.sleep(self.delay)
        return io.BytesIO(data)


def test_prefetcher_downloads_the_next_shards_and_never_more(tmp_path: Path) -> None:
    source = SlowSource({f"mem://s{i}": payload(KB, i) for i in range(8)})
    order = [f"mem://s{i}" for i in (3, 0, 5, 1, 7, 2, 6, 4)]
    prefetcher = Prefetcher(ShardCache(tmp_path), source, depth=2)
    prefetcher.prefetch(order)
    with prefetcher.open(order[0]) as f:
        assert f.read() == source.shards[order[0]]
    time.sleep(0.5)
    assert sorted(source.opened) == sorted(order[:3])  # the current one and two ahead
    for shard in order[1:]:
        with prefetcher.open(shard) as f:
            assert f.read() == source.shards[shard]
    assert sorted(source.opened) == sorted(order)  # each downloaded once
    prefetcher.close()


def test_prefetch_failures_surface_when_the_shard_is_opened(tmp_path: Path) -> None:
    source = SlowSource({"mem://a": b"a", "mem://b": b"b"})
    cache = ShardCache(tmp_path, retries=1, backoff=0.001)
    prefetcher = Prefetcher(cache, source, depth=2)
    prefetcher.prefetch(["mem://a", "mem://gone"])
    with prefetcher.open("mem://a") as f:
        assert f.read() == b"a"
    with pytest.raises(KeyError):
        prefetcher.open("mem://gone")


# --------------------------------------------------------------------------- HTTP faults


class FlakyHandler(http.server.BaseHTTPRequestHandler):
    """Serves files; the first ``fail`` requests of a path are cut mid-body with a reset."""

    files: dict[str, bytes] = {}
    fail: dict[str, int] = {}
    hits: dict[str, int] = {}

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        data = self.files.get(path)
        self.hits[path] = self.hits.get(path, 0) + 1
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.hits[path] <= self.fail.get(path, 0):
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            # RST instead of FIN: the client sees a connection reset mid-body
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def flaky_http() -> Iterator[tuple[str, type[FlakyHandler]]]:
    handler = type("Handler", (FlakyHandler,), {"files": {}, "fail": {}, "hits": {}})
    with serve_http(handler) as url:
        yield url, handler


def test_http_shard_reset_mid_body_is_retried(
    flaky_http: tuple[str, type[FlakyHandler]], tmp_path: Path
) -> None:
    base, handler = flaky_http
    shards = write_shards(tmp_path / "src", 2, size=64 * KB)
    for i, shard in enumerate(shards):
        handler.files[f"/d/{i}.tar"] = Path(shard).read_bytes()
    handler.fail["/d/1.tar"] = 2
    urls = [f"{base}/d/{i}.tar?token=secret" for i in range(2)]
    cache = ShardCache(tmp_path / "cache", retries=3, backoff=0.01)
    ds = atdata.Dataset[Item](urls, cache=cache)
    assert [s.index for s in ds] == list(range(8))
    assert handler.hits["/d/1.tar"] == 3
    for url in urls:
        assert url in cache


def test_http_shard_that_keeps_failing_is_reported_or_skipped(
    flaky_http: tuple[str, type[FlakyHandler]], tmp_path: Path
) -> None:
    base, handler = flaky_http
    shards = write_shards(tmp_path / "src", 3)
    for i, shard in enumerate(shards):
        handler.files[f"/d/{i}.tar"] = Path(shard).read_bytes()
    handler.fail["/d/1.tar"] = 100
    urls = [f"{base}/d/{i}.tar?sig=topsecret" for i in range(3)]
    cache = ShardCache(tmp_path / "cache", retries=2, backoff=0.01)
    with pytest.raises(atdata.ShardError) as info:
        list(atdata.Dataset[Item](urls, cache=cache))
    assert f"{base}/d/1.tar" in str(info.value) and "topsecret" not in str(info.value)
    assert "3 tries" in str(info.value)
    ds = atdata.Dataset[Item](urls, cache=cache, on_error="skip")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = [s.index for s in ds]
    assert got == [0, 1, 2, 3, 8, 9, 10, 11]
    messages = [str(w.message) for w in caught if str(w.message).startswith("skipped")]
    assert len(messages) == 1 and f"skipped: {base}/d/1.tar: download failed" in messages[0]


def test_local_shards_bypass_the_cache(tmp_path: Path) -> None:
    shards = write_shards(tmp_path, 2)
    cache = ShardCache(tmp_path / "cache")
    assert [s.index for s in atdata.Dataset[Item](shards, cache=cache)] == list(range(8))
    assert not cache.root.exists()


# --------------------------------------------------------------------------- S3 (SeaweedFS)


def upload(client: Any, bucket: str, shards: list[str]) -> list[str]:
    for shard in shards:
        client.upload_file(shard, bucket, Path(shard).name)
    return [f"s3://{bucket}/{Path(s).name}" for s in shards]


def test_s3_shards_are_cached_and_memory_mapped(
    s3_client: Any, s3_bucket: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    urls = upload(s3_client, s3_bucket, write_shards(tmp_path, 3, size=32 * KB))
    cache = ShardCache(tmp_path / "cache")
    ds = atdata.Dataset[Item](urls, credentials=s3_env, cache=cache, prefetch=2)
    first = [(s.index, int(s.data[0])) for s in ds.ordered()]
    assert first == [(i, i % 251) for i in range(12)]
    assert all(u in cache for u in urls)
    with ds.reader.open(urls[1]) as f:
        assert isinstance(f, io.FileIO)  # a local file: the reader maps it
    for url in urls:  # the remote copies are gone; the epoch reads from the cache
        bucket, key = url[5:].split("/", 1)
        s3_client.delete_object(Bucket=bucket, Key=key)
    assert sorted(s.index for s in ds.shuffled(seed=3)) == list(range(12))


def test_s3_without_cache_streams(
    s3_client: Any, s3_bucket: str, s3_env: dict[str, str], tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("ATDATA_HOME", str(tmp_path / "home"))
    urls = upload(s3_client, s3_bucket, write_shards(tmp_path, 2))
    ds = atdata.Dataset[Item](urls, credentials=s3_env, cache=False)
    assert [s.index for s in ds] == list(range(8))
    assert not (tmp_path / "home").exists()
    auto = atdata.Dataset[Item](urls, credentials=s3_env)  # cache=None: the default cache
    assert [s.index for s in auto] == list(range(8))
    assert len(list((tmp_path / "home" / "cache").glob("*.tar"))) == 2


def test_s3_ranged_download_matches_the_object(
    s3_client: Any, s3_bucket: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    data = payload(1000 * KB + 123)
    s3_client.put_object(Bucket=s3_bucket, Key="blob", Body=data)
    for part in (64 * KB, 1000 * KB + 123, 4 << 20):
        obj = S3Object(s3_client, s3_bucket, "blob", part_size=part, concurrency=3)
        with open(tmp_path / "out", "wb") as f:
            assert obj.write_to(f) == len(data)
        assert (tmp_path / "out").read_bytes() == data
        with obj() as stream:
            assert stream.read() == data
    source = S3Source.from_credentials(s3_env, s3_bucket, ["blob"])
    url = f"s3://{s3_bucket}/blob"
    assert isinstance(opener_for(source, url), S3Object)
    assert ShardCache(tmp_path / "c").fetch(url, opener_for(source, url)).read_bytes() == data
    with pytest.raises(KeyError):
        opener_for(source, f"s3://{s3_bucket}/other")


def test_s3_urls_in_a_url_source_download_like_an_s3_source(
    s3_client: Any, s3_bucket: str, s3_environ: dict[str, str], tmp_path: Path
) -> None:
    data = payload(300 * KB)
    s3_client.put_object(Bucket=s3_bucket, Key="blob", Body=data)
    url = f"s3://{s3_bucket}/blob"
    source = URLSource([url])  # the AWS credential chain: here, the exported AWS_* settings
    opener = opener_for(source, url)
    assert isinstance(opener, S3Object)  # one retry policy for S3: botocore's, no cache loop
    assert ShardCache(tmp_path / "c").fetch(url, opener).read_bytes() == data
    with pytest.raises(KeyError):
        opener_for(source, f"s3://{s3_bucket}/other")


def test_s3_shard_deleted_mid_epoch_is_reported_without_retries(
    s3_client: Any, s3_bucket: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    urls = upload(s3_client, s3_bucket, write_shards(tmp_path, 4))
    gone = urls[2]
    cache = ShardCache(tmp_path / "cache", retries=2, backoff=0.05)
    ds = atdata.Dataset[Item](urls, credentials=s3_env, cache=cache, prefetch=1)
    seen = []
    with pytest.raises(atdata.ShardError) as info:
        for i, sample in enumerate(ds.ordered()):
            seen.append(sample.index)
            if i == 0:  # shard 1 is being prefetched; shard 2 is not fetched yet
                s3_client.delete_object(Bucket=s3_bucket, Key=Path(gone).name)
    assert seen == list(range(8))
    assert str(info.value) == f"{gone}: download failed (not retried): S3 Not Found (HTTP 404)"

    s3_client.upload_file(str(tmp_path / "data-000002.tar"), s3_bucket, Path(gone).name)
    fresh = ShardCache(tmp_path / "cache2", retries=2, backoff=0.01)
    skip = atdata.Dataset[Item](urls, credentials=s3_env, cache=fresh, prefetch=1, on_error="skip")
    seen = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i, sample in enumerate(skip.ordered()):
            seen.append(sample.index)
            if i == 0:
                s3_client.delete_object(Bucket=s3_bucket, Key=Path(gone).name)
    assert seen == [*range(8), *range(12, 16)]  # the epoch finished without shard 2
    messages = [str(w.message) for w in caught if str(w.message).startswith("skipped")]
    assert messages == [f"skipped: {gone}: download failed (not retried): S3 Not Found (HTTP 404)"]


def test_dataloader_workers_share_the_cache(
    s3_client: Any, s3_bucket: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    urls = upload(s3_client, s3_bucket, write_shards(tmp_path, 4))
    cache = ShardCache(tmp_path / "cache")
    ds = atdata.Dataset[Item](urls, credentials=s3_env, cache=cache)
    loader = ds.to_torch(batch_size=4).loader(num_workers=2)
    got = sorted(int(i) for batch in loader for i in batch["index"])
    assert got == list(range(16))
    assert all(u in cache for u in urls)
    assert not list(cache.root.glob("*.part"))


def test_url_source_reads_file_urls_directly(tmp_path: Path) -> None:
    shards = write_shards(tmp_path, 1)
    source = URLSource([f"file://{shards[0]}"])
    cache = ShardCache(tmp_path / "cache")
    ds = atdata.Dataset[Item](source, cache=cache)
    assert [s.index for s in ds] == [0, 1, 2, 3]
    assert not cache.root.exists()
