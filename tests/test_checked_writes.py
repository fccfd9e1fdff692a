"""Nothing half-done: shards are checked before they are indexed or published, and a failed
copy removes what it copied (or says exactly what it left behind).

Real SeaweedFS and the real PDS; the only mocks are S3 delete faults a healthy server
does not produce on demand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import atdata
from atdata import AtdataError, DictSample, OrphanedDataError, SampleError, ShardError
from atdata.atmosphere import DatasetLoader, PDSBlobStore
from atdata.local import Index, LocalDiskStore, S3DataStore
from atdata.promote import promote_to_atmosphere
from helpers import private_atdata_home, write_tar  # noqa: F401 - autouse fixture


@atdata.packable
class Vec:
    features: NDArray[np.float32]
    label: int


@atdata.packable
class Other:
    name: str


def creds(s3_env: dict[str, str]) -> dict[str, str]:
    return {
        "AWS_ENDPOINT": s3_env["AWS_ENDPOINT_URL"],
        "AWS_ACCESS_KEY_ID": s3_env["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": s3_env["AWS_SECRET_ACCESS_KEY"],
    }


def good(path: Path, n: int = 5, size: int = 8) -> str:
    samples = [Vec(features=np.full(size, i, np.float32), label=i) for i in range(n)]
    return atdata.write_samples(samples, path).list_shards()[0]


def bad(kind: str, path: Path) -> str:
    """A shard that must be refused, of one kind."""
    if kind == "not a tar":
        path.write_bytes(np.random.default_rng(0).bytes(20_480))
    elif kind == "truncated":
        whole = Path(good(path.with_name("whole.tar"), n=20, size=256)).read_bytes()
        path.write_bytes(whole[: len(whole) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "other schema":
        atdata.write_samples([Other(name=f"n{i}") for i in range(3)], path)
    elif kind == "not msgpack":
        write_tar(path, [("000.json", b'{"label": 1}')])
    elif kind == "garbage payload":
        write_tar(path, [("000.msgpack", b"\xc1\xc1 not msgpack")])
    else:
        raise AssertionError(kind)
    return str(path)


KINDS = ["not a tar", "truncated", "empty", "other schema", "not msgpack", "garbage payload"]


def bucket_keys(s3_client: Any, bucket: str) -> list[str]:
    listing = s3_client.list_objects_v2(Bucket=bucket)
    return [o["Key"] for o in listing.get("Contents", [])]


@pytest.mark.parametrize("kind", KINDS)
def test_insert_dataset_refuses_a_bad_shard_and_leaves_nothing(
    kind: str, tmp_path: Path, s3_env: dict[str, str], s3_bucket: str, s3_client: Any
) -> None:
    index = Index(
        path=tmp_path / "i.db", data_store=S3DataStore(credentials=creds(s3_env), bucket=s3_bucket)
    )
    index.publish_schema(Vec, version="1.0.0")
    shards = [good(tmp_path / "a.tar"), bad(kind, tmp_path / "bad.tar"), good(tmp_path / "c.tar")]
    with pytest.raises((ShardError, SampleError)) as caught:
        index.insert_dataset(atdata.Dataset[Vec](shards), name="mixed")
    assert str(tmp_path / "bad.tar") in str(caught.value)
    assert bucket_keys(s3_client, s3_bucket) == []
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert index.list_entries() == []


@pytest.mark.parametrize("kind", ["other schema", "not msgpack"])
def test_an_untyped_dataset_is_checked_against_the_named_schema(kind: str, tmp_path: Path) -> None:
    index = Index(path=tmp_path / "i.db", data_store=LocalDiskStore(tmp_path / "store"))
    ref = index.publish_schema(Vec, version="1.0.0")
    shards = [good(tmp_path / "a.tar"), bad(kind, tmp_path / "bad.tar")]
    with pytest.raises(AtdataError, match=r"bad\.tar"):
        index.insert_dataset(atdata.Dataset[DictSample](shards), name="x", schema_ref=ref)
    assert index.list_entries() == []
    assert [p for p in (tmp_path / "store").rglob("*") if p.is_file()] == []


def test_a_good_dataset_is_still_copied_byte_for_byte(tmp_path: Path) -> None:
    index = Index(path=tmp_path / "i.db", data_store=LocalDiskStore(tmp_path / "store"))
    shards = [good(tmp_path / f"{i}.tar", n=3 + i, size=5000) for i in range(3)]
    entry = index.insert_dataset(atdata.Dataset[Vec](shards), name="ok")
    assert [Path(u).read_bytes() for u in entry.data_urls] == [Path(s).read_bytes() for s in shards]


def test_a_bad_sample_at_the_end_of_a_multipart_shard_aborts_the_upload(
    tmp_path: Path, s3_env: dict[str, str], s3_bucket: str, s3_client: Any
) -> None:
    store = S3DataStore(credentials=creds(s3_env), bucket=s3_bucket, part_size=5 << 20)
    index = Index(path=tmp_path / "i.db", data_store=store)
    big = [Vec(features=np.full(1 << 20, i, np.float32), label=i) for i in range(4)]  # 16 MiB
    path = atdata.write_samples(big, tmp_path / "big.tar").list_shards()[0]
    data = bytearray(Path(path).read_bytes())
    last = data.rfind(b".msgpack\x00")  # damage the payload of the last member
    payload_start = (last // 512 + 1) * 512
    data[payload_start : payload_start + 8] = b"\xc1" * 8
    Path(path).write_bytes(bytes(data))
    with pytest.raises(SampleError, match=r"big\.tar"):
        index.insert_dataset(atdata.Dataset[Vec]([path]), name="big")
    assert bucket_keys(s3_client, s3_bucket) == []
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


# --------------------------------------------------------------------------- failed cleanup


def test_a_failed_removal_lists_the_orphaned_urls(
    tmp_path: Path,
    s3_env: dict[str, str],
    s3_bucket: str,
    s3_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from botocore.exceptions import ClientError

    store = S3DataStore(credentials=creds(s3_env), bucket=s3_bucket, workers=1)
    index = Index(path=tmp_path / "i.db", data_store=store)
    shards = [
        good(tmp_path / "a.tar"),
        good(tmp_path / "b.tar"),
        bad("truncated", tmp_path / "bad.tar"),
    ]

    def refuse(**kwargs: Any) -> Any:  # a server that will not delete (policy, outage)
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "DeleteObjects")

    monkeypatch.setattr(store.client, "delete_objects", refuse)
    with pytest.raises(OrphanedDataError) as caught:
        index.insert_dataset(atdata.Dataset[Vec](shards), name="x")
    err = caught.value
    assert isinstance(err.__cause__, ShardError) and "bad.tar" in str(err)
    left = [f"s3://{s3_bucket}/{k}" for k in bucket_keys(s3_client, s3_bucket)]
    assert len(left) == 2 and set(left) <= set(err.orphaned)
    assert all(u in str(err) for u in left) and "AccessDenied" in str(err)
    assert index.list_entries() == []


def test_objects_the_server_refuses_to_delete_are_listed(
    tmp_path: Path,
    s3_env: dict[str, str],
    s3_bucket: str,
    s3_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = S3DataStore(credentials=creds(s3_env), bucket=s3_bucket, workers=1)
    index = Index(path=tmp_path / "i.db", data_store=store)
    shards = [
        good(tmp_path / "a.tar"),
        good(tmp_path / "b.tar"),
        bad("not a tar", tmp_path / "bad.tar"),
    ]
    real = store.client.delete_objects

    def keep_first(**kwargs: Any) -> Any:  # per-key errors, as DeleteObjects reports them
        objects = kwargs["Delete"]["Objects"]
        kwargs["Delete"] = {**kwargs["Delete"], "Objects": objects[1:]}
        answer = real(**kwargs)
        return {**answer, "Errors": [{"Key": objects[0]["Key"], "Code": "AccessDenied"}]}

    monkeypatch.setattr(store.client, "delete_objects", keep_first)
    with pytest.raises(OrphanedDataError) as caught:
        index.insert_dataset(atdata.Dataset[Vec](shards), name="x")
    left = [f"s3://{s3_bucket}/{k}" for k in bucket_keys(s3_client, s3_bucket)]
    assert len(left) == 1 and caught.value.orphaned == left


# --------------------------------------------------------------------------- promote --blobs


@pytest.mark.parametrize("kind", ["truncated", "other schema", "not msgpack"])
def test_promote_to_blobs_refuses_a_bad_shard_before_uploading(
    kind: str, tmp_path: Path, pds_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = Index(path=tmp_path / "i.db", data_store=LocalDiskStore(tmp_path / "store"))
    ref = index.publish_schema(Vec, version="1.0.0")
    shards = [good(tmp_path / "a.tar"), bad(kind, tmp_path / "bad.tar")]
    entry = index.add_entry(shards, name="unchecked", schema_ref=ref)  # indexed as it is
    uploads: list[Any] = []
    upload = pds_client.upload_blob
    monkeypatch.setattr(
        pds_client, "upload_blob", lambda *a, **k: uploads.append(a) or upload(*a, **k)
    )
    with pytest.raises(AtdataError, match=r"bad\.tar"):
        promote_to_atmosphere(entry, index, pds_client, data_store=PDSBlobStore(pds_client))
    assert uploads == []  # checked before the first upload
    assert DatasetLoader(pds_client).list_all() == []


# --------------------------------------------------------------------------- copied, then not published


def test_a_promotion_that_cannot_publish_removes_its_copies(
    tmp_path: Path, s3_env: dict[str, str], s3_bucket: str, s3_client: Any, pds_client: Any
) -> None:
    index = Index(path=tmp_path / "i.db", data_store=LocalDiskStore(tmp_path / "store"))
    entry = index.insert_dataset(
        atdata.Dataset[Vec]([good(tmp_path / "a.tar"), good(tmp_path / "b.tar")]), name="v"
    )
    target = S3DataStore(credentials=creds(s3_env), bucket=s3_bucket)
    with pytest.raises(ValueError, match="description"):  # longer than the lexicon allows
        promote_to_atmosphere(entry, index, pds_client, data_store=target, description="x" * 6000)
    assert bucket_keys(s3_client, s3_bucket) == []
    assert DatasetLoader(pds_client).list_all() == []


def test_an_atmosphere_insert_that_cannot_publish_removes_its_copies(
    tmp_path: Path, s3_env: dict[str, str], s3_bucket: str, s3_client: Any, pds_client: Any
) -> None:
    from atdata.atmosphere import AtmosphereIndex

    store = S3DataStore(credentials=creds(s3_env), bucket=s3_bucket)
    index = AtmosphereIndex(pds_client, data_store=store)
    ds = atdata.Dataset[Vec]([good(tmp_path / "a.tar")])
    with pytest.raises(ValueError, match="description"):
        index.insert_dataset(ds, name="v", description="x" * 6000)
    assert bucket_keys(s3_client, s3_bucket) == []
    assert DatasetLoader(pds_client).list_all() == []
