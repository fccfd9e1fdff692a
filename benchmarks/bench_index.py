"""The team layer on real servers: index lookups and listing at 100k entries, and S3 inserts.

Cases (started here on loopback, stopped after: Redis, PostgreSQL, SeaweedFS S3):

- ``lookup_<provider>``: ``Index.get_entry_by_name`` of random names among N entries, in
  microseconds per lookup, for SQLite, Redis and PostgreSQL. For Redis the peer is the
  seed-era lookup (SCAN ``LocalDatasetEntry:*`` and read each hash's name) over the same keys.
- ``list_<provider>``: ``Index.list_entries()`` of all N entries, in entries/s. For Redis the
  peer is the seed-era listing (SCAN, then HGETALL per key).
- ``insert_s3``: ``Index.insert_dataset`` of a multi-shard dataset into an ``S3DataStore``
  (byte copy with SHA-256, verified, indexed), in MB/s, against a plain boto3
  ``upload_file`` of the same shard files to the same server. Target: at least 0.8x.

N is 100,000 (20,000 with ``--quick``). Entries are stored with bulk inserts.

    python benchmarks/bench_index.py [--quick]
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # standalone: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from numpy.typing import NDArray

import atdata
from atdata.local import (
    Index,
    IndexProvider,
    LocalDatasetEntry,
    LocalDiskStore,
    PostgresProvider,
    RedisProvider,
    S3DataStore,
    ShardInfo,
    SqliteProvider,
)
from benchmarks.run import error_row, format_table, make_row, measure, median

SUITE = "index"
MB = 1e6
SCHEMA_REF = "atdata://local/sampleSchema/Blob@1.0.0"


@atdata.packable
class Blob:
    data: NDArray[np.uint8]
    index: int


@dataclass(frozen=True)
class Config:
    entries: int
    lookups: int
    reps: int
    peer_reps: int
    shards: int
    shard_mib: int
    insert_reps: int


FULL = Config(
    entries=100_000, lookups=2_000, reps=5, peer_reps=2, shards=6, shard_mib=64, insert_reps=3
)
QUICK = Config(
    entries=20_000, lookups=500, reps=3, peer_reps=1, shards=4, shard_mib=24, insert_reps=3
)


def make_entries(n: int) -> list[LocalDatasetEntry]:
    """``n`` entries shaped like real ones: four shards with sizes and checksums, metadata."""
    out = []
    for i in range(n):
        urls = [f"s3://datasets/bench/dataset-{i:06d}/data-{j:06d}.tar" for j in range(4)]
        shards = tuple(ShardInfo(u, 1 << 28, f"{i:032x}{j:032x}") for j, u in enumerate(urls))
        out.append(
            LocalDatasetEntry(
                f"dataset-{i:06d}", SCHEMA_REF, urls, {"split": "train", "rows": i}, shards
            )
        )
    return out


def us_each(seconds: list[float], n: int) -> float:
    return median(seconds) / n * 1e6


def ratio(ours: float, peer: float | None, higher_is_better: bool = True) -> float | None:
    """How far ahead atdata is (above 1: ahead), as the runner computes it."""
    if peer is None:
        return None
    return ours / peer if higher_is_better else peer / ours


# --------------------------------------------------------------------------- seed-era Redis reads


def seed_lookup(client: Any, name: str) -> dict[bytes, bytes]:
    """The seed-era ``get_entry_by_name``: SCAN every entry key, first name match wins."""
    for key in client.scan_iter(match="LocalDatasetEntry:*"):
        if client.hget(key, "name") == name.encode():
            return client.hgetall(key)
    raise KeyError(name)


def seed_list(client: Any) -> list[LocalDatasetEntry]:
    """The seed-era ``list_entries``: SCAN, then one HGETALL per key, decoded as ours are."""
    return [
        LocalDatasetEntry.from_fields(client.hgetall(key), "seed")
        for key in client.scan_iter(match="LocalDatasetEntry:*")
    ]


# --------------------------------------------------------------------------- cases


def provider_rows(
    label: str, index: Index, entries: list[LocalDatasetEntry], cfg: Config, redis: Any = None
) -> list[dict[str, Any]]:
    index.provider.put_entries(entries)
    rng = random.Random(0)
    names = [rng.choice(entries).name for _ in range(cfg.lookups)]

    def lookups() -> None:
        for name in names:
            index.get_entry_by_name(name)

    def listing() -> None:
        assert len(index.list_entries()) == len(entries)

    n = len(entries)
    times = measure({"lookup": lookups}, cfg.reps)
    lookup_us = us_each(times["lookup"], len(names))
    times = measure({"list": listing}, cfg.reps)
    list_rate = n / median(times["list"])
    lookup_peer = list_peer = None
    if redis is not None:
        peer_names = [rng.choice(entries).name for _ in range(cfg.peer_reps)]
        peer = measure({"seed": lambda: [seed_lookup(redis, x) for x in peer_names]}, 1)
        lookup_peer = us_each(peer["seed"], len(peer_names))
        peer = measure({"seed": lambda: seed_list(redis)}, cfg.peer_reps)
        list_peer = n / median(peer["seed"])
    size = f"{n // 1000}k"
    return [
        make_row(
            SUITE,
            f"{label}: name lookup @{size}",
            f"lookup_{label}",
            "µs",
            lookup_us,
            lookup_peer,
            peer_name="seed SCAN" if redis is not None else None,
            ratio=ratio(lookup_us, lookup_peer, higher_is_better=False),
            higher_is_better=False,
            note=f"median of {cfg.reps} runs of {len(names)} lookups of random names",
            entries=n,
        ),
        make_row(
            SUITE,
            f"{label}: list all @{size}",
            f"list_{label}",
            "entries/s",
            list_rate,
            list_peer,
            peer_name="seed SCAN" if redis is not None else None,
            ratio=ratio(list_rate, list_peer),
            note=f"{n} entries in {median(times['list']):.2f} s (median of {cfg.reps})",
            entries=n,
        ),
    ]


def insert_rows(cfg: Config, s3: Any, tmp: str) -> list[dict[str, Any]]:
    from atdata.stack.s3 import s3_client

    env = s3.env
    client = s3_client(env)
    bucket = "bench-insert"
    client.create_bucket(Bucket=bucket)
    per_shard = 8
    size = cfg.shard_mib * (1 << 20) // per_shard
    rng = np.random.default_rng(0)
    dataset = atdata.write_samples(
        (Blob(np.frombuffer(rng.bytes(size), np.uint8), i) for i in range(cfg.shards * per_shard)),
        os.path.join(tmp, "blob.tar"),
        maxcount=per_shard,
    )
    paths = dataset.list_shards()
    total = sum(os.path.getsize(p) for p in paths)
    store = S3DataStore(
        credentials={
            "AWS_ENDPOINT": env["AWS_ENDPOINT_URL"],
            "AWS_ACCESS_KEY_ID": env["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": env["AWS_SECRET_ACCESS_KEY"],
        },
        bucket=bucket,
    )
    index = Index(path=os.path.join(tmp, "insert.db"), data_store=store)
    index.publish_schema(Blob, version="1.0.0")
    runs = iter(range(10**6))

    def ours() -> None:
        index.insert_dataset(dataset, name=f"blob-{next(runs)}", prefix="atdata")

    def boto3_upload() -> None:
        for i, path in enumerate(paths):
            client.upload_file(path, bucket, f"boto3/{i:06d}.tar")

    def empty_bucket(_: str) -> None:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})

    times = measure({"atdata": ours, "boto3": boto3_upload}, cfg.insert_reps, after=empty_bucket)
    value = total / median(times["atdata"]) / MB
    peer = total / median(times["boto3"]) / MB
    return [
        make_row(
            SUITE,
            f"insert_dataset to S3 ({len(paths)} x {cfg.shard_mib} MiB)",
            "insert_s3",
            "MB/s",
            value,
            peer,
            peer_name="boto3 upload_file",
            ratio=ratio(value, peer),
            target=">= 0.8x boto3",
            met=value >= 0.8 * peer,
            note=(
                f"{total / MB:.0f} MB to SeaweedFS on loopback, median of {cfg.insert_reps}; "
                "ours: byte copy with SHA-256, multipart, size check, then indexed (SQLite)"
            ),
            seconds=times,
        )
    ]


# --------------------------------------------------------------------------- entry point


def _providers(
    stack: ExitStack, tmp: str
) -> Iterator[tuple[str, Callable[[], tuple[IndexProvider, Any]]]]:
    def sqlite() -> tuple[IndexProvider, Any]:
        return SqliteProvider(os.path.join(tmp, "index.db")), None

    def redis() -> tuple[IndexProvider, Any]:
        from tests.servers.redis import start_redis

        server = stack.enter_context(start_redis())
        provider = RedisProvider(server.url)
        return provider, provider.client

    def postgres() -> tuple[IndexProvider, Any]:
        from tests.servers.postgres import start_postgres

        server = stack.enter_context(start_postgres())
        return PostgresProvider(server.url), None

    yield from (("sqlite", sqlite), ("redis", redis), ("postgres", postgres))


def run(quick: bool) -> list[dict[str, Any]]:
    """Run every team-layer case; return the result rows."""
    cfg = QUICK if quick else FULL
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="atdata-bench-index-") as tmp, ExitStack() as stack:
        entries = make_entries(cfg.entries)
        for label, start in _providers(stack, tmp):
            try:
                provider, redis = start()
                index = Index(provider, data_store=LocalDiskStore(os.path.join(tmp, "store")))
                rows += provider_rows(label, index, entries, cfg, redis)
                provider.close()
            except Exception as exc:  # report it and go on with the other providers
                rows.append(error_row(SUITE, f"{label} (failed)", exc))
        try:
            from atdata.stack.s3 import start_s3

            s3 = stack.enter_context(start_s3())
            rows += insert_rows(cfg, s3, tmp)
        except Exception as exc:
            rows.append(error_row(SUITE, "insert (failed)", exc))
    return rows


if __name__ == "__main__":
    print(format_table(run(quick="--quick" in sys.argv[1:])))
