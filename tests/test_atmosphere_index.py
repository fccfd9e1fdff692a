"""``AtmosphereIndex`` against the real local PDS: the AbstractIndex contract, blob and URL
publishing, listing with URIs, reading other accounts, ``load_dataset`` and seed-era records."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import atdata
from atdata.atmosphere import (
    AtmosphereClient,
    AtmosphereIndex,
    AtmosphereIndexEntry,
    DatasetLoader,
    DatasetPublisher,
    InvalidRecordError,
    PDSBlobStore,
    PrivateURLError,
    PrivateURLWarning,
    SchemaLoader,
)
from atdata.atmosphere.resolve import find_dataset, get_dataset_entry
from atdata.errors import ShardError
from atdata.local import LocalDiskStore
from atdata.protocols import IndexEntry
from helpers import private_atdata_home  # noqa: F401 - autouse fixture

SCHEMA = "ac.foundation.dataset.sampleSchema"
RECORD = "ac.foundation.dataset.record"


@atdata.packable
class Feature:
    features: NDArray[np.float32]
    label: int


def write_features(path: Path, n: int, start: int = 0) -> list[Feature]:
    rng = np.random.default_rng(start)
    samples = [
        Feature(features=rng.standard_normal(16).astype(np.float32), label=i)
        for i in range(start, start + n)
    ]
    with atdata.ShardWriter(str(path)) as w:
        for s in samples:
            w.write(s, key=f"{s.label:06d}")
    return samples


@pytest.fixture
def shards(tmp_path: Path) -> tuple[list[Path], list[Feature]]:
    paths, samples = [], []
    for i in range(3):
        path = tmp_path / f"features-{i:06d}.tar"
        samples += write_features(path, 40, start=40 * i)
        paths.append(path)
    return paths, samples


def same(a: list[Feature], b: list[Any]) -> bool:
    return [s.label for s in a] == [s.label for s in b] and all(
        np.array_equal(x.features, y.features) for x, y in zip(a, b, strict=True)
    )


def test_blob_index_round_trip(
    pds_client: AtmosphereClient, shards: tuple[list[Path], list[Feature]]
) -> None:
    paths, samples = shards
    store = PDSBlobStore(pds_client)
    index = AtmosphereIndex(pds_client, data_store=store)
    assert index.data_store is store
    schema_uri = index.publish_schema(Feature, version="1.0.0", description="features")
    assert isinstance(schema_uri, str) and schema_uri.startswith(f"at://{pds_client.did}/{SCHEMA}/")
    assert index.publish_schema(Feature, version="1.0.0") == schema_uri  # identical: reused

    dataset = atdata.Dataset[Feature](str(paths[0].parent / "features-{000000..000002}.tar"))
    entry = index.insert_dataset(
        dataset,
        name="features",
        schema_ref=schema_uri,
        description="three shards",
        tags=["features"],
        license="CC-BY-4.0",
        metadata={"origin": "test", "n": 120},
    )
    assert isinstance(entry, AtmosphereIndexEntry) and isinstance(entry, IndexEntry)
    assert entry.uri.startswith(f"at://{pds_client.did}/{RECORD}/") and entry.cid
    assert entry.name == "features" and entry.schema_ref == schema_uri
    assert entry.storage_type == "blobs" and len(entry.data_urls) == 3
    assert all(u.startswith(f"at://{pds_client.did}/blob/bafkrei") for u in entry.data_urls)
    assert entry.metadata == {"origin": "test", "n": 120}
    assert entry.tags == ["features"] and entry.license == "CC-BY-4.0"
    assert entry.size == {
        "samples": 120,
        "bytes": sum(p.stat().st_size for p in paths),
        "shards": 3,
    }

    # shards are retained byte-identical: each blob's CID is the SHA-256 of the shard file
    for url, path in zip(entry.data_urls, paths, strict=True):
        did, cid = url[len("at://") :].split("/blob/")
        assert pds_client.get_blob(did, cid) == path.read_bytes()
    for shard, path in zip(entry.shards, paths, strict=True):
        assert shard.size == path.stat().st_size

    # read back typed: through the store's source, the index, and a decoded type
    assert same(
        samples, list(atdata.Dataset[Feature](store.create_source(entry.data_urls)).ordered())
    )
    assert same(samples, list(index.dataset_for(entry, Feature).ordered()))
    decoded = list(index.dataset_for(entry.uri).ordered())
    assert type(decoded[0]).__name__ == "Feature" and type(decoded[0]) is not Feature
    assert same(samples, decoded)

    assert index.get_dataset(entry.uri) == entry
    assert index.get_dataset("features").uri == entry.uri  # by name, in our repository
    assert [e.uri for e in index.list_datasets()] == [entry.uri]
    assert [e.uri for e in index.datasets] == [entry.uri]
    assert [s.uri for s in index.list_schemas()] == [schema_uri]
    assert index.get_schema(schema_uri)["name"] == "Feature"
    with pytest.raises(KeyError, match="no dataset named 'nope'"):
        index.get_dataset("nope")


def test_insert_without_schema_ref_publishes_the_type(
    pds_client: AtmosphereClient, shards: tuple[list[Path], list[Feature]]
) -> None:
    paths, _ = shards
    index = AtmosphereIndex(pds_client, data_store=PDSBlobStore(pds_client))
    entry = index.insert_dataset(atdata.Dataset[Feature](str(paths[1])), name="auto")
    schema = index.get_schema(entry.schema_ref)
    assert schema["module"] == f"{__name__}.Feature" and schema["version"] == "1.0.0"
    again = index.insert_dataset(atdata.Dataset[Feature](str(paths[2])), name="auto-2")
    assert again.schema_ref == entry.schema_ref  # the same schema, not a copy
    with pytest.raises(ValueError, match="schema_ref"):
        index.insert_dataset(atdata.Dataset(str(paths[0])), name="untyped")


def test_external_urls_are_checked_before_publishing(
    pds_client: AtmosphereClient, shards: tuple[list[Path], list[Feature]]
) -> None:
    paths, samples = shards
    index = AtmosphereIndex(pds_client)
    assert index.data_store is None
    schema_uri = index.publish_schema(Feature)

    public = atdata.Dataset[Feature]("https://data.example.org/features-{000000..000004}.tar")
    entry = index.insert_dataset(public, name="public", schema_ref=schema_uri, tags=["web"])
    assert entry.storage_type == "external"
    assert entry.data_urls == [f"https://data.example.org/features-{i:06d}.tar" for i in range(5)]

    private = [
        atdata.Dataset[Feature](str(paths[0])),
        atdata.Dataset[Feature](f"file://{paths[0]}"),
        atdata.Dataset[Feature]("http://localhost:9000/bucket/d.tar"),
        atdata.Dataset[Feature]("http://127.0.0.1:8080/d.tar"),
        atdata.Dataset[Feature]("https://10.1.2.3/d.tar"),
        atdata.Dataset[Feature]("http://[::1]/d.tar"),
        atdata.Dataset[Feature]("http://minio:9000/d.tar"),
        atdata.Dataset[Feature]("http://nas.local/d.tar"),
        # forms the system resolver reads as private addresses
        atdata.Dataset[Feature]("http://127.1/d.tar"),
        atdata.Dataset[Feature]("http://0x7f.0.0.1/d.tar"),
        atdata.Dataset[Feature]("http://2130706433/d.tar"),
        atdata.Dataset[Feature]("http://localhost./d.tar"),
        atdata.Dataset[Feature]("http://169.254.169.254./latest/d.tar"),
        atdata.Dataset[Feature]("http://[::ffff:127.0.0.1]/d.tar"),
    ]
    strict = AtmosphereIndex(pds_client, require_public_urls=True)
    for ds in private:
        with pytest.raises(PrivateURLError, match="others likely cannot read"):
            strict.insert_dataset(ds, name="private", schema_ref=schema_uri)
    assert [e.name for e in index.list_datasets()] == ["public"]

    # by default a local path is published as a file:// URI, with a warning naming it
    with pytest.warns(PrivateURLWarning, match="local file path"):
        local = index.insert_dataset(
            atdata.Dataset[Feature](str(paths[0])), name="local", schema_ref=schema_uri
        )
    assert local.data_urls == [f"file://{paths[0].resolve()}"]
    # a reader opens a record's local path only when told to
    with pytest.raises(PrivateURLError, match="local file path"):
        index.dataset_for(local)
    allowed = index.dataset_for(local, allow_private_urls=True)
    assert same(samples[:40], list(allowed.ordered()))


def test_other_data_store_urls_and_checksums(
    pds_client: AtmosphereClient, shards: tuple[list[Path], list[Feature]], tmp_path: Path
) -> None:
    paths, samples = shards
    store = LocalDiskStore(tmp_path / "store")
    index = AtmosphereIndex(pds_client, data_store=store, allow_private_urls=True)
    schema_uri = index.publish_schema(Feature)
    dataset = atdata.Dataset[Feature]([str(p) for p in paths])
    with pytest.raises(PrivateURLError):
        index.insert_dataset(dataset, name="disk", schema_ref=schema_uri, require_public_urls=True)
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("*.tar"))
    with pytest.warns(PrivateURLWarning):
        entry = index.insert_dataset(
            dataset, name="disk", schema_ref=schema_uri, prefix="promoted/disk"
        )
    assert len(entry.data_urls) == 3 and all("promoted/disk" in u for u in entry.data_urls)
    digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    assert entry.record["storage"]["sha256"] == digests
    assert [s.sha256 for s in entry.shards] == digests
    assert same(samples, list(index.dataset_for(entry).ordered()))

    # a shard that changed after publishing is caught by its recorded SHA-256
    stored = Path(entry.data_urls[1].removeprefix("file://"))
    data = bytearray(stored.read_bytes())
    data[-2000] ^= 0xFF
    stored.write_bytes(bytes(data))
    with pytest.raises(ShardError, match="SHA-256"):
        list(index.dataset_for(entry).ordered())


def test_listing_every_page_with_uris(pds_client: AtmosphereClient) -> None:
    index = AtmosphereIndex(pds_client)
    schema_uri = index.publish_schema(Feature)
    uris = DatasetPublisher(pds_client).publish_many(
        {"urls": f"https://x.org/{i}.tar", "schema_uri": schema_uri, "name": f"d{i}"}
        for i in range(260)
    )
    entries = index.list_datasets()
    assert len(entries) == 260 and {e.uri for e in entries} == {str(u) for u in uris}
    assert all(e.uri and e.cid for e in entries)  # no more `uri == ""` entries
    assert index.get_dataset(str(uris[7])).name == "d7"
    assert len(DatasetLoader(pds_client).list_all(limit=150)) == 150


def test_newest_of_several_with_one_name(pds_client: AtmosphereClient) -> None:
    index = AtmosphereIndex(pds_client)
    schema_uri = index.publish_schema(Feature)
    publisher = DatasetPublisher(pds_client)
    publisher.publish_with_urls("https://x.org/v1.tar", schema_uri, name="same")
    newer = publisher.publish_with_urls("https://x.org/v2.tar", schema_uri, name="same")
    assert index.get_dataset("same").uri == str(newer)


def test_other_accounts_and_load_dataset(
    pds_account_factory: Any,
    shards: tuple[list[Path], list[Feature]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    paths, samples = shards
    alice, bob = pds_account_factory(), pds_account_factory()
    client = AtmosphereClient(alice["pds_url"], plc_url=alice["plc_url"])
    client.login(alice["handle"], alice["password"])
    index = AtmosphereIndex(client, data_store=PDSBlobStore(client))
    entry = index.insert_dataset(
        atdata.Dataset[Feature]([str(p) for p in paths]), name="shared-features"
    )

    # bob reads alice's records and blobs through her DID
    reader = AtmosphereClient(bob["pds_url"], plc_url=bob["plc_url"])
    reader.login(bob["handle"], bob["password"])
    theirs = AtmosphereIndex(reader)
    assert [e.uri for e in theirs.list_datasets(repo=alice["handle"])] == [entry.uri]
    assert theirs.list_datasets() == []  # bob's own repository is empty
    assert same(samples, list(theirs.dataset_for(entry.uri).ordered()))
    mixed = AtmosphereIndex(reader, data_store=PDSBlobStore(client))  # alice's store, bob's index
    with pytest.raises(ValueError, match="a record keeps only its own repository's blobs"):
        mixed.insert_dataset(
            atdata.Dataset[Feature](str(paths[0])), name="mixed", schema_ref=entry.schema_ref
        )
    assert theirs.list_datasets() == []

    # anonymous reads, as load_dataset does them
    monkeypatch.setenv("ATDATA_PLC_URL", alice["plc_url"])
    monkeypatch.setenv("ATDATA_PDS_URL", alice["pds_url"])
    idx, found = find_dataset(alice["handle"], "shared-features")
    assert found.uri == entry.uri and not idx.client.is_authenticated
    _, by_uri = get_dataset_entry(entry.uri)
    assert by_uri == found
    with pytest.raises(KeyError, match="no dataset named 'missing'"):
        find_dataset(alice["did"], "missing")

    ds = atdata.load_dataset(f"@{alice['handle']}/shared-features", split="train")
    assert same(samples, list(ds.ordered()))
    ds = atdata.load_dataset(f"@{alice['did']}/shared-features", Feature, split="train")
    assert same(samples, list(ds.ordered()))
    ds = atdata.load_dataset(entry.uri, split="train")
    assert same(samples, list(ds.ordered()))
    ds = atdata.load_dataset(entry.uri, entry.schema_ref, split="train")
    assert [s.label for s in ds.ordered()] == list(range(120))
    with pytest.raises(TypeError, match="AtmosphereIndex"):
        find_dataset(alice["handle"], "shared-features", index=object())
    client.close()
    reader.close()


def test_seed_era_records_are_read(pds_client: AtmosphereClient) -> None:
    """Records shaped as the seed-era atdata wrote them (inventory 2.8.2 and 2.8.3)."""
    prefix = "ac.foundation.dataset.schemaType"
    schema_uri = pds_client.create_record(
        SCHEMA,
        {
            "$type": SCHEMA,
            "name": "ImageSample",
            "version": "1.0.0",
            "fields": [
                {
                    "name": "image",
                    "fieldType": {"$type": f"{prefix}#ndarray", "dtype": "float32"},
                    "optional": False,
                },
                {
                    "name": "label",
                    "fieldType": {"$type": f"{prefix}#primitive", "primitive": "str"},
                    "optional": False,
                },
                {
                    "name": "tags",
                    "fieldType": {
                        "$type": f"{prefix}#array",
                        "items": {"$type": f"{prefix}#primitive", "primitive": "str"},
                    },
                    "optional": True,
                    "description": "free tags",
                },
            ],
            "createdAt": "2026-01-26T12:00:00.123456+00:00",
            "description": "seed era",
        },
    )
    import msgpack

    dataset_uri = pds_client.create_record(
        RECORD,
        {
            "$type": RECORD,
            "name": "Seed Dataset",
            "schemaRef": str(schema_uri),
            "storage": {
                "$type": "ac.foundation.dataset.storageExternal",
                "urls": ["https://example.org/seed-{000000..000001}.tar"],
            },
            "createdAt": "2026-01-26T12:00:00.123456+00:00",
            "tags": ["seed"],
            "metadata": msgpack.packb({"k": "v"}),
        },
    )
    index = AtmosphereIndex(pds_client)
    entry = index.get_dataset(dataset_uri)
    assert entry.data_urls == ["https://example.org/seed-{000000..000001}.tar"]
    assert entry.metadata == {"k": "v"} and entry.schema_ref == str(schema_uri)
    Image = index.decode_schema(entry.schema_ref)
    sample = Image(image=np.zeros((2, 2), np.float64), label="x", tags=None)
    back = Image.from_bytes(sample.packed)  # seed dtypes are unreliable: any dtype is accepted
    assert back.image.dtype == np.float64 and back.label == "x"
    assert SchemaLoader(pds_client).find("anything.ImageSample", "1.0.0") is None


def test_records_keep_the_seed_era_shape(
    pds_client: AtmosphereClient, shards: tuple[list[Path], list[Feature]]
) -> None:
    """What seed-era readers rely on: the record keys and storage types they match on."""
    paths, _ = shards
    index = AtmosphereIndex(pds_client, data_store=PDSBlobStore(pds_client))
    entry = index.insert_dataset(atdata.Dataset[Feature](str(paths[0])), name="compat")
    record = dict(entry.record)
    assert {"$type", "name", "schemaRef", "storage", "createdAt"} <= set(record)
    assert "storageBlobs" in record["storage"]["$type"]
    (blob,) = record["storage"]["blobs"]
    assert blob["$type"] == "blob" and set(blob) == {"$type", "ref", "mimeType", "size"}
    schema = index.get_schema(entry.schema_ref)
    assert {"$type", "name", "version", "fields", "createdAt"} <= set(schema)
    for field in schema["fields"]:
        assert field["fieldType"]["$type"].startswith("ac.foundation.dataset.schemaType#")
        assert isinstance(field["optional"], bool)


def test_foreign_dataset_records_fail_naming_the_uri(pds_client: AtmosphereClient) -> None:
    index = AtmosphereIndex(pds_client)
    schema_uri = index.publish_schema(Feature)
    good = DatasetPublisher(pds_client).publish_with_urls(
        "https://x.org/a.tar", schema_uri, name="ok"
    )
    odd = pds_client.create_record(
        RECORD,
        {
            "$type": RECORD,
            "name": "odd",
            "schemaRef": schema_uri,
            "storage": {"$type": "com.example.storageTape", "reel": 7},
            "createdAt": "2026-01-01T00:00:00Z",
        },
    )
    broken = pds_client.create_record(
        RECORD, {"$type": RECORD, "name": 5, "createdAt": "2026"}, validate=False
    )
    with pytest.raises(InvalidRecordError, match=rf"{odd}: unknown storage type 'com\.example"):
        index.get_dataset(odd)
    with pytest.raises(InvalidRecordError, match=rf"{broken}: not a valid"):
        index.get_dataset(broken)
    with pytest.warns(UserWarning, match=str(broken)):
        listed = DatasetLoader(pds_client).list_all()
    assert {r.uri for r in listed} == {str(good), str(odd)}
    bad_meta = pds_client.create_record(
        RECORD,
        {
            "$type": RECORD,
            "name": "bad metadata",
            "schemaRef": schema_uri,
            "storage": {
                "$type": "ac.foundation.dataset.storageExternal",
                "urls": ["https://x.org/a"],
            },
            "createdAt": "2026-01-01T00:00:00Z",
            "metadata": b"\xc1",
        },
    )
    with pytest.raises(InvalidRecordError, match=rf"{bad_meta}: metadata is not msgpack"):
        _ = index.get_dataset(bad_meta).metadata
