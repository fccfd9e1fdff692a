"""Croissant documents, checked with the real validator (``mlcroissant``).

Every generated document must load in mlcroissant with no error and no warning
a user could fix, for team-index entries (SQLite with local disk and S3), for
external-URL records and for blob-stored records on the real PDS.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import mlcroissant as mlc
import numpy as np
import pytest
from numpy.typing import NDArray

import atdata
from atdata.croissant import CONTEXT, CROISSANT_VERSION, CroissantError, spdx_url, to_croissant
from atdata.local import LocalDiskStore, LocalIndex, S3DataStore
from atdata.sample import fields_of
from atdata.schema import schema_record, schema_to_type

ATDATA = Path(sys.executable).parent / "atdata"
RECORD = "ac.foundation.dataset.record"
SCHEMA = "ac.foundation.dataset.sampleSchema"
EXTERNAL = "ac.foundation.dataset.storageExternal"


@atdata.packable
class Part:
    x: int
    names: list[str]


@atdata.packable
class Photo:
    """A labelled photo."""

    image: Annotated[NDArray[np.uint8], atdata.Shape(3, None, 4)]
    label: str
    score: float
    ok: bool
    raw: bytes
    embedding: Annotated[NDArray[np.float32], atdata.Shape(8)] | None
    anything: NDArray
    waves: NDArray[np.complex64]
    history: list[int]
    frames: list[Annotated[NDArray[np.int16], atdata.Shape(2, 2)]]
    attrs: dict[str, float]
    part: Part
    parts: list[Part]


def photos(n: int, start: int = 0) -> list[Photo]:
    return [
        Photo(
            image=np.full((3, 2, 4), i % 256, np.uint8),
            label=f"p{i}",
            score=i / 2,
            ok=i % 2 == 0,
            raw=bytes([i % 256]) * 3,
            embedding=np.arange(8, dtype=np.float32) if i % 3 else None,
            anything=np.zeros(2),
            waves=np.ones(2, np.complex64),
            history=[i, i + 1],
            frames=[np.zeros((2, 2), np.int16)],
            attrs={"a": float(i)},
            part=Part(x=i, names=["n"]),
            parts=[Part(x=i, names=[])],
        )
        for i in range(start, start + n)
    ]


def validate(doc: dict[str, Any]) -> tuple[Any, set[str]]:
    """Load ``doc`` (after a JSON round trip) in mlcroissant; return it and its warnings."""
    loaded = json.loads(json.dumps(doc))
    assert loaded == doc
    dataset = mlc.Dataset(jsonld=loaded)  # raises mlc.ValidationError on any error
    issues = dataset.metadata.ctx.issues
    assert not issues.errors
    return dataset, set(issues.warnings)


def sha256_file(path: str | os.PathLike[str]) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def fields_by_id(doc: dict[str, Any], record_set: str) -> dict[str, dict[str, Any]]:
    rs = next(r for r in doc["recordSet"] if r["@id"] == record_set)
    return {f["@id"]: f for f in rs["field"]}


META = {
    "description": "Photos of things, labelled",
    "license": "mit",
    "tags": ["vision", "test"],
    "version": "1.2.0",
    "creator": "Vision Team",
}


# --------------------------------------------------------------------------- the team index


def test_team_index_on_local_disk(tmp_path: Path) -> None:
    index = LocalIndex(path=tmp_path / "index.db", data_store=LocalDiskStore(tmp_path / "data"))
    ds = atdata.write_samples(photos(12), tmp_path / "src.tar", maxcount=5)
    entry = index.insert_dataset(ds, name="photos", metadata=META)

    doc = to_croissant(entry, index=index)
    dataset, warnings = validate(doc)
    assert warnings == set()

    assert doc["@context"] == CONTEXT and doc["conformsTo"] == CROISSANT_VERSION
    assert doc["name"] == "photos" and doc["description"] == META["description"]
    assert doc["license"] == "https://spdx.org/licenses/MIT.html"
    assert doc["keywords"] == ["vision", "test"] and doc["version"] == "1.2.0"
    assert doc["datePublished"] == entry.created_at
    assert doc["creator"]["name"] == "Vision Team"
    assert doc["url"] == "atdata://local/dataset/photos"
    assert doc["isBasedOn"][0]["url"] == entry.schema_ref
    assert "isLiveDataset" not in doc
    files = [d for d in doc["distribution"] if d["@type"] == "cr:FileObject"]
    assert len(files) == len(entry.data_urls) == 3
    for fo, url in zip(files, entry.data_urls, strict=True):
        assert fo["contentUrl"] == Path(url).resolve().as_uri()
        assert fo["sha256"] == sha256_file(url)
        assert fo["contentSize"] == f"{os.path.getsize(url)} B"
        assert fo["encodingFormat"] == "application/x-tar"
    # mlcroissant read the document as written
    assert {f.uuid for f in dataset.metadata.distribution} >= {"shard-000000", "samples"}
    image = fields_by_id(doc, "Photo")["Photo/image"]
    assert (image["dataType"], image["isArray"], image["arrayShape"]) == (
        "cr:UInt8",
        True,
        "3,-1,4",
    )


def test_team_index_on_s3(
    tmp_path: Path, s3_env: dict[str, str], s3_bucket: str, s3_client: Any
) -> None:
    creds = {
        "AWS_ENDPOINT": s3_env["AWS_ENDPOINT_URL"],
        "AWS_ACCESS_KEY_ID": s3_env["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": s3_env["AWS_SECRET_ACCESS_KEY"],
    }
    index = LocalIndex(
        path=tmp_path / "index.db", data_store=S3DataStore(credentials=creds, bucket=s3_bucket)
    )
    ds = atdata.write_samples(photos(8), tmp_path / "src.tar", maxcount=4)
    entry = index.insert_dataset(ds, name="photos-s3", prefix="team/photos", metadata=META)

    doc = to_croissant(entry, index=index, url="https://datasets.example.org/photos-s3")
    _, warnings = validate(doc)
    assert warnings == set()
    assert doc["url"] == "https://datasets.example.org/photos-s3"
    files = [d for d in doc["distribution"] if d["@type"] == "cr:FileObject"]
    assert [f["contentUrl"] for f in files] == entry.data_urls
    for fo in files:
        bucket, _, key = fo["contentUrl"].removeprefix("s3://").partition("/")
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert fo["sha256"] == hashlib.sha256(body).hexdigest()
        assert fo["contentSize"] == f"{len(body)} B"


def test_missing_publisher_facts_are_the_only_warnings(tmp_path: Path) -> None:
    """Without a license, version or date, mlcroissant says so and nothing else."""
    index = LocalIndex(path=tmp_path / "index.db", data_store=LocalDiskStore(tmp_path / "data"))
    shard = atdata.write_samples(photos(2), tmp_path / "a.tar")
    entry = index.add_entry(shard, name="bare")
    doc = to_croissant(entry, index=index)
    _, warnings = validate(doc)
    assert len(warnings) == 2
    assert all("is recommended, but does not exist" in w for w in warnings)
    assert {w.split('"')[1] for w in warnings} == {
        "https://schema.org/license",
        "https://schema.org/version",
    }
    # add_entry records no checksum: the shard is declared unpinned, and still validates
    assert doc["isLiveDataset"] is True
    assert "sha256" not in doc["distribution"][0]
    assert "not recorded" in doc["distribution"][0]["description"]


# --------------------------------------------------------------------------- fields


def test_every_field_kind_maps_and_validates() -> None:
    entry = {
        "uri": "at://did:plc:abc/ac.foundation.dataset.record/3kabc",
        "value": {
            "name": "kinds",
            "schemaRef": "at://did:plc:abc/ac.foundation.dataset.sampleSchema/3kdef",
            "storage": {
                "$type": "ac.foundation.dataset.storageExternal",
                "urls": ["https://data.example.org/k.tar"],
                "sha256": ["AB" * 32],
            },
            "license": "CC-BY-4.0",
            "createdAt": "2026-01-02T03:04:05Z",
            "metadata": {"$bytes": "gad2ZXJzaW9upTMuMC4w"},  # msgpack {"version": "3.0.0"}
        },
    }
    doc = to_croissant(entry, schema=Photo)
    dataset, warnings = validate(doc)
    assert warnings == set()
    assert doc["distribution"][0]["sha256"] == "ab" * 32
    f = fields_by_id(doc, "Photo")
    want = {
        "Photo/label": ("sc:Text", None),
        "Photo/score": ("sc:Float", None),
        "Photo/ok": ("sc:Boolean", None),
        "Photo/raw": ("sc:Text", None),
        "Photo/image": ("cr:UInt8", "3,-1,4"),
        "Photo/embedding": ("cr:Float32", "8"),
        "Photo/anything": ("sc:Text", None),
        "Photo/waves": ("sc:Text", None),
        "Photo/history": ("sc:Integer", "-1"),
        "Photo/frames": ("cr:Int16", "-1,2,2"),
    }
    for fid, (data_type, shape) in want.items():
        assert f[fid]["dataType"] == data_type, fid
        assert f[fid].get("arrayShape") == shape, fid
    assert "no data type" in f["Photo/anything"]["description"]
    assert "complex64" in f["Photo/waves"]["description"]
    assert "| None" in f["Photo/embedding"]["description"]
    attrs = f["Photo/attrs"]
    assert attrs["isArray"] and [s["name"] for s in attrs["subField"]] == ["key", "value"]
    assert attrs["subField"][1]["dataType"] == "sc:Float"
    assert [s["@id"] for s in f["Photo/part"]["subField"]] == ["Photo/part/x", "Photo/part/names"]
    assert f["Photo/parts"]["isArray"]
    assert f["Photo/parts"]["subField"][1]["source"]["extract"]["jsonPath"] == "$.parts[*].names"
    assert f["Photo/__key__"]["source"]["extract"] == {"fileProperty": "filename"}
    # mlcroissant's own reading of the same fields
    parsed = {fld.uuid: fld for rs in dataset.metadata.record_sets for fld in rs.fields}
    assert parsed["Photo/image"].array_shape_tuple == (3, -1, 4)
    assert parsed["Photo/frames"].array_shape_tuple == (-1, 2, 2)


def test_non_ascii_field_names_get_valid_json_paths() -> None:
    record = {
        "name": "Größe",
        "version": "1.0.0",
        "fields": [
            {"name": "maß", "fieldType": {"$type": "local#primitive", "primitive": "int"}},
        ],
    }
    entry = {
        "uri": "at://did:plc:abc/ac.foundation.dataset.record/3kabc",
        "value": {
            "name": "<script>alert(1)</script>",
            "schemaRef": "at://did:plc:abc/ac.foundation.dataset.sampleSchema/3kdef",
            "storage": {
                "$type": "ac.foundation.dataset.storageExternal",
                "urls": ["https://x.org/a.tar"],
            },
        },
    }
    doc = to_croissant(entry, schema=record)
    validate(doc)
    assert doc["name"] == "<script>alert(1)</script>"
    assert fields_by_id(doc, "Größe")["Größe/maß"]["source"]["extract"]["jsonPath"] == "$.'maß'"


def test_a_sample_type_named_like_the_documents_own_nodes_keeps_ids_unique() -> None:
    record = {
        "name": "splits",
        "version": "1.0.0",
        "fields": [{"name": "x", "fieldType": {"$type": "local#primitive", "primitive": "int"}}],
    }
    entry = bad_entry(splits=[{"name": "train", "shards": [0]}], license="MIT")
    doc = to_croissant(entry, schema=record)
    validate(doc)
    assert [r["@id"] for r in doc["recordSet"]] == ["splits-records", "splits"]


# --------------------------------------------------------------------------- shapes in schemas


def test_shape_round_trips_through_the_schema_record() -> None:
    record = schema_record(Photo, version="1.0.0")
    by_name = {f["name"]: f["fieldType"] for f in record["fields"]}
    assert by_name["image"] == {"$type": "local#ndarray", "dtype": "uint8", "shape": [3, -1, 4]}
    assert by_name["embedding"]["shape"] == [8]
    assert "shape" not in by_name["anything"]
    assert by_name["frames"]["items"]["shape"] == [2, 2]
    rebuilt = {s.name: s.type for s in fields_of(schema_to_type(record))}
    assert rebuilt["image"].shape == (3, -1, 4) and rebuilt["image"].dtype == np.uint8
    frame = rebuilt["frames"].item
    assert frame is not None and frame.shape == (2, 2)
    assert schema_record(schema_to_type(record), version="1.0.0")["fields"] == record["fields"]


@pytest.mark.parametrize("shape", [[3, "x"], [3, -2], [True], "3,4", list(range(100))], ids=str)
def test_malformed_shapes_are_refused_naming_the_field(shape: Any) -> None:
    record = {
        "name": "Bad",
        "version": "1.0.0",
        "fields": [{"name": "a", "fieldType": {"$type": "local#ndarray", "shape": shape}}],
    }
    with pytest.raises(atdata.SchemaError, match=r"field 'a'.*shape"):
        schema_to_type(record)


def test_shape_declarations_are_checked() -> None:
    with pytest.raises(atdata.SchemaError, match="sizes"):
        atdata.Shape(3, -5)
    with pytest.raises(atdata.SchemaError, match="NDArray"):

        @atdata.packable
        class Wrong:
            n: Annotated[int, atdata.Shape(3)]

        fields_of(Wrong)


# --------------------------------------------------------------------------- records on the PDS


def test_external_url_record_without_digests(pds_client: Any) -> None:
    from atdata.atmosphere import AtmosphereIndex, DatasetPublisher, SchemaPublisher

    schema_uri = SchemaPublisher(pds_client).publish(Photo, version="1.0.0")
    uri = DatasetPublisher(pds_client).publish_with_urls(
        ["https://data.example.org/photos-{000..003}.tar"],
        schema_uri,
        name="web photos",
        description="Photos served over HTTPS",
        tags=["web"],
        license="Apache-2.0",
        metadata={"version": "2.0.0"},
        splits=[{"name": "train", "shards": [0, 1, 2]}, {"name": "test", "shards": [3]}],
    )
    index = AtmosphereIndex(pds_client)
    entry = index.get_dataset(uri)
    doc = to_croissant(
        entry, index=index, creator={"did": pds_client.did, "handle": pds_client.handle}
    )
    _, warnings = validate(doc)
    assert warnings == set()
    assert doc["url"] == doc["identifier"] == str(uri)
    assert doc["license"] == "https://spdx.org/licenses/Apache-2.0.html"
    assert doc["creator"] == {
        "@type": "sc:Person",
        "name": pds_client.handle,
        "identifier": pds_client.did,
        "url": f"at://{pds_client.did}",
        "alternateName": pds_client.handle,
    }
    assert doc["isBasedOn"][0]["url"] == str(schema_uri)
    assert doc["isBasedOn"][0]["identifier"] == entry.record["schemaCid"]
    files = [d for d in doc["distribution"] if d["@type"] == "cr:FileObject"]
    assert [f["contentUrl"] for f in files] == [
        f"https://data.example.org/photos-{i:03d}.tar" for i in range(4)
    ]
    assert doc["isLiveDataset"] is True
    assert all("sha256" not in f and "not recorded" in f["description"] for f in files)
    splits = next(r for r in doc["recordSet"] if r["@id"] == "splits")
    assert splits["dataType"] == "cr:Split"
    assert splits["data"] == [
        {"splits/name": "train", "splits/shards": ["shard-000000", "shard-000001", "shard-000002"]},
        {"splits/name": "test", "splits/shards": ["shard-000003"]},
    ]


def test_external_url_record_with_digests_is_pinned(pds_client: Any) -> None:
    from atdata.atmosphere import AtmosphereIndex, DatasetPublisher, SchemaPublisher

    schema_uri = SchemaPublisher(pds_client).publish(Part, version="1.0.0")
    digests = [hashlib.sha256(bytes([i])).hexdigest() for i in range(2)]
    uri = DatasetPublisher(pds_client).publish_with_urls(
        ["https://data.example.org/p-0.tar", "https://data.example.org/p-1.tar"],
        schema_uri,
        name="pinned",
        license="MIT",
        metadata={"version": "1.0.0"},
        sha256=digests,
    )
    index = AtmosphereIndex(pds_client)
    doc = to_croissant(index.get_dataset(uri), index=index, creator={"did": pds_client.did})
    _, warnings = validate(doc)
    assert warnings == set()
    assert "isLiveDataset" not in doc
    assert [d.get("sha256") for d in doc["distribution"][:2]] == digests


def test_blob_stored_record(pds_client: Any, tmp_path: Path) -> None:
    from atdata.atmosphere import AtmosphereIndex, LensPublisher, PDSBlobStore

    index = AtmosphereIndex(pds_client, data_store=PDSBlobStore(pds_client))
    ds = atdata.write_samples(photos(9), tmp_path / "blob.tar", maxcount=4)
    local_digests = [sha256_file(s) for s in ds.list_shards()]
    entry = index.insert_dataset(
        ds,
        name="blob photos",
        description="Photos kept as blobs",
        tags=["blobs"],
        license="BSD-3-Clause",
        metadata={"version": "0.1.0"},
    )
    gray = index.publish_schema(Part, version="1.0.0")
    lens_uri = LensPublisher(pds_client).publish(
        name="photo_to_part",
        source_schema_uri=entry.schema_ref,
        target_schema_uri=gray,
        code_repository="https://github.com/example/lenses",
        code_commit="a" * 40,
        getter_path="lenses/photo.py:to_part",
    )
    lens = pds_client.get_record_entry(lens_uri)
    doc = to_croissant(
        entry,
        index=index,
        lenses=[lens],
        pds=pds_client.pds_url,
        creator={"did": pds_client.did, "handle": pds_client.handle},
    )
    _, warnings = validate(doc)
    assert warnings == set()
    assert "isLiveDataset" not in doc
    # the published schema record carries the declared shape, and so does arrayShape
    published = pds_client.get_record(entry.schema_ref)
    image_type = next(f for f in published["fields"] if f["name"] == "image")["fieldType"]
    assert image_type["shape"] == [3, -1, 4]
    assert fields_by_id(doc, "Photo")["Photo/image"]["arrayShape"] == "3,-1,4"
    files = [d for d in doc["distribution"] if d["@type"] == "cr:FileObject"]
    assert [f["sha256"] for f in files] == local_digests
    for fo, blob in zip(files, entry.record["storage"]["blobs"], strict=True):
        assert fo["contentSize"] == f"{blob['size']} B"
        body = httpx.get(fo["contentUrl"], timeout=30).content  # the getBlob URL serves it
        assert hashlib.sha256(body).hexdigest() == fo["sha256"]
    assert doc["subjectOf"] == [
        {
            "@type": "sc:SoftwareSourceCode",
            "name": "photo_to_part",
            "url": str(lens_uri),
            "description": f"atdata lens from {entry.schema_ref} to {gray}",
            "codeRepository": "https://github.com/example/lenses",
        }
    ]

    # The web-handler form: getRecord-shaped dicts for the dataset and its schema.
    raw = pds_client.get_record_entry(entry.uri)
    schema = pds_client.get_record_entry(entry.schema_ref)
    again = to_croissant(
        raw,
        schema=schema,
        lenses=[lens],
        pds=pds_client.pds_url,
        creator={"did": pds_client.did, "handle": pds_client.handle},
    )
    assert again == doc


# --------------------------------------------------------------------------- the command line


def run_cli(*args: str, env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(
        [str(ATDATA), "croissant", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # one JSON document, nothing else


def test_cli_local_name_and_files(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"ATDATA_HOME": str(home)}
    index = LocalIndex(path=home / "index.db", data_store=LocalDiskStore(home / "data"))
    ds = atdata.write_samples(photos(6), tmp_path / "src.tar", maxcount=3)
    entry = index.insert_dataset(ds, name="cli-photos", metadata=META)
    index.close()

    doc = run_cli("@local/cli-photos", env=env)
    _, warnings = validate(doc)
    assert warnings == set()
    assert doc["name"] == "cli-photos"
    assert [d["sha256"] for d in doc["distribution"][:2]] == [s.sha256 for s in entry.shards]

    data = tmp_path / "files"
    for split in ("train", "test"):
        atdata.write_samples(photos(2), data / f"{split}-000.tar")
    files_doc = run_cli(str(data), env=env)
    _, warnings = validate(files_doc)
    # plain files carry no license or version: the validator says so, and nothing else
    assert {w.split('"')[1] for w in warnings} == {
        "https://schema.org/license",
        "https://schema.org/version",
        "https://schema.org/datePublished",
    }
    by_url = {d.get("contentUrl"): d for d in files_doc["distribution"]}
    for split in ("train", "test"):
        path = data / f"{split}-000.tar"
        assert by_url[path.resolve().as_uri()]["sha256"] == sha256_file(path)
    split_names = [row["splits/name"] for row in files_doc["recordSet"][0]["data"]]
    assert sorted(split_names) == ["test", "train"]


def test_cli_published_by_handle(
    pds_client: Any, pds_account: dict[str, str], tmp_path: Path
) -> None:
    from atdata.atmosphere import AtmosphereIndex, PDSBlobStore

    index = AtmosphereIndex(pds_client, data_store=PDSBlobStore(pds_client))
    shards = atdata.write_samples(photos(3), tmp_path / "c.tar")
    entry = index.insert_dataset(
        shards, name="cli blobs", license="MIT", metadata={"version": "1.0.0"}
    )
    env = {
        "ATDATA_PDS_URL": pds_account["pds_url"],
        "ATDATA_PLC_URL": pds_account["plc_url"],
        "ATDATA_ALLOW_PRIVATE_URLS": "1",
    }
    doc = run_cli(f"@{pds_account['handle']}/cli blobs", env=env)
    _, warnings = validate(doc)
    assert warnings == set()
    assert doc["identifier"] == entry.uri
    assert doc["creator"]["identifier"] == pds_account["did"]
    assert doc["creator"]["alternateName"] == pds_account["handle"]
    fo = doc["distribution"][0]
    assert fo["contentUrl"].startswith(pds_account["pds_url"] + "/xrpc/com.atproto.sync.getBlob")
    assert run_cli(entry.uri, env=env) == doc


# --------------------------------------------------------------------------- bad input


def bad_entry(**value: Any) -> dict[str, Any]:
    base = {
        "name": "bad",
        "schemaRef": "at://did:plc:abc/ac.foundation.dataset.sampleSchema/3kdef",
        "storage": {
            "$type": "ac.foundation.dataset.storageExternal",
            "urls": ["https://x.org/a.tar"],
        },
    }
    return {
        "uri": "at://did:plc:abc/ac.foundation.dataset.record/3kbad",
        "value": {**base, **value},
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"storage": {"$type": "com.example.other"}}, "unknown storage type"),
        ({"storage": {"$type": "ac.foundation.dataset.storageExternal", "urls": []}}, "urls"),
        ({"storage": {"$type": "ac.foundation.dataset.storageBlobs", "blobs": [{}]}}, "no CID"),
        ({"splits": [{"name": "train", "shards": [5]}]}, "out of range"),
        (
            {"storage": {"$type": EXTERNAL, "urls": ["https://x.org/{0..999999999}.tar"]}},
            "more than 100000 shards",
        ),
        ({"storage": {"$type": EXTERNAL, "urls": ["https://x.org/" + "{a,b}" * 60]}}, "more than"),
        ({"storage": {"$type": EXTERNAL, "urls": ["https://x.org/{a.tar"]}}, "storage.urls"),
        ({"splits": [{"shards": [0]}]}, "name"),
        ({"metadata": {"$bytes": "!!!"}}, "metadata"),
        ({"name": ""}, "'name'"),
        ({"$type": "com.example.post"}, "not a dataset record"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_malformed_records_raise_naming_the_uri(value: dict[str, Any], message: str) -> None:
    with pytest.raises(CroissantError, match=message) as info:
        to_croissant(bad_entry(**value))
    assert isinstance(info.value, atdata.AtdataError)
    assert "at://did:plc:abc/ac.foundation.dataset.record/3kbad" in str(info.value)


def test_a_schema_that_cannot_be_described_names_the_dataset() -> None:
    schema = {
        "name": "Nested",
        "version": "1.0.0",
        "fields": [{"name": "a", "fieldType": {"$type": "local#ref", "ref": "at://x/y/z"}}],
    }
    with pytest.raises(CroissantError, match=r"3kbad.*'ref'"):
        to_croissant(bad_entry(), schema=schema)


def test_the_validator_refuses_an_unpinned_shard_not_declared_live() -> None:
    """The negative control: mlcroissant does check what these tests rely on."""
    doc = to_croissant(bad_entry(license="MIT"), schema=Part)
    assert doc.pop("isLiveDataset") is True
    with pytest.raises(mlc.ValidationError, match="sha256"):
        validate(doc)


def test_spdx_urls() -> None:
    assert spdx_url("mit") == "https://spdx.org/licenses/MIT.html"
    assert spdx_url("Apache-2.0") == "https://spdx.org/licenses/Apache-2.0.html"
    assert spdx_url("https://example.org/licence") == "https://example.org/licence"
    assert spdx_url("MIT OR Apache-2.0") == "MIT OR Apache-2.0"
    assert spdx_url("all rights reserved") == "all rights reserved"


def test_validation_output_is_quiet_for_good_documents(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    validate(
        to_croissant(
            bad_entry(
                license="MIT",
                createdAt="2026-01-01T00:00:00Z",
                metadata={"$bytes": "gad2ZXJzaW9upTMuMC4w"},
            ),
            schema=Part,
        )
    )
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_core_modules_import_neither_the_team_nor_the_federation_layer() -> None:
    import ast

    import atdata._croissant_entries
    import atdata._croissant_fields
    import atdata.croissant

    imported: set[str] = set()
    for module in (atdata.croissant, atdata._croissant_entries, atdata._croissant_fields):
        tree = ast.parse(Path(module.__file__ or "").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(a.name for a in node.names)
    assert not {m for m in imported if m.startswith(("atdata.local", "atdata.atmosphere"))}
    assert {"atdata.schema", "atdata.sources"} <= imported  # the check sees atdata's own imports
