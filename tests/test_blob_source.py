"""BlobSource: shards streamed from real PDS blobs and checked against their CIDs."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

import libipld
import pytest

import atdata
from atdata.atmosphere import (
    AtmosphereClient,
    BlobIntegrityError,
    BlobNotFoundError,
    BlobSource,
    BlobUrl,
)
from atdata.atmosphere.blobs import VerifiedBlobStream, blob_digest
from atdata.errors import ShardError

RECORD = "ac.foundation.dataset.record"


def publish_blobs(client: AtmosphereClient, *payloads: bytes | Path) -> list[dict[str, Any]]:
    """Upload blobs and reference them from a dataset record (the PDS only serves referenced blobs)."""
    refs = [client.upload_blob(p) for p in payloads]
    client.create_record(
        RECORD,
        {
            "$type": RECORD,
            "name": "blobs",
            "schemaRef": "at://did:plc:abc123/ac.foundation.dataset.sampleSchema/3kabcdefghij2",
            "storage": {"$type": "ac.foundation.dataset.storageBlobs", "blobs": refs},
            "createdAt": "2026-01-26T12:00:00+00:00",
        },
    )
    return refs


def raw_of(stream: Any) -> VerifiedBlobStream:
    raw = stream.raw
    assert isinstance(raw, VerifiedBlobStream)
    return raw


@pytest.fixture(autouse=True)
def _loopback_pds_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test PDS is on loopback: these readers opt in, as `atdata stack up` tells users to."""
    monkeypatch.setenv("ATDATA_ALLOW_PRIVATE_URLS", "1")


def test_streams_byte_identical_and_verified(pds_client: AtmosphereClient, tmp_path: Path) -> None:
    data = os.urandom(8 * 1024 * 1024 + 123)
    path = tmp_path / "shard.tar"
    path.write_bytes(data)
    (ref,) = publish_blobs(pds_client, path)
    cid = ref["ref"]["$link"]
    assert blob_digest(cid) == hashlib.sha256(data).digest()

    # No client: the owner's PDS is found through the (local) PLC directory.
    source = BlobSource.from_refs([{"did": pds_client.did, "cid": cid}], plc_url=pds_client.plc_url)
    shard_id = f"at://{pds_client.did}/blob/{cid}"
    assert source.list_shards() == [shard_id]
    with source.open_shard(shard_id) as stream:
        first = stream.read(1)
        assert raw_of(stream).bytes_read <= 2 * 1024 * 1024  # streamed, not downloaded whole
        chunks = [first]
        while chunk := stream.read(65536):
            chunks.append(chunk)
        assert raw_of(stream).verified
    assert b"".join(chunks) == data
    source.close()


def test_constructors_and_shard_lookup(pds_client: AtmosphereClient) -> None:
    refs = publish_blobs(pds_client, b"shard zero", b"shard one")
    urls = [str(BlobUrl(pds_client.did, r["ref"]["$link"])) for r in refs]
    with_blob_refs = BlobSource.from_refs(
        [dict(r, did=pds_client.did) for r in refs], plc_url=pds_client.plc_url
    )
    from_urls = BlobSource.from_urls(urls, plc_url=pds_client.plc_url)
    via_client = pds_client.blob_source(urls)
    for source in (with_blob_refs, from_urls, via_client):
        assert source.list_shards() == urls
        assert [s.read() for _, s in source.shards] == [b"shard zero", b"shard one"]
    assert isinstance(from_urls, atdata.DataSource)
    with pytest.raises(KeyError, match="not a shard of this source"):
        from_urls.open_shard(f"at://{pds_client.did}/blob/{refs[0]['ref']['$link'][:-1]}a")
    with pytest.raises(ValueError, match="blob reference 0"):
        BlobSource.from_refs([{"cid": "x"}])
    with pytest.raises(ValueError, match="not a CID"):
        BlobSource.from_urls([f"at://{pds_client.did}/blob/not-a-cid"])
    with pytest.raises(ValueError, match="blob URL"):
        BlobSource.from_urls([f"at://{pds_client.did}/{RECORD}/3kabc"])


