"""The existing atdata's team-index calls: ``publish_schema(T)`` without a version, and
``insert_dataset(..., maxcount=, maxsize=)`` re-sharding while it copies.

Against SQLite, Redis and PostgreSQL indexes, a local disk store and SeaweedFS.
"""

from __future__ import annotations

import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import atdata
from atdata import SchemaError, ShardError
from atdata.local import (
    Index,
    IndexProvider,
    LocalDiskStore,
    PostgresProvider,
    RedisProvider,
    S3DataStore,
    SqliteProvider,
)


@atdata.packable
class Reading:
    values: NDArray[np.float32]
    sensor: str


def readings(n: int) -> list[Reading]:
    return [Reading(np.full(64, i, np.float32), f"s{i}") for i in range(n)]


def same_name(cls: type, name: str = "Reading") -> type:
    cls.__name__ = cls.__qualname__ = name
    return cls


@atdata.packable
class ReadingV2:
    values: NDArray[np.float32]
    sensor: str
    note: str = ""


@atdata.packable
class ReadingV3:
    values: NDArray[np.float64]
    sensor: str


same_name(ReadingV2)
same_name(ReadingV3)


@pytest.fixture(autouse=True)
def atdata_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ATDATA_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IndexProvider]:
    if request.param == "sqlite":
        p: IndexProvider = SqliteProvider(tmp_path / "index.db")
    elif request.param == "redis":
        p = RedisProvider(request.getfixturevalue("redis_client"))
    else:
        p = PostgresProvider(request.getfixturevalue("postgres_dsn"))
    yield p
    p.close()


@pytest.fixture
def index(provider: IndexProvider, tmp_path: Path) -> Index:
    return Index(provider, data_store=LocalDiskStore(tmp_path / "store"))


# --------------------------------------------------------------------------- publish_schema


def test_publish_schema_without_version_numbers_like_the_existing_atdata(index: Index) -> None:
    first = index.publish_schema(Reading)
    assert first == "atdata://local/sampleSchema/Reading@1.0.0"
    assert index.publish_schema(Reading) == first  # fields unchanged: the same version
    assert index.publish_schema(ReadingV2) == "atdata://local/sampleSchema/Reading@1.0.1"
    assert index.publish_schema(ReadingV2).endswith("@1.0.1")
    assert index.publish_schema(ReadingV3).endswith("@1.0.2")  # a dtype change is a change
    # back to the first fields: they differ from the latest, so a new version
    assert index.publish_schema(Reading).endswith("@1.0.3")
    versions = {s["version"]: [f["name"] for f in s["fields"]] for s in index.list_schemas()}
    assert versions == {
        "1.0.0": ["values", "sensor"],
        "1.0.1": ["values", "sensor", "note"],
        "1.0.2": ["values", "sensor"],
        "1.0.3": ["values", "sensor"],
    }
    assert index.get_schema("atdata://local/sampleSchema/Reading")["version"] == "1.0.3"
    Decoded = index.decode_schema("atdata://local/sampleSchema/Reading@1.0.1")
    assert Decoded.from_bytes(ReadingV2(np.zeros(2, np.float32), "a", "n").packed).note == "n"


def test_publish_schema_next_version_follows_the_latest(index: Index) -> None:
    index.publish_schema(Reading, version="2.3.9")
    index.publish_schema(ReadingV3, version="2.4.0-rc1")  # a pre-release is latest
    assert index.publish_schema(ReadingV3) == "atdata://local/sampleSchema/Reading@2.4.0-rc1"
    assert index.publish_schema(ReadingV2) == "atdata://local/sampleSchema/Reading@2.4.0"
    assert index.publish_schema(Reading).endswith("@2.4.1")
    # an explicit version keeps its rules: immutable
    with pytest.raises(SchemaError, match="already published with other fields"):
        index.publish_schema(ReadingV2, version="2.3.9")


def test_concurrent_publishers_get_distinct_versions(index: Index) -> None:
    types = []
    for i in range(6):
        cls = atdata.packable(
            type("Reading", (), {"__annotations__": {f"f{i}": int}, "__module__": __name__})
        )
        types.append(cls)
    refs: dict[int, str] = {}
    errors: list[BaseException] = []

    def publish(i: int) -> None:
        try:
            refs[i] = index.publish_schema(types[i])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(len(types))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(refs.values())) == len(types)  # nobody shares or overwrites a version
    for i, ref in refs.items():  # each version holds the fields of the type that got it
        assert [f["name"] for f in index.get_schema(ref)["fields"]] == [f"f{i}"]


# --------------------------------------------------------------------------- insert_dataset re-sharding


def members(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]


