"""Sample types as Croissant fields: one ``cr:Field`` per field, data types and array shapes.

The mapping (and what Croissant cannot express) is in docs/reference/croissant.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from atdata.errors import SchemaError
from atdata.sample import FieldType, fields_of, is_packable
from atdata.schema import SCHEMA_FORMAT_VERSION, schema_to_type

__all__ = ["SAMPLES", "SPLITS", "record_set", "sample_type_of"]

SAMPLES = "samples"
"""``@id`` of the file set of the samples, which every field reads from."""
SPLITS = "splits"
"""``@id`` of the split record set."""

_SCHEMA = "ac.foundation.dataset.sampleSchema"
_MAX_DEPTH = 64
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PRIMITIVES = {
    "str": "sc:Text",
    "int": "sc:Integer",
    "float": "sc:Float",
    "bool": "sc:Boolean",
    "bytes": "sc:Text",  # no byte-string type in Croissant; mlcroissant reads sc:Text as bytes
}
_DTYPES = {
    "b": "sc:Boolean",
    "i1": "cr:Int8",
    "i2": "cr:Int16",
    "i4": "cr:Int32",
    "i8": "cr:Int64",
    "u1": "cr:UInt8",
    "u2": "cr:UInt16",
    "u4": "cr:UInt32",
    "u8": "cr:UInt64",
    "f2": "cr:Float16",
    "f4": "cr:Float32",
    "f8": "cr:Float64",
}
_NPY_NOTE = "stored as .npy bytes; Croissant has no data type for its elements"


def _json_path(parent: str, name: str) -> str:
    return f"{parent}.{name}" if _PLAIN_NAME.match(name) else f"{parent}.'{name}'"


@dataclass
class _Shape:
    """A field's Croissant form: a data type or sub-fields, and its array dimensions."""

    data_type: str | None
    dims: tuple[int, ...] | None  # () for a scalar, None for an array of unknown rank
    sub: list[dict[str, Any]] | None = None
    note: str | None = None


def _shape_of(ft: FieldType, fid: str, path: str) -> _Shape:
    kind = ft.kind
    if kind in _PRIMITIVES:
        return _Shape(_PRIMITIVES[kind], (), note="raw bytes" if kind == "bytes" else None)
    if kind == "ndarray":
        dtype = ft.dtype
        data_type = None
        if dtype is not None:
            data_type = _DTYPES.get(f"{dtype.kind}{dtype.itemsize}" if dtype.kind != "b" else "b")
            if dtype.kind == "U":
                data_type = "sc:Text"
        if data_type is None:
            return _Shape("sc:Text", (), note=_NPY_NOTE)
        return _Shape(data_type, ft.shape)
    if kind == "list":
        assert ft.item is not None
        inner = _shape_of(ft.item, fid, f"{path}[*]")
        dims = (-1, *inner.dims) if inner.dims is not None else None
        return _Shape(inner.data_type, dims, inner.sub, inner.note)
    if kind == "dict":
        assert ft.item is not None
        key = {
            "@type": "cr:Field",
            "@id": f"{fid}/key",
            "name": "key",
            "description": "the map's key",
            "dataType": "sc:Text",
        }
        value = _field(ft.item, f"{fid}/value", "value", f"{path}.*")
        return _Shape(None, (-1,), [key, value], note="a map, as a list of key/value pairs")
    if kind == "sample":
        assert ft.sample_type is not None
        return _Shape(None, (), _fields(ft.sample_type, fid, path))
    raise SchemaError(f"{fid}: unknown field kind {kind!r}")  # pragma: no cover - fixed kinds


def _field(ft: FieldType, fid: str, name: str, path: str) -> dict[str, Any]:
    shape = _shape_of(ft, fid, path)
    text = f"atdata type: {ft.describe()}"
    if shape.note:
        text += f" ({shape.note})"
    out: dict[str, Any] = {"@type": "cr:Field", "@id": fid, "name": name, "description": text}
    if shape.sub is not None:
        out["subField"] = shape.sub
    else:
        out["dataType"] = shape.data_type
    if shape.dims != ():
        out["isArray"] = True
        if shape.dims is not None:
            out["arrayShape"] = ",".join(str(d) for d in shape.dims)
    out["source"] = {"fileSet": {"@id": SAMPLES}, "extract": {"jsonPath": path}}
    return out


def _fields(sample_type: type, rs: str, path: str) -> list[dict[str, Any]]:
    return [
        _field(spec.type, f"{rs}/{spec.name}", spec.name, _json_path(path, spec.name))
        for spec in fields_of(sample_type)
    ]


def sample_type_of(schema: Any) -> type:
    """The sample type of a ``@packable`` type, a local schema record or a sampleSchema record."""
    if is_packable(schema):
        return schema  # type: ignore[no-any-return]
    if not isinstance(schema, Mapping):
        raise TypeError(f"schema must be a schema record or a @packable type, not {schema!r}")
    inner = schema.get("value")
    value: Mapping[str, Any] = inner if isinstance(inner, Mapping) else schema
    if value.get("$type") == _SCHEMA:
        value = _codec_form(value)
    return schema_to_type(value)


def _codec_form(record: Mapping[str, Any]) -> dict[str, Any]:
    """A sampleSchema record in the schema codec's form, without defaults (not described)."""

    def strip(fields: Any, depth: int) -> Any:
        if not isinstance(fields, list) or depth > _MAX_DEPTH:
            return fields
        out = []
        for f in fields:
            if isinstance(f, Mapping):
                f = {k: v for k, v in f.items() if k != "default"}
                f["fieldType"] = strip_type(f.get("fieldType"), depth + 1)
            out.append(f)
        return out

    def strip_type(ft: Any, depth: int) -> Any:
        if not isinstance(ft, Mapping) or depth > _MAX_DEPTH:
            return ft
        ft = dict(ft)
        for key in ("items", "values"):
            if key in ft:
                ft[key] = strip_type(ft[key], depth + 1)
        if "fields" in ft:
            ft["fields"] = strip(ft["fields"], depth + 1)
        return ft

    codec = {k: record[k] for k in ("name", "version", "description") if k in record}
    codec["fields"] = strip(record.get("fields"), 0)
    module = record.get("module")
    if module is not None:  # written by this atdata: exact dtypes, named by its identity
        codec["sampleType"] = module
        codec["atdataSchemaVersion"] = SCHEMA_FORMAT_VERSION
        if isinstance(module, str):
            codec["name"] = module.rpartition(".")[2]
    return codec


def record_set(sample_type: type, schema_ref: str) -> dict[str, Any]:
    """The ``cr:RecordSet`` of a sample type: its ``__key__``, then one field per field."""
    rs = sample_type.__name__
    if rs in (SAMPLES, SPLITS):  # the @ids of the file set and the split record set
        rs += "-records"
    key = {
        "@type": "cr:Field",
        "@id": f"{rs}/__key__",
        "name": "__key__",
        "description": "the sample's key: its tar member name without '.msgpack'",
        "dataType": "sc:Text",
        "source": {
            "fileSet": {"@id": SAMPLES},
            "extract": {"fileProperty": "filename"},
            "transform": {"regex": r"^(.*)\.msgpack$"},
        },
    }
    return {
        "@type": "cr:RecordSet",
        "@id": rs,
        "name": rs,
        "description": f"One record per sample, of the atdata sample schema {schema_ref}",
        "key": {"@id": f"{rs}/__key__"},
        "field": [key, *_fields(sample_type, rs, "$")],
    }
