"""Cold reads of remote shards: atdata against a plain parallel download of the same objects.

A SeaweedFS S3 server (``atdata.stack.s3``) runs on loopback with N shards of 150 KB
``uint8`` arrays. Contenders, interleaved and repeated, in one run:

* **atdata cold epoch**: ``Dataset[Image](s3 shards, cache=<empty ShardCache>)`` read in
  order, every sample decoded; the shard cache is emptied after each repetition, so each
  epoch downloads everything (parallel ranged GETs, ``prefetch`` shards ahead);
* **plain parallel download**: ``get_object().read()`` of every object in a thread pool of
  2, 4 or 8 threads, bytes into memory and dropped. The best of the three is the yardstick;
* **one object at a time**, three ways to download it into a file: a single streamed GET,
  atdata's ``S3Object`` (one HEAD for the size limit, then boto3's managed transfer in
  16 MiB ranges, 4 at a time), and boto3's ``download_fileobj`` with a ``TransferConfig``
  sized for the object.

The server, the client and the reader share this machine's cores, so these numbers are a
floor for a real network, where requests wait on latency rather than on CPU.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

import atdata
from atdata.cache import S3Object, ShardCache
from benchmarks.run import error_row, make_row, measure, median

SUITE = "remote"
SHAPE = (3, 224, 224)
NBYTES = math.prod(SHAPE)
TARGET = 0.8


@atdata.packable
class Image:
    image: NDArray[np.uint8]
    label: int


@dataclass(frozen=True)
class Config:
    shards: int
    per_shard: int
    reps: int


FULL = Config(shards=8, per_shard=420, reps=9)  # 8 x 63 MB
QUICK = Config(shards=4, per_shard=110, reps=5)  # 4 x 17 MB


@contextmanager
def s3_bucket(name: str) -> Iterator[tuple[dict[str, str], Any]]:
    """A loopback SeaweedFS server with one bucket: its ``AWS_*`` env and a boto3 client."""
    from atdata.stack.s3 import s3_client, start_s3

    server = start_s3()
    try:
        client = s3_client(server.env, max_pool_connections=32)
        client.create_bucket(Bucket=name)
        yield dict(server.env), client
    finally:
        server.stop()


def write_image_shards(root: Path, n: int, per_shard: int) -> list[str]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, SHAPE, dtype=np.uint8)
    samples = (Image(np.roll(base, i), i) for i in range(n * per_shard))
    return atdata.write_samples(samples, root / "img.tar", maxcount=per_shard).list_shards()


def plain_download(client: Any, bucket: str, keys: list[str], threads: int) -> Callable[[], None]:
    def one(key: str) -> int:
        return len(client.get_object(Bucket=bucket, Key=key)["Body"].read())

    def go() -> None:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, keys))

    return go


def atdata_epoch(
    env: dict[str, str], urls: list[str], cache_dir: Path, prefetch: int, expected: int
) -> Callable[[], None]:
    """One epoch of a dataset made once, as a training loop would (its S3 client is reused)."""
    ds = atdata.Dataset[Image](
        urls, credentials=env, cache=ShardCache(cache_dir), prefetch=prefetch
    )

    def go() -> None:
        n = 0
        for sample in ds.ordered():
            n += sample.image.shape[0] > 0
        if n != expected:
            raise RuntimeError(f"read {n} samples, expected {expected}")

    return go


def object_downloads(client: Any, bucket: str, keys: list[str], out: Path) -> dict[str, Any]:
    """Download each object into a file, one at a time, three ways."""
    from boto3.s3.transfer import TransferConfig

    size = client.head_object(Bucket=bucket, Key=keys[0])["ContentLength"]
    part = max(8 << 20, -(-size // 8))
    managed = TransferConfig(multipart_threshold=part, multipart_chunksize=part, max_concurrency=8)

    def single() -> None:
        for key in keys:
            body = client.get_object(Bucket=bucket, Key=key)["Body"]
            with open(out / key, "wb") as f:
                for chunk in body.iter_chunks(1 << 20):
                    f.write(chunk)

    def ranged() -> None:
        for key in keys:
            with open(out / key, "wb") as f:
                S3Object(client, bucket, key).write_to(f)

    def fileobj() -> None:
        for key in keys:
            with open(out / key, "wb") as f:
                client.download_fileobj(bucket, key, f, Config=managed)

    return {
        "single streamed GET": single,
        "S3Object, 16 MiB x 4 (atdata)": ranged,
        f"download_fileobj, {part >> 20} MiB x 8": fileobj,
    }


def run(quick: bool) -> list[dict[str, Any]]:
    cfg = QUICK if quick else FULL
    rows: list[dict[str, Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="atdata-bench-remote-"))
    try:
        shards = write_image_shards(tmp / "src", cfg.shards, cfg.per_shard)
        total = sum(os.path.getsize(s) for s in shards)
        n = cfg.shards * cfg.per_shard
        with s3_bucket("bench-remote") as (env, client):
            keys = [Path(s).name for s in shards]
            for shard, key in zip(shards, keys):
                client.upload_file(shard, "bench-remote", key)
            urls = [f"s3://bench-remote/{k}" for k in keys]
            cache_dir = tmp / "cache"
            fns: dict[str, Callable[[], None]] = {
                f"plain x{t}": plain_download(client, "bench-remote", keys, t) for t in (2, 4, 8)
            }
            fns["atdata prefetch=2"] = atdata_epoch(env, urls, cache_dir, 2, n)
            fns["atdata prefetch=4"] = atdata_epoch(env, urls, cache_dir, 4, n)
            for fn in fns.values():  # warm up: server caches, S3 clients, thread pools
                fn()
                shutil.rmtree(cache_dir, True)
            times = measure(fns, cfg.reps, after=lambda _: shutil.rmtree(cache_dir, True))
            gbps = {name: total / median(t) / 1e9 for name, t in times.items()}
            best = max((k for k in gbps if k.startswith("plain")), key=gbps.__getitem__)
            for name in ("atdata prefetch=2", "atdata prefetch=4"):
                ratio = gbps[name] / gbps[best]
                rows.append(
                    make_row(
                        SUITE,
                        f"cold epoch from S3, {cfg.shards} x {total / cfg.shards / 1e6:.0f} MB, {name}",
                        "throughput",
                        "GB/s",
                        gbps[name],
                        gbps[best],
                        peer_name=f"boto3 {best} threads",
                        target=f">= {TARGET}x plain parallel download",
                        met=ratio >= TARGET,
                        samples_per_s=n / median(times[name]),
                        seconds=times[name],
                    )
                )
            for name in ("plain x2", "plain x4", "plain x8"):
                rows.append(
                    make_row(
                        SUITE,
                        f"plain parallel download, {name[6:]} threads",
                        "throughput",
                        "GB/s",
                        gbps[name],
                        seconds=times[name],
                    )
                )
            out = tmp / "objects"
            out.mkdir()
            methods = object_downloads(client, "bench-remote", keys, out)
            times = measure(methods, cfg.reps)
            single = total / median(times["single streamed GET"]) / 1e9
            for name, t in times.items():
                rows.append(
                    make_row(
                        SUITE,
                        f"one object at a time: {name}",
                        "throughput",
                        "GB/s",
                        total / median(t) / 1e9,
                        None if name.startswith("single") else single,
                        peer_name="single GET",
                        seconds=t,
                    )
                )
    except Exception as exc:
        rows.append(error_row(SUITE, "remote shards", exc))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows
