"""The shipped lexicons and the record validator (no server needed).

Seed-era records (what atdata wrote before this rewrite) must keep validating; new
fields are optional; every rejection names the NSID and the path of the bad value.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import pytest

from atdata.atmosphere import (
    LexiconValidationError,
    get_lexicon,
    lexicon_ids,
    to_record_json,
    validate_record,
)
from atdata.atmosphere._lexicon import MAX_RECORD_BYTES, check_data_model

SCHEMA = "ac.foundation.dataset.sampleSchema"
RECORD = "ac.foundation.dataset.record"
LENS = "ac.foundation.dataset.lens"
TYPE = "ac.foundation.dataset.schemaType"
BLOB_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
RECORD_CID = "bafyreidsbnikhgk64lt3l65ypkmw37nujsatqsvfycolf52povmgwtz6jq"
SCHEMA_URI = "at://did:plc:abc123/ac.foundation.dataset.sampleSchema/3kabcdefghij2"


def seed_schema() -> dict[str, Any]:
    """A sampleSchema exactly as the seed-era SchemaPublisher wrote it."""
    return {
        "$type": SCHEMA,
        "name": "ImageSample",
        "version": "1.0.0",
        "fields": [
            {
                "name": "image",
                "fieldType": {"$type": f"{TYPE}#ndarray", "dtype": "float32"},
                "optional": False,
            },
            {
                "name": "label",
                "fieldType": {"$type": f"{TYPE}#primitive", "primitive": "str"},
                "optional": False,
            },
            {
                "name": "confidence",
                "fieldType": {"$type": f"{TYPE}#primitive", "primitive": "float"},
                "optional": False,
            },
            {
                "name": "tags",
                "fieldType": {
                    "$type": f"{TYPE}#array",
                    "items": {"$type": f"{TYPE}#primitive", "primitive": "str"},
                },
                "optional": True,
                "description": "free tags",
            },
            {
                "name": "crop",
                "fieldType": {"$type": f"{TYPE}#ndarray", "dtype": "uint8", "shape": [224, 224, 3]},
                "optional": True,
            },
        ],
        "createdAt": "2026-01-26T12:34:56.789012+00:00",
        "description": "A sample containing image data with metadata.",
        "metadata": {"author": "me", "count": 3},
    }


def seed_dataset_external() -> dict[str, Any]:
    return {
        "$type": RECORD,
        "name": "Demo Image Dataset",
        "schemaRef": SCHEMA_URI,
        "storage": {
            "$type": "ac.foundation.dataset.storageExternal",
            "urls": ["s3://example-bucket/demo-data-{000000..000009}.tar"],
        },
        "createdAt": "2026-01-26T12:34:56.789012+00:00",
        "description": "Example dataset",
        "tags": ["demo", "images", "atdata"],
        "license": "MIT",
        "metadata": {"$bytes": "gaFhAQ"},  # msgpack {"a": 1}, the 0.4-era $bytes envelope
    }


def seed_dataset_blobs() -> dict[str, Any]:
    blob = {
        "$type": "blob",
        "ref": {"$link": BLOB_CID},
        "mimeType": "application/x-tar",
        "size": 10240,
    }
    return {
        "$type": RECORD,
        "name": "blob-stored-features",
        "schemaRef": SCHEMA_URI,
        "storage": {
            "$type": "ac.foundation.dataset.storageBlobs",
            "blobs": [blob, dict(blob, size=20480)],
        },
        "createdAt": "2026-01-26T12:34:56+00:00",
    }


def seed_lens(with_code: bool = True) -> dict[str, Any]:
    lens: dict[str, Any] = {
        "$type": LENS,
        "name": "rgb_to_gray",
        "sourceSchema": SCHEMA_URI,
        "targetSchema": "at://did:plc:abc123/ac.foundation.dataset.sampleSchema/3kabcdefghij3",
        "description": "Convert RGB images to grayscale",
        "createdAt": "2026-01-26T12:34:56+00:00",
    }
    if with_code:
        code = {
            "repository": "https://github.com/me/lenses",
            "commit": "a" * 40,
            "path": "lenses/vision.py:rgb_to_gray",
        }
        lens["getterCode"] = code
        lens["putterCode"] = dict(code, path="lenses/vision.py:gray_to_rgb", branch="main")
    return lens


def rejects(collection: str, record: Any, path: str, message: str, **kwargs: Any) -> None:
    with pytest.raises(LexiconValidationError) as info:
        validate_record(collection, record, **kwargs)
    err = info.value
    assert err.nsid == collection
    assert err.path == path, str(err)
    assert message in str(err)
    assert str(err).startswith(f"{collection}: {path}" if path else collection)


# --------------------------------------------------------------------------- documents


def test_shipped_documents_load_and_are_complete() -> None:
    assert lexicon_ids() == sorted(
        [
            SCHEMA,
            RECORD,
            LENS,
            TYPE,
            "ac.foundation.dataset.storageExternal",
            "ac.foundation.dataset.storageBlobs",
            MIRROR,
        ]
    )
    folder = resources.files("atdata.atmosphere") / "lexicons"
    for nsid in lexicon_ids():
        doc = json.loads((folder / f"{nsid}.json").read_text())
        assert doc == get_lexicon(nsid)
        assert doc["lexicon"] == 1 and doc["id"] == nsid
    for nsid in (SCHEMA, RECORD, LENS):
        assert get_lexicon(nsid)["defs"]["main"]["type"] == "record"
    get_lexicon(RECORD)["defs"]["main"]["key"] = "changed"  # a copy: the registry is untouched
    assert get_lexicon(RECORD)["defs"]["main"]["key"] == "any"
    with pytest.raises(KeyError):
        get_lexicon("com.example.missing")


MIRROR = "ac.foundation.dataset.mirror"


def mirror(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "$type": MIRROR,
        "subject": {
            "uri": "at://did:plc:abc/ac.foundation.dataset.record/3kabc",
            "cid": "bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
        },
        "storage": {
            "$type": "ac.foundation.dataset.storageExternal",
            "urls": ["https://x.org/copy-0.tar"],
        },
        "sha256": ["ab" * 32],
        "name": "copy of mnist",
        "createdAt": "2026-01-01T00:00:00Z",
    }
    record.update(changes)
    return record


def test_mirror_records_are_checked() -> None:
    validate_record(MIRROR, mirror(), rkey="3kabcdefghi22")
    assert get_lexicon(MIRROR)["defs"]["main"]["type"] == "record"
    rejects(MIRROR, mirror(subject={"uri": "at://did:plc:abc/x.y.z/1"}), "subject.cid", "required")
    rejects(
        MIRROR,
        mirror(subject={"uri": "https://x.org", "cid": mirror()["subject"]["cid"]}),
        "subject.uri",
        "",
    )
    rejects(MIRROR, mirror(sha256=[]), "sha256", "")
    rejects(MIRROR, mirror(sha256=["abc"]), "sha256[0]", "")
    no_digests = mirror()
    del no_digests["sha256"]
    rejects(MIRROR, no_digests, "sha256", "required")


# --------------------------------------------------------------------------- seed compatibility


@pytest.mark.parametrize(
    ("collection", "make"),
    [
        (SCHEMA, seed_schema),
        (RECORD, seed_dataset_external),
        (RECORD, seed_dataset_blobs),
        (LENS, seed_lens),
        (LENS, lambda: seed_lens(with_code=False)),
    ],
)
def test_seed_era_records_validate(collection: str, make: Any) -> None:
    validate_record(collection, make(), rkey="3kabcdefghij2")
    validate_record(collection, make(), rkey="my-dataset")  # seed publishers accepted custom rkeys


def test_new_optional_fields_validate() -> None:
    schema = seed_schema()
    schema["module"] = "mypkg.samples.ImageSample"
    schema["fields"][1]["default"] = json.dumps("unknown")
    schema["fields"][2]["default"] = "0.5"  # a float default is fine as JSON text
    schema["fields"][0]["fieldType"].pop("dtype")  # bare NDArray: dtype unknown
    schema["fields"].append(
        {"name": "child", "fieldType": {"$type": f"{TYPE}#ref", "ref": SCHEMA_URI}}
    )
    validate_record(SCHEMA, schema)

    record = seed_dataset_external()
    record["storage"]["sha256"] = ["ab" * 32] * 10
    record["size"] = {"samples": 1000, "bytes": 123_456_789, "shards": 10}
    record["splits"] = [
        {"name": "train", "shards": list(range(8)), "samples": 800},
        {"name": "test", "shards": [8, 9]},
    ]
    record["schemaCid"] = RECORD_CID
    validate_record(RECORD, record)

    unknown_variant = seed_dataset_external()
    unknown_variant["storage"] = {
        "$type": "ac.foundation.dataset.storageHttp",
        "shards": [{"url": "https://x"}],
    }
    validate_record(RECORD, unknown_variant)  # open union: a future storage kind is accepted


def test_to_record_json_encodes_bytes_and_tuples() -> None:
    record = to_record_json(
        {"$type": RECORD, "metadata": b"\x81\xa1a\x01", "tags": ("a", "b"), "nested": [b""]}
    )
    assert record == {
        "$type": RECORD,
        "metadata": {"$bytes": "gaFhAQ"},
        "tags": ["a", "b"],
        "nested": [{"$bytes": ""}],
    }
    json.dumps(record)


# --------------------------------------------------------------------------- rejections


def test_float_anywhere_is_rejected_with_its_path() -> None:
    schema = seed_schema()
    schema["metadata"] = {"stats": {"mean": [1, 2.5]}}
    rejects(SCHEMA, schema, "metadata.stats.mean[1]", "floats are not allowed")
    record = seed_dataset_external()
    record["size"] = {"samples": 10.0}
    rejects(RECORD, record, "size.samples", "floats are not allowed")
    rejects(
        "com.example.anything", {"$type": "com.example.anything", "x": float("nan")}, "x", "floats"
    )


def test_missing_required_fields() -> None:
    schema = seed_schema()
    del schema["version"]
    rejects(SCHEMA, schema, "version", "required field is missing")
    schema = seed_schema()
    del schema["fields"][1]["fieldType"]
    rejects(SCHEMA, schema, "fields[1].fieldType", "required field is missing")
    record = seed_dataset_external()
    del record["storage"]["urls"]
    rejects(RECORD, record, "storage.urls", "required field is missing")
    lens = seed_lens()
    del lens["getterCode"]["commit"]
    rejects(LENS, lens, "getterCode.commit", "required field is missing")
    record = seed_dataset_external()
    record["name"] = None
    rejects(RECORD, record, "name", "required field is missing")


def test_type_and_constraint_violations() -> None:
    schema = seed_schema()
    schema["fields"][3]["fieldType"]["items"]["primitive"] = 5
    rejects(SCHEMA, schema, "fields[3].fieldType.items.primitive", "expected string, got integer")
    schema = seed_schema()
    schema["fields"][4]["fieldType"]["shape"] = [224, -2]
    rejects(SCHEMA, schema, "fields[4].fieldType.shape[1]", "below the minimum -1")
    schema = seed_schema()
    schema["fields"][0]["fieldType"] = {"dtype": "float32"}
    rejects(SCHEMA, schema, "fields[0].fieldType.$type", "needs a $type")
    schema = seed_schema()
    schema["createdAt"] = "2026-01-26 12:00:00"
    rejects(SCHEMA, schema, "createdAt", "not a valid datetime")
    schema = seed_schema()
    schema["metadata"] = "not an object"
    rejects(SCHEMA, schema, "metadata", "expected object, got string")
    schema = seed_schema()
    schema["name"] = "x" * 201
    rejects(SCHEMA, schema, "name", "201 bytes (UTF-8), more than the maximum 200")
    schema = seed_schema()
    schema["name"] = "é" * 101  # 202 bytes: lengths are UTF-8 bytes
    rejects(SCHEMA, schema, "name", "more than the maximum 200")

    record = seed_dataset_external()
    record["tags"] = [f"t{i}" for i in range(31)]
    rejects(RECORD, record, "tags", "31 elements, more than the maximum 30")
    record = seed_dataset_external()
    record["schemaRef"] = "https://example.com/schema"
    rejects(RECORD, record, "schemaRef", "not a valid at-uri")
    record = seed_dataset_external()
    record["storage"]["urls"] = ["/home/me/private/data.tar"]  # a local path is not a URL
    rejects(RECORD, record, "storage.urls[0]", "not a valid uri")
    record = seed_dataset_external()
    record["storage"]["urls"] = []
    rejects(RECORD, record, "storage.urls", "fewer than the minimum 1")
    record = seed_dataset_external()
    record["metadata"] = {"$bytes": "***"}
    rejects(RECORD, record, "metadata", "not valid base64")
    record = seed_dataset_external()
    record["metadata"] = {"a": 1}
    rejects(RECORD, record, "metadata", 'bytes must be {"$bytes"')
    record = seed_dataset_external()
    record["splits"] = [{"name": "train", "shards": []}]
    rejects(RECORD, record, "splits[0].shards", "fewer than the minimum 1")


def test_blob_refs_must_be_well_formed() -> None:
    record = seed_dataset_blobs()
    record["storage"]["blobs"][1]["ref"] = {"$link": RECORD_CID}  # dag-cbor CID, not a blob CID
    rejects(RECORD, record, "storage.blobs[1].ref.$link", "raw codec")
    record = seed_dataset_blobs()
    record["storage"]["blobs"][0]["ref"] = BLOB_CID  # legacy / wrong shape
    rejects(RECORD, record, "storage.blobs[0].ref", '{"$link": "<cid>"}')
    record = seed_dataset_blobs()
    record["storage"]["blobs"][0]["size"] = -1
    rejects(RECORD, record, "storage.blobs[0].size", "non-negative integer")
    record = seed_dataset_blobs()
    record["storage"]["blobs"][0]["ref"] = {"$link": "bafkreinotacid"}
    rejects(RECORD, record, "storage.blobs[0].ref.$link", "not a CID")
    record = seed_dataset_blobs()
    del record["storage"]["blobs"][0]["$type"]
    rejects(RECORD, record, "storage.blobs[0].$type", '"$type": "blob"')


def test_type_must_match_collection() -> None:
    record = seed_dataset_external()
    del record["$type"]
    rejects(RECORD, record, "$type", "missing")
    rejects(RECORD, dict(seed_dataset_external(), **{"$type": SCHEMA}), "$type", "does not match")
    with pytest.raises(LexiconValidationError, match="not a valid NSID"):
        validate_record("notansid", {"$type": "notansid"})
    rejects(RECORD, ["not", "an", "object"], "", "must be an object")  # type: ignore[arg-type]


def test_bad_record_keys() -> None:
    for bad in ("a/b", "..", ".", "", "a b", "x" * 513, "v1.0@beta"):
        rejects(RECORD, seed_dataset_external(), "rkey", "not a valid record key", rkey=bad)


def test_oversized_record() -> None:
    record = seed_dataset_external()
    record["storage"]["urls"] = [f"https://example.com/{'x' * 900}/{i}.tar" for i in range(1200)]
    with pytest.raises(LexiconValidationError, match=f"over the {MAX_RECORD_BYTES:,}-byte limit"):
        validate_record(RECORD, record)
    # the size limit holds for collections without a shipped lexicon too
    big = {"$type": "com.example.blob", "text": "x" * (MAX_RECORD_BYTES + 1)}
    rejects("com.example.blob", big, "", "over the")


def test_data_model_rules() -> None:
    def bad(value: Any, path: str, message: str) -> None:
        with pytest.raises(LexiconValidationError) as info:
            check_data_model("com.example.x", value)
        assert info.value.path == path and message in str(info.value)

    bad({"a": 2**63}, "a", "does not fit in 64 bits")
    bad({"$ref": "x"}, "$ref", "reserved")
    bad({1: "x"}, "", "keys must be strings")
    bad({"a": b"raw"}, "a", "to_record_json")
    bad({"a": {1, 2}}, "a", "not an ATProto data type")
    bad({"a": {"$link": RECORD_CID, "extra": 1}}, "a", '{"$link"')
    bad({"a": {"$type": ""}}, "a.$type", "non-empty string")
    deep: dict[str, Any] = {}
    cursor = deep
    for _ in range(40):
        cursor["n"] = {}
        cursor = cursor["n"]
    with pytest.raises(LexiconValidationError, match="nested deeper than 32"):
        check_data_model("com.example.x", deep)
    check_data_model(
        "com.example.x",
        {"ok": [None, True, -(2**63), "s", {"$bytes": "AA"}, {"$link": RECORD_CID}]},
    )


def test_lexicon_check_can_be_turned_off_but_data_model_cannot() -> None:
    record = seed_dataset_external()
    del record["name"]
    validate_record(RECORD, record, lexicon=False)
    record["x"] = 0.5
    with pytest.raises(LexiconValidationError, match="floats"):
        validate_record(RECORD, record, lexicon=False)


def test_validation_does_not_modify_the_record() -> None:
    record = seed_dataset_external()
    before = copy.deepcopy(record)
    validate_record(RECORD, record)
    assert record == before
