"""One contract, three real back ends: the local index on SQLite, Redis and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from numpy.typing import NDArray

import atdata
from atdata import AtdataError, SchemaError
from atdata.cid import generate_cid
from atdata.local import (
    EntryExistsError,
    Index,
    IndexBackendError,
    IndexProvider,
    LocalDatasetEntry,
    LocalDiskStore,
    PostgresProvider,
    RedisProvider,
    SqliteProvider,
)
from atdata.protocols import AbstractIndex, IndexEntry
from atdata.stack import free_port


@atdata.packable
class Reading:
    values: NDArray[np.float32]
    sensor: str
    note: str | None = None


def readings(n: int, offset: int = 0) -> list[Reading]:
    rng = np.random.default_rng(offset)
    return [Reading(rng.random(4, dtype=np.float32), f"s{(i + offset) % 3}") for i in range(n)]


@pytest.fixture(autouse=True)
def atdata_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the default index, store and shard cache out of the developer's home."""
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


@pytest.fixture
def dataset(tmp_path: Path) -> atdata.Dataset[Reading]:
    return atdata.write_samples(readings(50), tmp_path / "src" / "r.tar", maxcount=20)


def entry(name: str, urls: list[str] | None = None, **kw: Any) -> LocalDatasetEntry:
    return LocalDatasetEntry(
        name, "atdata://local/sampleSchema/Reading@1.0.0", urls or [f"/d/{name}.tar"], **kw
    )


def corrupt_schema(provider: IndexProvider, name: str, version: str) -> None:
    if isinstance(provider, RedisProvider):
        provider.client.set(f"LocalSchema:{name}@{version}", b"{not json")
        return
    with provider._transaction() as cur:  # type: ignore[attr-defined]
        cur.execute(provider._sql("UPDATE schemas SET schema_json = ?"), ("{not json",))  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- protocols


def test_implements_the_protocols(index: Index, dataset: atdata.Dataset[Reading]) -> None:
    assert atdata.local.LocalIndex is Index
    checked: AbstractIndex = index  # a static check; the runtime one follows
    assert all(
        callable(getattr(checked, m))
        for m in ("insert_dataset", "get_dataset", "publish_schema", "decode_schema")
    )
    e = index.insert_dataset(dataset, name="r")
    assert isinstance(e, IndexEntry)


# --------------------------------------------------------------------------- schemas


def test_empty_index(index: Index) -> None:
    assert index.list_entries() == [] and index.list_datasets() == [] and index.list_schemas() == []
    with pytest.raises(KeyError):
        index.get_entry_by_name("nope")
    with pytest.raises(KeyError):
        index.get_entry("bafyreinope")
    with pytest.raises(KeyError):
        index.get_dataset("nope")
    with pytest.raises(KeyError):
        index.get_schema("atdata://local/sampleSchema/Nope@1.0.0")


def test_publish_get_list_decode_schema(index: Index) -> None:
    ref = index.publish_schema(Reading, version="1.0.0", description="sensor readings")
    assert ref == "atdata://local/sampleSchema/Reading@1.0.0"
    record = index.get_schema(ref)
    assert record["$ref"] == ref and record["description"] == "sensor readings"
    assert record["sampleType"] == f"{__name__}.Reading"
    assert [f["name"] for f in record["fields"]] == ["values", "sensor", "note"]
    assert [s["$ref"] for s in index.schemas] == [ref]
    assert index.list_schemas()[0]["fields"] == record["fields"]
    Decoded = index.decode_schema(ref)
    sample = readings(1)[0]
    assert Decoded.from_bytes(sample.packed).sensor == sample.sensor
    # legacy seed-era refs name module.Class
    assert index.get_schema(f"local://schemas/{__name__}.Reading@1.0.0")["$ref"] == ref
    with pytest.raises(ValueError, match="not a local schema reference"):
        index.get_schema("Reading@1.0.0")


def test_schema_versions_are_immutable(index: Index) -> None:
    ref = index.publish_schema(Reading, version="1.0.0")
    assert index.publish_schema(Reading, version="1.0.0") == ref  # same fields: a no-op

    @atdata.packable
    class Reading2:
        values: NDArray[np.float64]
        sensor: str

    Reading2.__name__ = "Reading"  # the same schema name, other fields
    with pytest.raises(SchemaError, match="already published with other fields"):
        index.publish_schema(Reading2, version="1.0.0")
    assert index.publish_schema(Reading2, version="2.0.0").endswith("Reading@2.0.0")
    assert sorted(s["version"] for s in index.list_schemas()) == ["1.0.0", "2.0.0"]
    assert index.get_schema(ref)["fields"][0]["fieldType"]["dtype"] == "float32"


