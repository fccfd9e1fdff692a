"""The schema codec: type -> record -> type, seed-era records, and hostile records."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import atdata
from atdata import SchemaError, packable
from atdata.sample import fields_of
from atdata.schema import (
    ATPROTO_TYPE_PREFIX,
    clear_type_cache,
    schema_record,
    schema_to_type,
)


@packable
class Box:
    lo: NDArray[np.float64]
    hi: list[int]


@packable
class Everything:
    """Every kind of field."""

    maybe: int | None
    pixels: NDArray[np.uint8]
    anything: NDArray
    tags: list[str | None]
    blobs: dict[str, bytes]
    box: Box
    boxes: list[Box] | None
    name: str = "x"
    raw: bytes = b"\x00\xff"
    weight: float = 1
    flags: list[bool] = dataclasses.field(default_factory=lambda: [True])
    extra: dict[str, int] | None = None


def everything() -> Everything:
    return Everything(
        maybe=None,
        pixels=np.arange(12, dtype=np.uint8).reshape(3, 4),
        anything=np.linspace(0, 1, 6).reshape(2, 3),
        tags=["a", None],
        blobs={"k": b"v"},
        box=Box(np.ones(2), [1, 2]),
        boxes=[Box(np.zeros(1), [])],
    )


def through_json(record: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(record))


# --------------------------------------------------------------------------- writing records


def test_record_layout() -> None:
    record = schema_record(Everything, version="1.2.3")
    assert record["name"] == "Everything"
    assert record["version"] == "1.2.3"
    assert record["sampleType"] == f"{__name__}.Everything"
    assert record["atdataSchemaVersion"] == 2
    assert record["description"] == "Every kind of field."
    assert record["createdAt"].endswith("+00:00")
    fields = {f["name"]: f for f in record["fields"]}
    assert [f["name"] for f in record["fields"]] == [s.name for s in fields_of(Everything)]
    assert fields["maybe"] == {
        "name": "maybe",
        "fieldType": {"$type": "local#primitive", "primitive": "int"},
        "optional": True,
    }
    assert fields["pixels"]["fieldType"] == {"$type": "local#ndarray", "dtype": "uint8"}
    assert fields["anything"]["fieldType"] == {"$type": "local#ndarray"}
    assert fields["tags"]["fieldType"]["items"] == {
        "$type": "local#primitive",
        "primitive": "str",
        "optional": True,
    }
    assert fields["blobs"]["fieldType"]["$type"] == "local#map"
    assert fields["box"]["fieldType"]["$type"] == "local#sample"
    assert fields["box"]["fieldType"]["sampleType"] == f"{__name__}.Box"
    assert [f["name"] for f in fields["box"]["fieldType"]["fields"]] == ["lo", "hi"]
    assert fields["raw"]["default"] == {"$bytes": "AP8="}
    assert fields["weight"]["default"] == 1.0
    assert fields["flags"]["default"] == [True]
    assert fields["extra"]["default"] is None
    assert "default" not in fields["maybe"]
    json.dumps(record)  # JSON-safe


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.uint16, np.int8, np.int64, np.float16, np.bool_, np.complex64]
)
def test_dtypes_are_recorded_exactly(dtype: type) -> None:
    T = types.new_class(
        "T", (), {}, lambda ns: ns.update({"__annotations__": {"a": NDArray[dtype]}})
    )
    record = schema_record(packable(T), version="1.0.0")
    assert record["fields"][0]["fieldType"]["dtype"] == np.dtype(dtype).name


def test_atproto_prefix() -> None:
    record = schema_record(Box, version="1.0.0", type_prefix=ATPROTO_TYPE_PREFIX)
    assert record["fields"][0]["fieldType"]["$type"] == f"{ATPROTO_TYPE_PREFIX}#ndarray"
    assert schema_to_type(record).from_bytes(Box(np.ones(1), [3]).packed).hi == [3]


def test_docstring_fallback_ignores_dataclass_signature() -> None:
    assert "description" not in schema_record(Box, version="1.0.0")
    assert schema_record(Box, version="1.0.0", description="d")["description"] == "d"


def test_bad_inputs() -> None:
    with pytest.raises(TypeError):
        schema_record(dict, version="1.0.0")
    with pytest.raises(SchemaError, match="semantic version"):
        schema_record(Box, version="latest")


def test_local_classes_record_module_and_name() -> None:
    @packable
    class Local:
        """A type defined in a function.

        Second paragraph."""

        x: int

    record = schema_record(Local, version="1.0.0")
    assert record["sampleType"] == f"{__name__}.Local"
    assert record["description"] == "A type defined in a function.\n\nSecond paragraph."
    assert schema_to_type(record).__name__ == "Local"


def test_recursive_type_has_no_schema() -> None:
    @packable
    class Node:
        value: int
        child: Node | None = None

    with pytest.raises(SchemaError, match="contains itself"):
        schema_record(Node, version="1.0.0")


# --------------------------------------------------------------------------- decoding records


def test_round_trip_through_json() -> None:
    record = through_json(schema_record(Everything, version="1.0.0"))
    Decoded = schema_to_type(record)
    assert Decoded is not Everything
    assert Decoded.__name__ == "Everything"
    sample = everything()
    decoded = Decoded.from_bytes(sample.packed)
    assert decoded.pixels.dtype == np.uint8 and decoded.pixels.shape == (3, 4)
    assert decoded.anything.dtype == np.float64 and decoded.anything.shape == (2, 3)
    assert decoded.box.hi == [1, 2] and decoded.boxes[0].lo.shape == (1,)
    assert decoded.packed == sample.packed
    again = schema_record(Decoded, version="1.0.0")
    assert again["fields"] == record["fields"]
    assert again["sampleType"] == record["sampleType"]


def test_defaults_and_field_order() -> None:
    Decoded = schema_to_type(through_json(schema_record(Everything, version="1.0.0")))
    names = [s.name for s in fields_of(Decoded)]
    assert names == [s.name for s in fields_of(Everything)]
    a = Decoded(
        None,
        np.zeros(1, np.uint8),
        np.zeros(1),
        [],
        {},
        Decoded.__dataclass_fields__["box"].type(lo=np.zeros(1), hi=[]),
        None,
    )
    b = Decoded.from_data(
        {
            "maybe": 1,
            "pixels": np.zeros(1, np.uint8),
            "anything": np.zeros(1),
            "tags": [],
            "blobs": {},
            "box": {"lo": np.zeros(1), "hi": []},
            "boxes": None,
        }
    )
    for s in (a, b):
        assert (s.name, s.raw, s.weight, s.flags, s.extra) == ("x", b"\x00\xff", 1.0, [True], None)
    a.flags.append(False)
    assert b.flags == [True]  # mutable defaults are not shared


def test_optional_and_defaults_before_required() -> None:
    record = {
        "name": "Mixed",
        "version": "1.0.0",
        "fields": [
            {
                "name": "note",
                "fieldType": {"$type": "local#primitive", "primitive": "str"},
                "optional": True,
            },
            {
                "name": "n",
                "fieldType": {"$type": "local#primitive", "primitive": "int"},
                "optional": False,
                "default": 3,
            },
            {
                "name": "label",
                "fieldType": {"$type": "local#primitive", "primitive": "int"},
                "optional": False,
            },
        ],
        "atdataSchemaVersion": 2,
    }
    Mixed = schema_to_type(record)
    assert [s.name for s in fields_of(Mixed)] == ["note", "n", "label"]
    m = Mixed(None, label=5)
    assert (m.note, m.n, m.label) == (None, 3, 5)
    assert Mixed.from_bytes(m.packed).label == 5


def test_dtype_is_enforced_only_for_accurate_records() -> None:
    record = through_json(schema_record(Box, version="1.0.0"))
    Decoded = schema_to_type(record)
    with pytest.raises(atdata.SampleError, match="float64"):
        _ = Decoded(lo=np.zeros(2, np.float32), hi=[]).packed
    del record["atdataSchemaVersion"]  # a seed-era record: its dtypes were guesses
    Legacy = schema_to_type(record)
    assert Legacy(lo=np.zeros(2, np.float32), hi=[]).packed


SEED_RECORD = {
    "name": "ImageSample",
    "version": "1.0.0",
    "fields": [
        {
            "name": "image",
            "fieldType": {"$type": "local#ndarray", "dtype": "float32"},
            "optional": False,
        },
        {
            "name": "label",
            "fieldType": {"$type": "local#primitive", "primitive": "str"},
            "optional": False,
        },
        {
            "name": "tags",
            "fieldType": {
                "$type": "local#array",
                "items": {"$type": "local#primitive", "primitive": "str"},
            },
            "optional": False,
        },
        {
            "name": "score",
            "fieldType": {"kind": "primitive", "primitive": "float"},
            "optional": True,
        },
    ],
    "description": "...",
    "createdAt": "2026-01-26T00:00:00+00:00",
}


def test_reads_seed_era_records() -> None:
    ImageSample = schema_to_type(SEED_RECORD)
    # the seed wrote bare NDArray as "float32" whatever the data: any dtype decodes
    payload = ImageSample(
        image=np.zeros((2, 2), np.uint8), label="cat", tags=["a"], score=None
    ).packed
    got = ImageSample.from_bytes(payload)
    assert got.image.dtype == np.uint8 and got.tags == ["a"] and got.score is None
    assert ImageSample.__module__ == "atdata.schema"


def test_reads_seed_era_atproto_and_legacy_names() -> None:
    record = json.loads(
        json.dumps(SEED_RECORD).replace("local#", "ac.foundation.dataset.schemaType#")
    )
    record["name"] = "mymodule.ImageSample"  # legacy module-qualified names
    assert schema_to_type(record).__name__ == "ImageSample"


def test_cache() -> None:
    record = schema_record(Box, version="1.0.0")
    first = schema_to_type(record)
    assert schema_to_type(through_json(record)) is first
    other = json.loads(json.dumps(record))
    other["fields"] = other["fields"][:1]
    assert schema_to_type(other) is not first
    clear_type_cache()
    assert schema_to_type(record) is not first


# --------------------------------------------------------------------------- hostile and broken records


def field(name: Any, kind: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    ft = kind if kind is not None else {"$type": "local#primitive", "primitive": "int"}
    return {"name": name, "fieldType": ft, "optional": False, **extra}


def record_with(*fields: dict[str, Any], name: str = "T") -> dict[str, Any]:
    return {"name": name, "version": "1.0.0", "fields": list(fields), "atdataSchemaVersion": 2}


@pytest.mark.parametrize(
    ("rec", "match"),
    [
        (
            record_with(field("a", {"$type": "local#tensor"})),
            "field 'a': unknown field kind 'tensor'",
        ),
        (
            record_with(field("a", {"$type": "local#primitive", "primitive": "decimal"})),
            "unknown primitive",
        ),
        (record_with(field("a", {"$type": "local#ref", "ref": "x"})), "'ref' field types"),
        (record_with(field("a", {"$type": "local#ndarray", "dtype": "O"})), "Python objects"),
        (record_with(field("a", {"$type": "local#ndarray", "dtype": "nonsense"})), "unknown dtype"),
        (record_with(field("a", "not an object")), "'fieldType' must be an object"),
        (record_with(field("class")), "keyword"),
        (record_with(field("__init__")), "dunder"),
        (record_with(field("packed")), "clashes"),
        (record_with(field("a"), field("a")), "appears twice"),
        (record_with(field("a b")), "not a Python identifier"),
        (record_with(field(7)), "not a Python identifier"),
        (record_with(field("a", default="one")), "does not fit"),
        (record_with(field("a", default=None)), "not optional"),
        (record_with(field("a"), name="import os"), "class name"),
        (record_with(field("a"), name=""), "no 'name'"),
        ({"name": "T", "fields": "a,b"}, "'fields' must be a list"),
        ({**record_with(field("a")), "sampleType": "os.system('x').T"}, "dotted module path"),
        ({**record_with(field("a")), "atdataSchemaVersion": "2"}, "positive integer"),
        ([1, 2], "JSON object"),
    ],
)
def test_broken_records_raise_schema_error(rec: Any, match: str) -> None:
    with pytest.raises(SchemaError, match=match):
        schema_to_type(rec)


def test_nothing_from_a_record_is_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {marker}')"
    hostile = [
        record_with(field(payload)),
        record_with(field("a"), name=payload),
        {**record_with(field("a")), "sampleType": payload},
        record_with(field("a", {"$type": "local#ndarray", "dtype": payload})),
        record_with(field("a", default={"$bytes": payload})),
        record_with(field("a", {"$type": "local#sample", "name": payload, "fields": []})),
    ]
    for rec in hostile:
        with pytest.raises(SchemaError):
            schema_to_type(rec)
    assert not marker.exists()
    source = (Path(atdata.__file__).parent / "schema.py").read_text()
    assert "exec(" not in source and "eval(" not in source


def test_deep_nesting_is_refused() -> None:
    ft: dict[str, Any] = {"$type": "local#primitive", "primitive": "int"}
    for _ in range(100):
        ft = {"$type": "local#array", "items": ft}
    with pytest.raises(SchemaError, match="nested more than"):
        schema_to_type(record_with(field("a", ft)))


# --------------------------------------------------------------------------- property: any type round-trips

_LEAVES = [str, int, float, bool, bytes, NDArray, NDArray[np.uint8], NDArray[np.float32], Box]
annotations = st.recursive(
    st.sampled_from(_LEAVES),
    lambda inner: (
        st.builds(lambda t: list[t], inner)
        | st.builds(lambda t: dict[str, t], inner)
        | st.builds(lambda t: typing.Optional[t], inner)  # noqa: UP045
    ),
    max_leaves=4,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(annotations, st.booleans()), min_size=1, max_size=6))
def test_any_type_round_trips(spec: list[tuple[Any, bool]]) -> None:
    ns: dict[str, Any] = {"__annotations__": {}}
    for i, (tp, with_default) in enumerate(spec):
        ns["__annotations__"][f"f{i}"] = tp
        if with_default:
            ns[f"f{i}"] = (
                dataclasses.field(default=None, kw_only=True)
                if _optional(tp)
                else dataclasses.field(kw_only=True)
            )
    T = packable(types.new_class("Random", (), {}, lambda n: n.update(ns)))
    record = through_json(schema_record(T, version="0.1.0"))
    Decoded = schema_to_type(record)
    assert schema_record(Decoded, version="0.1.0")["fields"] == record["fields"]
    assert [s.type.describe() for s in fields_of(Decoded)] == [
        s.type.describe() for s in fields_of(T)
    ]


def _optional(tp: Any) -> bool:
    return type(None) in typing.get_args(tp)