def check_resharded(
    entry: Any, src: atdata.Dataset[Any], index: Index, *, maxcount: int | None, maxsize: int | None
) -> list[int]:
    """Every sample kept (same key, same bytes, same order); shard limits held; returns counts."""
    original = [m for s in src.list_shards() for m in members(Path(s))]
    ds = index.dataset_for(entry)  # verified against the recorded sizes and SHA-256
    counts = list(ds.sample_counts())
    assert sum(counts) == len(original)
    assert [s.sensor for s in ds] == [f"s{i}" for i in range(len(original))]
    keys = [k for s in ds.list_shards() for k in ds.shard_index(s).keys]
    assert keys == [name.removesuffix(".msgpack") for name, _ in original]
    if maxcount is not None:
        assert all(c <= maxcount for c in counts)
    if maxsize is not None:
        assert all(s.size <= maxsize for s in entry.shards)
    assert all(s.size is not None and s.sha256 is not None for s in entry.shards)
    return counts


def test_insert_dataset_reshards_on_local_disk(index: Index, tmp_path: Path) -> None:
    src = atdata.write_samples(readings(50), tmp_path / "src" / "r.tar", maxcount=20)  # 20+20+10
    entry = index.insert_dataset(src, name="by-count", maxcount=7)
    assert check_resharded(entry, src, index, maxcount=7, maxsize=None) == [7] * 7 + [1]
    assert all(Path(u).is_relative_to(tmp_path / "store" / "by-count") for u in entry.data_urls)

    # the new shards hold the very members of the old ones: same names, same bytes, same order
    original = [m for s in src.list_shards() for m in members(Path(s))]
    assert [m for u in entry.data_urls for m in members(Path(u))] == original

    # a sample is a 512-byte header and a 512-byte payload; a closed tar is a multiple of
    # 10240 bytes with a 1024-byte end, so a 20480-byte shard holds at most 19 samples
    entry = index.insert_dataset(src, name="by-size", maxsize=20480)
    counts = check_resharded(entry, src, index, maxcount=None, maxsize=20480)
    assert counts == [19, 19, 12]

    both = index.insert_dataset(src, name="both", maxcount=3, maxsize=1 << 20)
    assert check_resharded(both, src, index, maxcount=3, maxsize=1 << 20)[0] == 3
    # without limits the shards are copied byte for byte, as before
    plain = index.insert_dataset(src, name="plain")
    assert [s.size for s in plain.shards] == [Path(s).stat().st_size for s in src.list_shards()]


def test_insert_dataset_reshard_failure_leaves_nothing(
    index: Index, tmp_path: Path, provider: IndexProvider
) -> None:
    src_dir = tmp_path / "src"
    good = atdata.write_samples(readings(12), src_dir / "a.tar")
    broken = src_dir / "b.tar"
    data = Path(good.list_shards()[0]).read_bytes()
    broken.write_bytes(data[: len(data) // 2])  # a truncated second shard
    ds = atdata.Dataset[Reading]([good.list_shards()[0], str(broken)])
    with pytest.raises(ShardError, match=r"b\.tar"):
        index.insert_dataset(ds, name="broken", maxcount=5)
    with pytest.raises(KeyError):
        index.get_dataset("broken")
    store = tmp_path / "store"
    assert not store.exists() or [p for p in store.rglob("*") if p.is_file()] == []
    with pytest.raises(ValueError, match="maxcount"):
        index.insert_dataset(good, name="zero", maxcount=0)


@pytest.mark.s3
def test_insert_dataset_reshards_into_seaweedfs(
    tmp_path: Path, s3_env: dict[str, str], s3_client: Any, s3_bucket: str
) -> None:
    index = Index(path=tmp_path / "i.db", data_store=S3DataStore(s3_env, bucket=s3_bucket))
    src = atdata.write_samples(readings(30), tmp_path / "src" / "r.tar", maxcount=30)
    entry = index.insert_dataset(src, name="readings-s3", maxcount=8, maxsize=1 << 20)
    assert all(u.startswith(f"s3://{s3_bucket}/readings-s3/") for u in entry.data_urls)
    assert check_resharded(entry, src, index, maxcount=8, maxsize=1 << 20) == [8, 8, 8, 6]
    listed = s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert sorted(f"s3://{s3_bucket}/{o['Key']}" for o in listed) == sorted(entry.data_urls)
    assert {o["Size"] for o in listed} == {s.size for s in entry.shards}

    # and back from the bucket (streamed, not downloaded first) into a local store, re-sharded
    local = Index(path=tmp_path / "j.db", data_store=LocalDiskStore(tmp_path / "local"))
    remote = atdata.Dataset[Reading](entry.data_urls, credentials=s3_env, cache=False)
    back = local.insert_dataset(remote, name="back", maxcount=16)
    assert [s.size for s in back.shards] and len(back.data_urls) == 2
    assert [r.sensor for r in local.dataset_for(back)] == [f"s{i}" for i in range(30)]

    # a failure part-way removes every shard already uploaded, and indexes nothing
    bad = tmp_path / "src" / "bad.tar"
    bad.write_bytes(b"\x00" * 100 + b"not a tar" * 100)
    ds = atdata.Dataset[Reading]([src.list_shards()[0], str(bad)])
    with pytest.raises(ShardError):
        index.insert_dataset(ds, name="bad", maxcount=4)
    after = s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert sorted(o["Key"] for o in after) == sorted(o["Key"] for o in listed)
    with pytest.raises(KeyError):
        index.get_dataset("bad")