def test_corrupted_blob_is_detected(pds_client: AtmosphereClient, pds_server: Any) -> None:
    data = os.urandom(3 * 1024 * 1024)
    (ref,) = publish_blobs(pds_client, data)
    cid = ref["ref"]["$link"]
    # Corrupt the bytes the PDS stores for this blob (one flipped byte in the middle).
    stored = Path(pds_server.data_dir) / "blobs" / pds_client.did / cid
    blob = bytearray(stored.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    stored.write_bytes(bytes(blob))

    source = BlobSource.from_refs([{"did": pds_client.did, "cid": cid}], plc_url=pds_client.plc_url)
    shard_id = source.list_shards()[0]
    with (
        pytest.raises(BlobIntegrityError, match="does not match its CID") as info,
        source.open_shard(shard_id) as stream,
    ):
        while stream.read(1 << 20):
            pass
    assert info.value.shard == shard_id and shard_id in str(info.value)
    assert isinstance(info.value, ShardError)

    # an early close drains a short remainder and still checks
    with (
        pytest.raises(BlobIntegrityError),
        pds_client.get_blob_stream(pds_client.did, cid) as stream,
    ):
        stream.read(len(data) - 1000)
    unchecked = BlobSource.from_refs(
        [{"did": pds_client.did, "cid": cid}], plc_url=pds_client.plc_url, verify=False
    )
    with unchecked.open_shard(shard_id) as stream:
        assert stream.read() == bytes(blob)


def test_early_close_far_from_the_end_is_quiet(pds_client: AtmosphereClient) -> None:
    data = os.urandom(4 * 1024 * 1024)
    (ref,) = publish_blobs(pds_client, data)
    stream = pds_client.get_blob_stream(pds_client.did, ref["ref"]["$link"])
    assert stream.read(100) == data[:100]
    raw = raw_of(stream)
    stream.close()
    assert not raw.verified and raw.bytes_read < len(data)


def test_missing_and_unverifiable_blobs(pds_client: AtmosphereClient) -> None:
    absent = libipld.encode_cid(b"\x01\x55\x12\x20" + hashlib.sha256(b"never uploaded").digest())
    source = BlobSource.from_refs(
        [{"did": pds_client.did, "cid": absent}], plc_url=pds_client.plc_url
    )
    with pytest.raises(BlobNotFoundError, match="not found") as info:
        source.open_shard(source.list_shards()[0])
    assert absent in str(info.value)

    # a dag-cbor (record) CID, not a blob CID
    record_cid = "bafyreidsbnikhgk64lt3l65ypkmw37nujsatqsvfycolf52povmgwtz6jq"
    source = BlobSource.from_urls(
        [f"at://{pds_client.did}/blob/{record_cid}"], plc_url=pds_client.plc_url
    )
    with pytest.raises(ShardError, match="not a raw-codec"):
        source.open_shard(source.list_shards()[0])

    unknown_did = BlobSource.from_refs(
        [{"did": "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", "cid": absent}], plc_url=pds_client.plc_url
    )
    with pytest.raises(ShardError, match="cannot find the PDS"):
        unknown_did.open_shard(unknown_did.list_shards()[0])


def test_pickles_for_worker_processes(pds_client: AtmosphereClient) -> None:
    (ref,) = publish_blobs(pds_client, b"for a worker")
    source = pds_client.blob_source([{"did": pds_client.did, "cid": ref["ref"]["$link"]}])
    clone = pickle.loads(pickle.dumps(source))
    assert clone.client is None and clone.list_shards() == source.list_shards()
    # the clone uses the PDS endpoint resolved before pickling
    with clone.open_shard(clone.list_shards()[0]) as stream:
        assert stream.read() == b"for a worker"


@atdata.packable
class Row:
    index: int
    text: str


def test_dataset_reads_from_blob_shards(pds_client: AtmosphereClient, tmp_path: Path) -> None:
    ds = atdata.write_samples(
        [Row(i, f"row {i}") for i in range(300)], tmp_path / "rows.tar", maxcount=100
    )
    paths = ds.list_shards()
    assert len(paths) == 3
    refs = publish_blobs(pds_client, *(Path(p) for p in paths))
    source = BlobSource.from_refs(
        [{"did": pds_client.did, "cid": r["ref"]["$link"]} for r in refs],
        plc_url=pds_client.plc_url,
    )
    rows = list(atdata.Dataset[Row](source))
    assert [r.index for r in rows] == list(range(300))
    assert rows[123].text == "row 123"
