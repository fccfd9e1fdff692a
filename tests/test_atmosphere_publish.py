"""Schema, dataset and lens records and the PDS blob store, against the real local PDS.

Every test writes to a fresh account on the reference PDS started by the fixtures;
faults a healthy server cannot produce are injected by an httpx transport that
otherwise forwards every request to it.
"""

from __future__ import annotations

import logging
import sys
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgpack
import numpy as np
import pytest
from numpy.typing import NDArray

import atdata
from atdata.atmosphere import (
    AtmosphereClient,
    AtmosphereError,
    AtUri,
    BlobIntegrityError,
    BlobTooLargeError,
    CodeReference,
    DatasetLoader,
    DatasetPublisher,
    InvalidRecordError,
    LensLoader,
    LensPublisher,
    LexiconValidationError,
    PDSBlobStore,
    RecordNotFoundError,
    SchemaLoader,
    SchemaPublisher,
)
from atdata.atmosphere.schema import schema_identity, to_schema_record
from atdata.errors import SchemaError, ShardError
from helpers import private_atdata_home  # noqa: F401 - autouse fixture

SCHEMA = "ac.foundation.dataset.sampleSchema"
RECORD = "ac.foundation.dataset.record"
LENS = "ac.foundation.dataset.lens"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@atdata.packable
class Point:
    xy: NDArray[np.float32]
    name: str


@atdata.packable
class Rich:
    """A sample with every kind of field."""

    image: NDArray[np.uint8]
    label: str
    tags: list[str]
    counts: dict[str, int]
    where: Point
    note: str | None
    score: float = 0.5
    weight: int = 3


@atdata.packable
class Row:
    text: str
    index: int


def write_rows(path: Path, n: int, start: int = 0, pad: int = 0) -> list[Row]:
    rows = [Row(text=f"row {i}" + "x" * pad, index=i) for i in range(start, start + n)]
    with atdata.ShardWriter(str(path)) as w:
        for r in rows:
            w.write(r, key=f"{r.index:06d}")
    return rows


def make_rich(i: int) -> Rich:
    return Rich(
        image=np.full((2, 3), i, np.uint8),
        label=f"l{i}",
        tags=["a", "b"],
        counts={"x": i},
        where=Point(xy=np.array([i, -i], np.float32), name=f"p{i}"),
        note=None,
    )