def test_corrupt_schema_record_is_named(index: Index, provider: IndexProvider) -> None:
    index.publish_schema(Reading, version="1.0.0")
    corrupt_schema(provider, "Reading", "1.0.0")
    with pytest.raises(SchemaError, match=r"Reading@1\.0\.0.*not JSON"):
        index.decode_schema("atdata://local/sampleSchema/Reading@1.0.0")


# --------------------------------------------------------------------------- datasets


def test_insert_dataset(index: Index, dataset: atdata.Dataset[Reading], tmp_path: Path) -> None:
    e = index.insert_dataset(
        dataset, name="readings", prefix="team/readings", metadata={"split": "train"}
    )
    assert e.name == "readings"
    assert e.schema_ref == "atdata://local/sampleSchema/Reading@1.0.0"  # published on first use
    assert len(e.data_urls) == len(dataset.list_shards()) == 3
    assert all(u.startswith(str(tmp_path / "store" / "team" / "readings")) for u in e.data_urls)
    for src, info in zip(dataset.list_shards(), e.shards, strict=True):
        data = Path(src).read_bytes()
        assert Path(info.url).read_bytes() == data  # a byte copy: keys and bytes kept
        assert (info.size, info.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert e.cid == generate_cid(e.content()) and e.content()["name"] == "readings"
    assert e.metadata == {"split": "train"}
    assert index.get_entry_by_name("readings") == e
    assert index.get_entry(e.cid) == e
    assert index.get_dataset("readings") == e and index.get_dataset(e.cid) == e
    back = index.dataset_for("readings")
    assert [s.sensor for s in back] == [s.sensor for s in dataset]
    assert back.sample_type.__name__ == "Reading"


def test_insert_uses_the_published_version_with_the_same_fields(
    index: Index, dataset: atdata.Dataset[Reading]
) -> None:
    index.publish_schema(Reading, version="3.1.0")
    assert index.insert_dataset(dataset, name="r").schema_ref.endswith("Reading@3.1.0")
    with pytest.raises(KeyError):
        index.insert_dataset(
            dataset, name="r2", schema_ref="atdata://local/sampleSchema/Missing@1.0.0"
        )
    with pytest.raises(ValueError, match="schema_ref"):
        index.insert_dataset(atdata.Dataset(dataset.list_shards()), name="untyped")


def test_existing_name_is_an_error_unless_overwrite(
    index: Index, dataset: atdata.Dataset[Reading], tmp_path: Path
) -> None:
    first = index.insert_dataset(dataset, name="readings")
    files = sorted((tmp_path / "store").rglob("*.tar"))
    with pytest.raises(EntryExistsError, match="'readings' already exists"):
        index.insert_dataset(dataset, name="readings")
    assert sorted((tmp_path / "store").rglob("*.tar")) == files  # refused before copying
    assert index.get_entry_by_name("readings") == first
    second = index.insert_dataset(dataset, name="readings", overwrite=True)
    assert second.cid != first.cid
    assert index.get_entry_by_name("readings") == second
    with pytest.raises(KeyError):
        index.get_entry(first.cid)
    assert [x.name for x in index.list_entries()] == ["readings"]


def test_unstorable_metadata_is_refused_before_copying(
    index: Index, dataset: atdata.Dataset[Reading], tmp_path: Path
) -> None:
    for bad in ({"pair": (1, 2)}, {"nan": float("nan")}, ["not", "a", "dict"]):
        with pytest.raises(ValueError, match="metadata"):
            index.insert_dataset(dataset, name="r", metadata=bad)  # type: ignore[arg-type]
    assert not (tmp_path / "store").exists()
    assert index.list_entries() == []


def test_add_entry_indexes_every_shard(index: Index, dataset: atdata.Dataset[Reading]) -> None:
    e = index.add_entry(dataset, name="in-place", metadata={"n": 50})
    assert e.data_urls == dataset.list_shards() and e.shards == ()
    assert index.add_entry(dataset, name="in-place", metadata={"n": 50}) == e  # identical: a no-op
    assert {e, index.get_entry(e.cid)} == {e}  # hashable, by content
    with pytest.raises(EntryExistsError):
        index.add_entry(dataset.list_shards()[:1], name="in-place", schema_ref=e.schema_ref)
    twin = index.add_entry(dataset, name="twin", metadata={"n": 50})
    assert twin.cid != e.cid  # the name is part of the content address
    assert [s.sensor for s in index.dataset_for("twin")] == [s.sensor for s in dataset]


def test_metadata_round_trip(index: Index) -> None:
    meta = {"tags": ["a", "b"], "nested": {"x": 1.5, "ok": True, "none": None}, "raw": b"\x00\x01"}
    index.provider.put_entry(entry("m", metadata=meta))
    assert index.get_entry_by_name("m").metadata == meta


def test_listing_is_ordered_and_paged(index: Index) -> None:
    names = [f"ds-{i:05d}" for i in range(2345)]
    index.provider.put_entries(entry(n) for n in reversed(names))
    listed = [e.name for e in index.entries]
    assert listed == names
    assert [e.name for e in index.datasets][:3] == names[:3]
    assert index.get_entry_by_name("ds-01234").data_urls == ["/d/ds-01234.tar"]


def test_bulk_put_with_a_taken_name(index: Index) -> None:
    index.provider.put_entry(entry("taken"))
    with pytest.raises(EntryExistsError):
        index.provider.put_entries([entry("fresh"), entry("taken", ["/other.tar"])])
    assert index.get_entry_by_name("taken").data_urls == ["/d/taken.tar"]
    index.provider.put_entries([entry("taken"), entry("fresh")])  # the same entries: no-ops


def test_concurrent_writers(index: Index) -> None:
    errors: list[Exception] = []

    def put(i: int) -> None:
        try:
            index.provider.put_entry(entry("contested", [f"/d/{i}.tar"]))
        except EntryExistsError as exc:
            errors.append(exc)
        index.provider.put_entry(entry(f"own-{i}"))

    threads = [threading.Thread(target=put, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 7  # exactly one writer got the name
    assert len(index.list_entries()) == 9


def test_corrupt_entry_is_named(index: Index, provider: IndexProvider) -> None:
    e = entry("broken")
    if isinstance(provider, RedisProvider):
        provider.client.hset(
            f"LocalDatasetEntry:{e.cid}", mapping={**e.to_fields(), "data_urls": b"\xc1"}
        )
        provider.client.hset("atdata:entry-cids", "broken", e.cid)
    else:
        provider.put_entry(e)
        with provider._transaction() as cur:  # type: ignore[attr-defined]
            cur.execute(provider._sql("UPDATE dataset_entries SET data_urls = ?"), (b"\xc1",))  # type: ignore[attr-defined]
    with pytest.raises(AtdataError, match="corrupt index entry"):
        index.get_entry_by_name("broken")


# --------------------------------------------------------------------------- back-end specifics


@pytest.mark.redis
def test_redis_key_layout_and_no_scans(
    redis_client: Any, tmp_path: Path, dataset: atdata.Dataset[Reading]
) -> None:
    index = Index(redis=redis_client, data_store=LocalDiskStore(tmp_path / "store"))
    e = index.insert_dataset(dataset, name="readings", metadata={"k": "v"})
    stored = redis_client.hgetall(f"LocalDatasetEntry:{e.cid}")
    assert stored[b"name"] == b"readings" and stored[b"cid"] == e.cid.encode()
    assert msgpack.unpackb(stored[b"data_urls"]) == e.data_urls
    assert msgpack.unpackb(stored[b"metadata"]) == {"k": "v"}
    schema = json.loads(redis_client.get("LocalSchema:Reading@1.0.0"))
    assert schema["name"] == "Reading" and schema["version"] == "1.0.0"
    for i in range(200):
        index.provider.put_entry(entry(f"x{i}"))

    def scans() -> int:
        return int(redis_client.info("commandstats").get("cmdstat_scan", {}).get("calls", 0))

    before = scans()
    for i in range(0, 200, 7):
        index.get_entry_by_name(f"x{i}")
    assert len(index.list_entries()) == 201 and len(index.list_schemas()) == 1
    index.get_schema("atdata://local/sampleSchema/Reading@1.0.0")
    assert scans() == before


@pytest.mark.redis
def test_redis_namespaces_are_isolated(redis_client: Any) -> None:
    a = RedisProvider(redis_client, namespace="team-a:")
    b = RedisProvider(redis_client, namespace="team-b:")
    a.put_entry(entry("shared-name"))
    b.put_entry(entry("shared-name", ["/b.tar"]))
    assert a.get_entry_by_name("shared-name").data_urls == ["/d/shared-name.tar"]
    assert b.get_entry_by_name("shared-name").data_urls == ["/b.tar"]
    assert all(k.startswith((b"team-a:", b"team-b:")) for k in redis_client.keys("*"))


def _seed_era_entry(redis_client: Any, cid: str, name: str, url: str) -> None:
    """An entry as the seed-era library writes it: the hash only, no secondary keys."""
    redis_client.hset(
        f"LocalDatasetEntry:{cid}",
        mapping={
            "name": name,
            "schema_ref": "local://schemas/m.Old@1.0.0",
            "data_urls": msgpack.packb([url]),
            "cid": cid,
        },
    )


@pytest.mark.redis
def test_redis_reads_seed_era_data_without_a_reindex(redis_client: Any) -> None:
    _seed_era_entry(redis_client, "bafyreiold", "old", "s3://b/a.tar")
    redis_client.set(
        "LocalSchema:Old@1.0.0", json.dumps({"name": "Old", "version": "1.0.0", "fields": []})
    )
    p = RedisProvider(redis_client)
    assert p.get_entry_by_name("old").data_urls == ["s3://b/a.tar"]
    assert [s["name"] for s in p.iter_schemas()] == ["Old"]
    assert Index(p).get_entry("bafyreiold").name == "old"
    assert p.reindex() == 0  # already indexed
    # written by the seed-era library while this provider is in use
    _seed_era_entry(redis_client, "bafyreilater", "later", "s3://b/later.tar")
    assert p.get_entry_by_name("later").data_urls == ["s3://b/later.tar"]
    assert [e.name for e in p.iter_entries()] == ["later", "old"]


@pytest.mark.redis
def test_redis_a_vanished_entry_does_not_block_its_name(redis_client: Any) -> None:
    p = RedisProvider(redis_client)
    first = entry("reused")
    p.put_entry(first)
    redis_client.delete(f"LocalDatasetEntry:{first.cid}")  # evicted, or removed by hand
    with pytest.raises(KeyError):
        p.get_entry_by_name("reused")
    assert [e.name for e in p.iter_entries()] == []
    second = entry("reused", ["/d/other.tar"])
    p.put_entry(second)  # no EntryExistsError: the name's entry is gone
    assert p.get_entry_by_name("reused").cid == second.cid


@pytest.mark.redis
def test_redis_a_hash_renamed_by_the_seed_era_library_frees_the_old_name(
    redis_client: Any,
) -> None:
    p = RedisProvider(redis_client)
    first = entry("first-name")
    p.put_entry(first)
    # the seed-era library indexes the same data under a second name: it rewrites the hash
    redis_client.hset(f"LocalDatasetEntry:{first.cid}", "name", "second-name")
    with pytest.raises(KeyError):
        p.get_entry_by_name("first-name")
    assert p.get_entry_by_name("second-name").cid == first.cid
    assert [e.name for e in p.iter_entries()] == ["second-name"]
    p.put_entry(entry("first-name", ["/d/new.tar"]))  # the old name is free again
    assert p.get_entry_by_name("second-name").cid == first.cid  # and that entry is untouched


@pytest.mark.redis
def test_redis_client_with_decoded_responses(redis_server: Any, redis_client: Any) -> None:
    import redis

    p = RedisProvider(redis.Redis.from_url(redis_server.url, decode_responses=True))
    p.put_entry(entry("text-client", metadata={"raw": b"\xff"}))
    assert p.get_entry_by_name("text-client").metadata == {"raw": b"\xff"}


def test_connection_failures_name_the_server(tmp_path: Path) -> None:
    port = free_port()
    with pytest.raises(IndexBackendError, match=rf"Redis index redis://127\.0\.0\.1:{port}/0"):
        Index(redis=f"redis://127.0.0.1:{port}/0")
    with pytest.raises(
        IndexBackendError,
        match=rf"PostgreSQL index postgresql://atdata@127\.0\.0\.1:{port}/db: cannot connect",
    ):
        Index(dsn=f"postgresql://atdata:secret@127.0.0.1:{port}/db")
    junk = tmp_path / "index.db"
    junk.write_bytes(b"not a database" * 100)
    with pytest.raises(IndexBackendError, match=rf"SQLite index {junk}"):
        Index(path=junk)


def test_server_lost_after_connecting() -> None:
    from servers.redis import start_redis

    server = start_redis()
    try:
        p = RedisProvider(server.url)
        p.put_entry(entry("x"))
    finally:
        server.stop()
    with pytest.raises(IndexBackendError, match=f"Redis index {server.url}: ConnectionError"):
        p.get_entry_by_name("x")


def test_postgres_lost_after_connecting() -> None:
    from servers.postgres import start_postgres

    server = start_postgres()
    try:
        p = PostgresProvider(server.url)
        p.put_entry(entry("x"))
    finally:
        server.stop()
    with pytest.raises(IndexBackendError, match="PostgreSQL index postgresql://"):
        p.get_entry_by_name("x")


def test_default_index_lives_in_atdata_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATDATA_HOME", str(tmp_path / "home"))
    index = atdata.local.LocalIndex()
    assert isinstance(index.provider, SqliteProvider)
    assert index.provider.path == tmp_path / "home" / "index.db"
    assert (
        isinstance(index.data_store, LocalDiskStore)
        and index.data_store.root == tmp_path / "home" / "data"
    )
    with pytest.raises(ValueError, match="one of"):
        Index(path=tmp_path / "a.db", dsn="postgresql://x")