class Injector(httpx.BaseTransport):
    """Forwards to the real server; answers queued requests with a fault instead (thread-safe)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.lock = threading.Lock()
        self.faults: list[tuple[str, Callable[[httpx.Request], httpx.Response]]] = []
        self.seen: list[str] = []

    def inject(
        self, nsid: str, fault: Callable[[httpx.Request], httpx.Response], n: int = 1
    ) -> None:
        with self.lock:
            self.faults.extend([(nsid, fault)] * n)

    def count(self, nsid: str) -> int:
        with self.lock:
            return sum(1 for p in self.seen if p.endswith("/" + nsid))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.seen.append(request.url.path)
            fault = None
            for i, (nsid, queued) in enumerate(self.faults):
                if request.url.path.endswith("/" + nsid):
                    fault = queued
                    del self.faults[i]
                    break
        if fault is not None:
            return fault(request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


@pytest.fixture
def injector() -> Iterator[Injector]:
    transport = Injector()
    yield transport
    transport.close()


def client_for(account: dict[str, str], **kwargs: Any) -> AtmosphereClient:
    client = AtmosphereClient(account["pds_url"], plc_url=account["plc_url"], **kwargs)
    client.login(account["handle"], account["password"])
    return client


def collection_uris(client: AtmosphereClient, collection: str) -> list[str]:
    return [r["uri"] for r in client.iter_records(collection)]


# --------------------------------------------------------------------------- schemas


def test_schema_record_shape_and_round_trip(pds_client: AtmosphereClient) -> None:
    uri = SchemaPublisher(pds_client).publish(Rich, version="2.1.0", metadata={"owner": "lab"})
    assert isinstance(uri, AtUri) and uri.collection == SCHEMA and uri.cid
    assert len(uri.rkey) == 13  # a TID

    record = SchemaLoader(pds_client).get(uri)
    assert record.uri == str(uri) and record.cid == uri.cid
    assert record["$type"] == SCHEMA
    assert record["name"] == "Rich"  # the class name, as seed-era atdata writes and reads it
    assert record["module"] == schema_identity(Rich) == f"{__name__}.Rich"
    assert record["version"] == "2.1.0"
    assert record["description"] == "A sample with every kind of field."
    assert record["metadata"] == {"owner": "lab"}
    by_name = {f["name"]: f for f in record["fields"]}
    assert by_name["image"]["fieldType"] == {
        "$type": "ac.foundation.dataset.schemaType#ndarray",
        "dtype": "uint8",
    }
    assert by_name["label"]["fieldType"]["$type"] == "ac.foundation.dataset.schemaType#primitive"
    assert by_name["score"]["default"] == "0.5"  # JSON text: records hold no floats
    assert by_name["weight"]["default"] == "3"
    assert by_name["note"]["optional"] is True

    Decoded = SchemaLoader(pds_client).decode(uri)
    assert Decoded is not Rich and Decoded.__name__ == "Rich"
    original = make_rich(7)
    back = Decoded.from_bytes(original.packed)
    assert back.image.dtype == np.uint8 and back.image.tolist() == original.image.tolist()
    assert back.where.name == "p7" and back.counts == {"x": 7} and back.note is None
    assert back.score == 0.5 and back.weight == 3
    assert (
        Decoded(  # defaults decoded from the JSON text
            image=original.image,
            label="x",
            tags=[],
            counts={},
            where=back.where,
            note=None,
        ).score
        == 0.5
    )


def test_schema_listing_pages_keeps_uris_and_find_deduplicates(
    pds_client: AtmosphereClient,
) -> None:
    # 230 schema records (three pages), written in applyWrites batches
    filler = [(SCHEMA, to_schema_record(Row, version=f"0.{i}.0")) for i in range(229)]
    written = pds_client.apply_writes(filler)
    publisher = SchemaPublisher(pds_client)
    target = publisher.publish(Point, version="1.0.0")
    loader = SchemaLoader(pds_client)

    everything = loader.list_all()
    assert len(everything) == 230
    assert {r.uri for r in everything} == {str(u) for u in [*written, target]}
    assert all(r.cid for r in everything)
    assert everything[0].uri == str(target)  # newest first
    assert len(loader.list_all(limit=10)) == 10 and loader.list_all(limit=0) == []

    assert loader.find(schema_identity(Point), "1.0.0") == target
    assert loader.find(schema_identity(Row), "0.3.0") == written[3]  # found on a later page
    assert loader.find(schema_identity(Point), "9.9.9") is None
    assert loader.find("elsewhere.Point", "1.0.0") is None

    # find_or_publish reuses an identical schema instead of publishing a copy ...
    assert publisher.find_or_publish(Point, version="1.0.0") == target
    assert len(loader.list_all()) == 230

    # ... but a changed type under the same identity and version gets its own record
    @atdata.packable
    class Changed:
        xy: NDArray[np.float32]
        name: str
        z: int

    Changed.__name__ = Changed.__qualname__ = "Point"  # same identity on purpose
    assert schema_identity(Changed) == schema_identity(Point)
    changed = publisher.find_or_publish(Changed, version="1.0.0")
    assert changed != target and len(loader.list_all()) == 231
    assert loader.find(schema_identity(Point), "1.0.0") == changed  # the newest


def test_schema_errors_are_clear_and_nothing_is_sent(pds_client: AtmosphereClient) -> None:
    publisher = SchemaPublisher(pds_client)
    with pytest.raises(LexiconValidationError, match=r"metadata\.ratio: floats are not allowed"):
        publisher.publish(Point, version="1.0.0", metadata={"ratio": 0.5})
    with pytest.raises(SchemaError, match="not a semantic version"):
        publisher.publish(Point, version="one")
    with pytest.raises(TypeError, match="not a @packable"):
        publisher.publish(dict, version="1.0.0")
    assert collection_uris(pds_client, SCHEMA) == []


def test_foreign_schema_records_are_refused_naming_the_uri(pds_client: AtmosphereClient) -> None:
    good = SchemaPublisher(pds_client).publish(Point, version="1.0.0")
    # Records the lexicon rejects, written raw (validate=False) as another client could.
    bad = pds_client.create_record(
        SCHEMA,
        {"$type": SCHEMA, "name": "X", "version": "1", "fields": "nope", "createdAt": "2026"},
        validate=False,
    )
    loader = SchemaLoader(pds_client)
    with pytest.raises(InvalidRecordError, match=str(bad).replace(".", r"\.")) as info:
        loader.get(bad)
    assert "fields" in str(info.value)
    with pytest.warns(UserWarning, match=f"skipped: {bad}"):
        listed = loader.list_all()
    assert [r.uri for r in listed] == [str(good)]

    # Valid records whose names would be code: decoding refuses them, runs nothing.
    hostile = pds_client.create_record(
        SCHEMA,
        {
            "$type": SCHEMA,
            "name": "Evil",
            "version": "1.0.0",
            "module": "os.system('touch pwned');x.Evil",
            "createdAt": "2026-01-01T00:00:00Z",
            "fields": [
                {
                    "name": "__import__('os').system('touch pwned')",
                    "fieldType": {
                        "$type": "ac.foundation.dataset.schemaType#primitive",
                        "primitive": "str",
                    },
                }
            ],
        },
    )
    with pytest.raises(SchemaError, match=str(hostile).replace(".", r"\.")):
        loader.decode(hostile)
    assert not Path("pwned").exists()
    with pytest.raises(InvalidRecordError, match=r"not ac\.foundation\.dataset\.sampleSchema"):
        loader.get(f"at://{pds_client.did}/{RECORD}/3kabcdefghij2")
    with pytest.raises(RecordNotFoundError):
        loader.get(f"at://{pds_client.did}/{SCHEMA}/3kabcdefghij2")


# --------------------------------------------------------------------------- datasets


def test_publish_with_urls_keeps_every_shard(pds_client: AtmosphereClient) -> None:
    schema_uri = SchemaPublisher(pds_client).publish(Row, version="1.0.0")
    publisher = DatasetPublisher(pds_client)
    uri = publisher.publish_with_urls(
        urls=[
            "https://data.example.org/d-{000000..000009}.tar",
            "https://mirror.example.org/x.tar",
        ],
        schema_uri=str(schema_uri),
        name="Every shard",
        description="eleven shards",
        tags=["demo", "rows"],
        license="MIT",
        metadata={"source": "synthetic", "rows": 1100, "blob": b"\x00\x01"},
        sha256=["ab" * 32] * 11,
        samples=1100,
    )
    loader = DatasetLoader(pds_client)
    record = loader.get(uri)
    assert record["$type"] == RECORD and record.uri == str(uri)
    assert record["schemaRef"] == str(schema_uri) and record["schemaCid"] == schema_uri.cid
    assert record["storage"] == {
        "$type": "ac.foundation.dataset.storageExternal",
        "urls": [
            "https://data.example.org/d-{000000..000009}.tar",
            "https://mirror.example.org/x.tar",
        ],
        "sha256": ["ab" * 32] * 11,
    }
    assert record["size"] == {"shards": 11, "samples": 1100}
    assert record["tags"] == ["demo", "rows"] and record["license"] == "MIT"
    assert set(record["metadata"]) == {"$bytes"}  # msgpack bytes, as the seed lexicon says
    assert loader.get_metadata(uri) == {"source": "synthetic", "rows": 1100, "blob": b"\x00\x01"}
    assert loader.get_storage_type(uri) == "external"
    assert loader.get_urls(uri) == record["storage"]["urls"]
    with pytest.raises(ValueError, match="use get_urls"):
        loader.get_blobs(uri)
    ds = loader.to_dataset(uri, Row)
    assert len(ds.list_shards()) == 11  # every shard, not just the first

    with pytest.raises(ValueError, match="3 SHA-256 digests for 10 shards"):
        publisher.publish_with_urls(
            "https://x.org/d-{0..9}.tar", schema_uri, name="n", sha256=["ab" * 32] * 3
        )
    # A missing schema, a local path, metadata over the lexicon limit: refused, nothing sent.
    with pytest.raises(RecordNotFoundError):
        publisher.publish_with_urls(
            "https://x.org/d.tar", f"at://{pds_client.did}/{SCHEMA}/3kabcdefghij2", name="n"
        )
    with pytest.raises(
        LexiconValidationError, match=r"storage\.urls\[0\]: .temp\.tar. is not a valid uri"
    ):
        publisher.publish_with_urls("temp.tar", schema_uri, name="n")
    with pytest.raises(LexiconValidationError, match="metadata"):
        publisher.publish_with_urls(
            "https://x.org/d.tar", schema_uri, name="n", metadata={"x": b"\0" * 200_000}
        )
    # A record over the PDS's request size: refused before sending.
    long_urls = [f"https://x.org/{'y' * 900}/{i}.tar" for i in range(1500)]
    with pytest.raises(LexiconValidationError, match=r"over the .*-byte limit"):
        publisher.publish_with_urls(long_urls, schema_uri, name="huge")
    assert collection_uris(pds_client, RECORD) == [str(uri)]


def test_publish_many_uses_batched_writes(pds_account: dict[str, str], injector: Injector) -> None:
    client = client_for(pds_account, transport=injector)
    schema_uri = SchemaPublisher(client).publish(Row, version="1.0.0")
    uris = DatasetPublisher(client).publish_many(
        {"urls": f"https://x.org/part-{i}.tar", "schema_uri": schema_uri, "name": f"part-{i}"}
        for i in range(450)
    )
    assert len(uris) == 450 and len(set(uris)) == 450
    assert injector.count("com.atproto.repo.applyWrites") == 3  # 200 + 200 + 50
    assert injector.count("com.atproto.repo.createRecord") == 1  # the schema
    listed = DatasetLoader(client).list_all()
    assert {r.uri for r in listed} == {str(u) for u in uris}
    assert DatasetLoader(client).get(uris[123])["name"] == "part-123"
    client.close()


def test_publish_with_blobs_and_in_memory_samples(
    pds_client: AtmosphereClient, tmp_path: Path
) -> None:
    rows = write_rows(tmp_path / "a.tar", 20)
    rows += write_rows(tmp_path / "b.tar", 15, start=20)
    schema_uri = SchemaPublisher(pds_client).publish(Row, version="1.0.0")
    publisher = DatasetPublisher(pds_client)
    uri = publisher.publish(
        [(tmp_path / "a.tar").read_bytes(), tmp_path / "b.tar"],
        schema_uri=schema_uri,
        name="rows as blobs",
        tags=["rows"],
    )
    loader = DatasetLoader(pds_client)
    assert loader.get_storage_type(uri) == "blobs"
    blobs = loader.get_blobs(uri)
    assert [b["mimeType"] for b in blobs] == ["application/x-tar"] * 2
    assert [b["size"] for b in blobs] == [
        (tmp_path / "a.tar").stat().st_size,
        (tmp_path / "b.tar").stat().st_size,
    ]
    assert loader.get(uri)["size"] == {
        "samples": 35,
        "bytes": sum(b["size"] for b in blobs),
        "shards": 2,
    }
    http_urls = loader.get_blob_urls(uri)
    assert httpx.get(http_urls[1]).content == (tmp_path / "b.tar").read_bytes()
    with pytest.raises(ValueError, match="use get_blob_urls"):
        loader.get_urls(uri)
    got = list(loader.to_dataset(uri, Row).ordered())
    assert got == rows
    assert [s.index for s in loader.to_dataset(uri).ordered()] == list(range(35))  # type decoded

    # in-memory samples: written to blob-sized shards, schema published (or reused) on the way
    memory_uri = publisher.publish([Row(text=str(i), index=i) for i in range(50)], name="memory")
    record = loader.get(memory_uri)
    assert record["schemaRef"] == str(schema_uri)  # our identical schema, reused
    assert [s.index for s in loader.to_dataset(memory_uri, Row).ordered()] == list(range(50))

    with pytest.raises(ValueError, match="typed Dataset"):
        publisher.publish(atdata.Dataset(str(tmp_path / "a.tar")), name="untyped")


# --------------------------------------------------------------------------- blob store


def read_members(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile()]


def test_blob_store_reshards_raw_members_to_the_limit(
    pds_client: AtmosphereClient, tmp_path: Path
) -> None:
    write_rows(tmp_path / "big.tar", 300, pad=900)  # ~600 KiB
    write_rows(tmp_path / "small.tar", 5, start=300)
    limit = 128 * 1024
    store = PDSBlobStore(pds_client, max_blob_bytes=limit)
    assert store.blob_limit == limit
    dataset = atdata.Dataset[Row]([str(tmp_path / "big.tar"), str(tmp_path / "small.tar")])
    stored = store.upload_shards(dataset)
    assert len(stored) > 4
    assert all(b.size <= limit for b in stored)
    assert sum(b.samples for b in stored) == 305
    assert stored[-1].samples == 5  # a small shard is copied as is
    # a PDS serves blobs only once a record references them
    schema_uri = SchemaPublisher(pds_client).publish(Row, version="1.0.0")
    DatasetPublisher(pds_client).publish(stored, schema_uri=schema_uri, name="resharded")
    assert (
        pds_client.get_blob(pds_client.did, stored[-1].ref["ref"]["$link"])
        == (tmp_path / "small.tar").read_bytes()
    )

    # the members (names and bytes) come back in order, nothing re-encoded
    members: list[tuple[str, bytes]] = []
    for i, blob in enumerate(stored):
        part = tmp_path / f"part-{i}.tar"
        part.write_bytes(pds_client.get_blob(pds_client.did, blob.ref["ref"]["$link"]))
        members += read_members(part)
    assert members == read_members(tmp_path / "big.tar") + read_members(tmp_path / "small.tar")

    source = store.create_source([b.url for b in stored])
    assert [s.index for s in atdata.Dataset[Row](source).ordered()] == list(range(305))
    assert store.read_url(stored[0].url).startswith(
        pds_client.pds_url + "/xrpc/com.atproto.sync.getBlob"
    )


def test_member_too_big_for_any_blob_is_refused_before_sending(
    pds_account: dict[str, str], injector: Injector, tmp_path: Path
) -> None:
    client = client_for(pds_account, transport=injector)
    write_rows(tmp_path / "ok.tar", 3)
    write_rows(tmp_path / "huge.tar", 2, start=3, pad=100_000)
    store = PDSBlobStore(client, max_blob_bytes=64 * 1024)
    dataset = atdata.Dataset[Row]([str(tmp_path / "ok.tar"), str(tmp_path / "huge.tar")])
    with pytest.raises(BlobTooLargeError, match=r"member '000003\.msgpack' .* cannot fit"):
        store.upload_shards(dataset)
    with pytest.raises(ShardError, match="not a tar"):
        (tmp_path / "junk.tar").write_bytes(b"junk" + b"\0" * 5000)
        store.upload_shards([str(tmp_path / "junk.tar")])
    assert injector.count("com.atproto.repo.uploadBlob") == 0
    client.close()


def test_blobs_are_sized_to_the_servers_own_limit(tmp_path: Path) -> None:
    from atdata.stack.pds import create_account, start_pds

    with start_pds(blob_limit=200 * 1024) as server:
        create_account(server, "small", "a-long-password-123")
        client = AtmosphereClient(server.url, plc_url=server.env["PLC_URL"])
        client.login("small.test", "a-long-password-123")
        store = PDSBlobStore(client)
        assert store.blob_limit == 200 * 1024  # from describeServer
        rows = write_rows(tmp_path / "d.tar", 400, pad=2000)  # ~1 MiB in one shard
        schema_uri = SchemaPublisher(client).publish(Row, version="1.0.0")
        uri = DatasetPublisher(client, blob_store=store).publish(
            atdata.Dataset[Row](str(tmp_path / "d.tar")), name="split", schema_uri=schema_uri
        )
        blobs = DatasetLoader(client).get_blobs(uri)
        assert len(blobs) >= 5 and all(b["size"] <= 200 * 1024 for b in blobs)
        assert list(DatasetLoader(client).to_dataset(uri, Row).ordered()) == rows
        client.close()


def test_failed_upload_is_retried_and_a_lost_one_leaves_no_record(
    pds_account: dict[str, str], injector: Injector, tmp_path: Path
) -> None:
    for i in range(3):
        write_rows(tmp_path / f"d-{i}.tar", 10, start=10 * i)
    dataset = atdata.Dataset[Row](str(tmp_path / "d-{0..2}.tar"))
    client = client_for(pds_account, transport=injector, max_retries=2)
    schema_uri = SchemaPublisher(client).publish(Row, version="1.0.0")
    publisher = DatasetPublisher(client)

    # a connection refused and a 503 mid-upload: retried, the dataset is complete
    injector.inject("com.atproto.repo.uploadBlob", refuse)
    injector.inject(
        "com.atproto.repo.uploadBlob", lambda r: httpx.Response(503, json={"error": "Unavailable"})
    )
    uri = publisher.publish(dataset, name="retried", schema_uri=schema_uri)
    assert [s.index for s in DatasetLoader(client).to_dataset(uri, Row).ordered()] == list(
        range(30)
    )

    # an upload that keeps failing: the error surfaces and no record points at missing blobs
    injector.inject("com.atproto.repo.uploadBlob", refuse, n=20)
    with pytest.raises(AtmosphereError, match=r"upload blob .*/d-\d\.tar .*network error"):
        publisher.publish(dataset, name="lost", schema_uri=schema_uri)
    assert [r["value"]["name"] for r in client.iter_records(RECORD)] == ["retried"]
    injector.faults.clear()
    client.close()


def test_uploaded_blobs_are_kept_only_once_a_record_references_them(
    pds_client: AtmosphereClient, tmp_path: Path
) -> None:
    write_rows(tmp_path / "d.tar", 10)
    store = PDSBlobStore(pds_client)

    def listed() -> set[str]:
        out = pds_client._query(
            pds_client._sdk,
            "com.atproto.sync.listBlobs",
            {"did": pds_client.did},
            what="list blobs",
            target=pds_client.did,
        )
        return set(out.get("cids", []))

    (loose,) = store.write_shards(atdata.Dataset[Row](str(tmp_path / "d.tar")), prefix="x")
    assert loose.split("/")[-1] not in listed()  # uploaded, not referenced: GC will take it

    schema_uri = SchemaPublisher(pds_client).publish(Row, version="1.0.0")
    uri = DatasetPublisher(pds_client, blob_store=store).publish(
        atdata.Dataset[Row](str(tmp_path / "d.tar")), name="kept", schema_uri=schema_uri
    )
    (blob,) = DatasetLoader(pds_client).get_blobs(uri)
    assert blob["ref"]["$link"] in listed()  # referenced by the record: the PDS keeps it


def test_corrupted_blob_fails_the_read_naming_the_shard(
    pds_client: AtmosphereClient, pds_server: Any, tmp_path: Path
) -> None:
    write_rows(tmp_path / "d.tar", 50, pad=3000)
    schema_uri = SchemaPublisher(pds_client).publish(Row, version="1.0.0")
    uri = DatasetPublisher(pds_client).publish(
        atdata.Dataset[Row](str(tmp_path / "d.tar")), name="c", schema_uri=schema_uri
    )
    (blob,) = DatasetLoader(pds_client).get_blobs(uri)
    cid = blob["ref"]["$link"]
    stored = Path(pds_server.data_dir) / "blobs" / pds_client.did / cid
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    ds = DatasetLoader(pds_client).to_dataset(uri, Row, cache=False)
    with pytest.raises(BlobIntegrityError, match=f"{cid}.*does not match its CID"):
        for _ in ds.ordered():
            pass


# --------------------------------------------------------------------------- credentials


def test_credentials_never_reach_logs_or_records(
    pds_account: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = client_for(pds_account)
    session = client.export_session().split(":::")
    secrets = [pds_account["password"], session[2], session[3]]
    write_rows(tmp_path / "d.tar", 5)
    schema_uri = SchemaPublisher(client).publish(Row, version="1.0.0")
    DatasetPublisher(client).publish(
        atdata.Dataset[Row](str(tmp_path / "d.tar")), name="s", schema_uri=schema_uri
    )
    records = [r["value"] for c in (SCHEMA, RECORD) for r in client.iter_records(c)]
    text = repr(records) + caplog.text
    assert records and all(s not in text for s in secrets)
    client.close()


# --------------------------------------------------------------------------- lenses


def to_point(row: Row) -> Point:
    """View a row as a point."""
    return Point(xy=np.array([row.index, 0], np.float32), name=row.text)


def test_lens_records_reference_code_and_run_nothing(pds_client: AtmosphereClient) -> None:
    schemas = SchemaPublisher(pds_client)
    rows, points = schemas.publish(Row, version="1.0.0"), schemas.publish(Point, version="1.0.0")
    publisher = LensPublisher(pds_client)
    uri = publisher.publish(
        name="row_to_point",
        source_schema_uri=rows,
        target_schema_uri=points,
        description="rows as points",
        code_repository="https://github.com/example/lenses",
        code_commit=COMMIT,
        getter_path="lenses/geometry.py:row_to_point",
        putter_path="lenses/geometry.py:point_to_row",
        branch="main",
    )
    loader = LensLoader(pds_client)
    record = loader.get(uri)
    assert record["$type"] == LENS and record["language"] == "python"
    assert record["sourceSchema"] == str(rows) and record["targetSchema"] == str(points)
    assert record["getterCode"] == {
        "repository": "https://github.com/example/lenses",
        "commit": COMMIT,
        "path": "lenses/geometry.py:row_to_point",
        "branch": "main",
    }
    assert LensLoader.code(record, "putter") == CodeReference(
        "https://github.com/example/lenses", COMMIT, "lenses/geometry.py:point_to_row", "main"
    )
    assert "lenses" not in sys.modules and "lenses.geometry" not in sys.modules

    # without code, and from a Lens object (path relative to the repository checkout)
    bare = publisher.publish(name="doc only", source_schema_uri=rows, target_schema_uri=points)
    assert LensLoader.code(loader.get(bare)) is None
    lens = atdata.lens(to_point)
    from_obj = publisher.publish_from_lens(
        lens,
        source_schema_uri=rows,
        target_schema_uri=points,
        code_repository="https://github.com/example/atdata",
        code_commit=COMMIT,
        repository_root=Path(__file__).resolve().parents[1],
    )
    obj_record = loader.get(from_obj)
    assert (
        obj_record["name"] == "to_point" and obj_record["description"] == "View a row as a point."
    )
    assert obj_record["getterCode"]["path"] == "tests/test_atmosphere_publish.py:to_point"

    assert {r.uri for r in loader.find_by_schemas(rows)} == {str(uri), str(bare), str(from_obj)}
    assert loader.find_by_schemas(points) == []
    assert len(loader.list_all(limit=2)) == 2

    with pytest.raises(ValueError, match="together"):
        publisher.publish(
            name="x", source_schema_uri=rows, target_schema_uri=points, code_commit=COMMIT
        )
    with pytest.raises(ValueError, match="full lower-case"):
        publisher.publish(
            name="x",
            source_schema_uri=rows,
            target_schema_uri=points,
            code_repository="https://github.com/x/y",
            code_commit="main",
            getter_path="a.py:f",
        )
    with pytest.raises(ValueError, match=r"not a ac\.foundation\.dataset\.sampleSchema"):
        publisher.publish(
            name="x",
            source_schema_uri=f"at://{pds_client.did}/{RECORD}/3kabc",
            target_schema_uri=points,
        )
    assert len(loader.list_all()) == 3


def test_metadata_bytes_are_msgpack(pds_client: AtmosphereClient) -> None:
    schema_uri = SchemaPublisher(pds_client).publish(Row, version="1.0.0")
    uri = DatasetPublisher(pds_client).publish_with_urls(
        "https://x.org/d.tar", schema_uri, name="m", metadata={"k": [1, 2]}
    )
    raw = pds_client.get_record(uri)["metadata"]["$bytes"]
    import base64

    assert msgpack.unpackb(base64.b64decode(raw + "=" * (-len(raw) % 4))) == {"k": [1, 2]}
