"""Sample schemas as data: a ``@packable`` type as a JSON record, and a type rebuilt from one.

A schema record is the seed-era local JSON, with accurate dtypes, defaults,
maps, nested sample types and the ``{module}.{class}`` identity added::

    {"name": "FeatureSample", "version": "1.0.0",
     "sampleType": "mymodule.FeatureSample", "atdataSchemaVersion": 2,
     "description": "...", "createdAt": "2026-01-26T12:00:00+00:00",
     "fields": [
       {"name": "features", "fieldType": {"$type": "local#ndarray", "dtype": "float32"},
        "optional": false},
       {"name": "label", "fieldType": {"$type": "local#primitive", "primitive": "int"},
        "optional": false, "default": 0}]}

Field types (``$type`` is ``"<prefix>#<kind>"``; the prefix is ``local`` in the
local index and ``ac.foundation.dataset.schemaType`` in ATProto records):

- ``primitive`` with ``primitive`` one of ``str int float bool bytes``;
- ``ndarray`` with ``dtype`` (a NumPy dtype name such as ``uint8``), left out
  for a bare ``NDArray``, and ``shape`` (sizes, ``-1`` for any) when the
  annotation declares one: ``Annotated[NDArray[np.uint8], Shape(3, None, None)]``;
- ``array`` with ``items`` (``list[T]``), ``map`` with ``values`` (``dict[str, T]``);
- ``sample``: a nested sample type, inline, with its own ``name``,
  ``sampleType`` and ``fields`` (so one record describes the whole type);
- a nested field type carries ``"optional": true`` when its values may be None.

A field's ``default`` is recorded when it is a JSON value (bytes as
``{"$bytes": base64}``); a ``default_factory`` is called once and its result
recorded. Other defaults (arrays, nested samples) are not recorded.

:func:`schema_to_type` never executes anything from a record: names must be
NFKC-normalised Python identifiers, and keywords, dunder names, ``_atdata*``
names and the names of ``PackableSample`` attributes are rejected (not
mangled, since field names are the keys of the stored data). A record nested
more than 64 deep or holding more than 200,000 values, a structured,
sub-array or void dtype, items over 64 KiB, or a ``shape`` that is not a short
list of sizes is a :class:`SchemaError`. A rebuilt type pickles as its record
(spawned DataLoader workers and Dask rebuild it there). Fields may come in any order: fields from the
first one with a default on are keyword-only. Records written by the existing
atdata (no ``atdataSchemaVersion``) are read too; their dtypes were often wrong,
so arrays of such types accept any dtype.

>>> import numpy as np
>>> from numpy.typing import NDArray
>>> from atdata import packable
>>> @packable
... class Pixel:
...     rgb: NDArray[np.uint8]
...     label: str = "none"
>>> record = schema_record(Pixel, version="1.0.0")
>>> record["fields"][0]["fieldType"]
{'$type': 'local#ndarray', 'dtype': 'uint8'}
>>> Decoded = schema_to_type(record)
>>> Decoded.from_bytes(Pixel(np.zeros(3, np.uint8)).packed).label
'none'
"""

from __future__ import annotations

import base64
import binascii
import copy
import copyreg
import dataclasses
import hashlib
import inspect
import json
import keyword
import math
import re
import threading
import types
import typing
import unicodedata
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
from numpy.typing import NDArray

from atdata.errors import SchemaError
from atdata.sample import (
    FieldSpec,
    FieldType,
    PackableSample,
    Shape,
    fields_of,
    is_packable,
    packable,
)

__all__ = [
    "ATPROTO_TYPE_PREFIX",
    "LOCAL_TYPE_PREFIX",
    "SCHEMA_FORMAT_VERSION",
    "check_version",
    "clear_type_cache",
    "schema_record",
    "schema_to_type",
]

LOCAL_TYPE_PREFIX = "local"
ATPROTO_TYPE_PREFIX = "ac.foundation.dataset.schemaType"
SCHEMA_FORMAT_VERSION = 2
"""``atdataSchemaVersion`` of the records written here (records without it are version 1)."""

_PRIMITIVE_TYPES: dict[str, type] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "bytes": bytes,
}
_SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
_RESERVED = frozenset(dir(PackableSample))
_MAX_DEPTH = 32
_MAX_JSON_DEPTH = 64
_MAX_JSON_NODES = 200_000
_MAX_ITEMSIZE = 1 << 16
_MAX_DIMS = 32
_MAX_DIM = (1 << 31) - 1
_MAX_FIELDS = 1000
_MAX_NAME = 200
_CACHE_SIZE = 256
_NO_DEFAULT: Any = object()
_DEFAULT_MODULE = "atdata.schema"


# --------------------------------------------------------------------------- type -> record


def schema_record(
    sample_type: type,
    *,
    version: str,
    description: str | None = None,
    type_prefix: str = LOCAL_TYPE_PREFIX,
) -> dict[str, Any]:
    """Describe a ``@packable`` type as a JSON-safe schema record.

    ``description`` defaults to the class docstring. ``type_prefix`` is the
    part of each ``$type`` before ``#``.

    >>> from atdata import packable
    >>> @packable
    ... class Pair:
    ...     name: str
    ...     value: int | None
    >>> [f["optional"] for f in schema_record(Pair, version="1.0.0")["fields"]]
    [False, True]
    """
    if not is_packable(sample_type):
        raise TypeError(f"{sample_type!r} is not a @packable sample type")
    check_version(version)
    record: dict[str, Any] = {
        "name": sample_type.__name__,
        "version": version,
        "sampleType": _identity(sample_type),
        "atdataSchemaVersion": SCHEMA_FORMAT_VERSION,
        "fields": _fields_json(sample_type, type_prefix, ()),
    }
    text = description if description is not None else _docstring(sample_type)
    if text:
        record["description"] = text
    record["createdAt"] = datetime.now(UTC).isoformat()
    return record


def check_version(version: str) -> None:
    """Raise :class:`SchemaError` unless ``version`` is a semantic version like ``1.2.3``."""
    if not isinstance(version, str) or not _SEMVER.match(version):
        raise SchemaError(f"schema version {version!r} is not a semantic version like '1.0.0'")


def _identity(cls: type) -> str:
    return f"{cls.__module__}.{cls.__name__}"


def _docstring(cls: type) -> str | None:
    doc = cls.__doc__
    if not doc or doc.startswith(f"{cls.__name__}("):  # dataclass's generated signature
        return None
    return inspect.cleandoc(doc)


def _fields_json(cls: type, prefix: str, stack: tuple[type, ...]) -> list[dict[str, Any]]:
    if cls in stack:
        raise SchemaError(f"{cls.__qualname__} contains itself; recursive types have no schema")
    stack = (*stack, cls)
    out = []
    for spec in fields_of(cls):
        entry: dict[str, Any] = {
            "name": spec.name,
            "fieldType": _type_json(spec.type, prefix, stack, top=True),
            "optional": spec.type.optional,
        }
        default = _spec_default(spec)
        if default is not _NO_DEFAULT:
            entry["default"] = default
        out.append(entry)
    return out


def _type_json(ft: FieldType, prefix: str, stack: tuple[type, ...], top: bool) -> dict[str, Any]:
    kind = ft.kind
    if kind in _PRIMITIVE_TYPES:
        out: dict[str, Any] = {"$type": f"{prefix}#primitive", "primitive": kind}
    elif kind == "ndarray":
        out = {"$type": f"{prefix}#ndarray"}
        if ft.dtype is not None:
            out["dtype"] = ft.dtype.name
        if ft.shape is not None:
            out["shape"] = list(ft.shape)
    elif kind == "list":
        assert ft.item is not None
        out = {"$type": f"{prefix}#array", "items": _type_json(ft.item, prefix, stack, False)}
    elif kind == "dict":
        assert ft.item is not None
        out = {"$type": f"{prefix}#map", "values": _type_json(ft.item, prefix, stack, False)}
    elif kind == "sample":
        assert ft.sample_type is not None
        nested = ft.sample_type
        out = {
            "$type": f"{prefix}#sample",
            "name": nested.__name__,
            "sampleType": _identity(nested),
            "fields": _fields_json(nested, prefix, stack),
        }
    else:  # pragma: no cover - FieldType kinds are fixed by atdata.sample
        raise SchemaError(f"unknown field kind {kind!r}")
    if ft.optional and not top:
        out["optional"] = True
    return out


def _spec_default(spec: FieldSpec) -> Any:
    if spec.default_factory is not None:
        value = spec.default_factory()
    elif spec.required:
        return _NO_DEFAULT
    else:
        value = spec.default
    return _default_json(spec.type, value)


def _default_json(ft: FieldType, value: Any) -> Any:
    """The JSON form of a default value, or ``_NO_DEFAULT`` when it has none."""
    if value is None:
        return None if ft.optional else _NO_DEFAULT
    kind = ft.kind
    if kind == "str" and isinstance(value, str):
        return value
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "float" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else _NO_DEFAULT
    if kind == "bytes" and isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if kind == "list" and isinstance(value, list | tuple):
        assert ft.item is not None
        items = [_default_json(ft.item, v) for v in value]
        return _NO_DEFAULT if any(v is _NO_DEFAULT for v in items) else items
    if kind == "dict" and isinstance(value, Mapping):
        assert ft.item is not None
        values = {k: _default_json(ft.item, v) for k, v in value.items()}
        if any(not isinstance(k, str) or v is _NO_DEFAULT for k, v in values.items()):
            return _NO_DEFAULT
        return values
    return _NO_DEFAULT


# --------------------------------------------------------------------------- record -> type

_cache: OrderedDict[tuple[str, str, str], type] = OrderedDict()
_cache_lock = threading.Lock()


def schema_to_type(record: Mapping[str, Any]) -> type:
    """Build a working ``@packable`` type from a schema record alone (cached).

    Raises :class:`SchemaError` naming the field for a malformed record, an
    unknown field kind or a name that is not a usable identifier.
    """
    if not isinstance(record, Mapping):
        raise SchemaError(f"a schema record is a JSON object, not {type(record).__name__}")
    name = record.get("name")
    where = f"schema {name!r}" if isinstance(name, str) else "schema record"
    version = record.get("version", "")
    if not isinstance(version, str):
        raise SchemaError(f"{where}: 'version' must be a string")
    _check_size(record, where)
    accurate = _format_version(record, where) >= SCHEMA_FORMAT_VERSION
    return _build(record, version, accurate, where, 0)


def _check_size(record: Mapping[str, Any], where: str) -> None:
    """Refuse a record nested too deep or too large to handle (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(record, 1)]
    nodes = 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > _MAX_JSON_NODES:
            raise SchemaError(f"{where}: more than {_MAX_JSON_NODES:,} values in the record")
        if isinstance(value, Mapping):
            children: Any = value.values()
        elif isinstance(value, list | tuple):
            children = value
        else:
            continue
        if depth >= _MAX_JSON_DEPTH:
            raise SchemaError(f"{where}: values nested more than {_MAX_JSON_DEPTH} deep")
        stack.extend((child, depth + 1) for child in children)


def clear_type_cache() -> None:
    """Forget every type built by :func:`schema_to_type`."""
    with _cache_lock:
        _cache.clear()


def _format_version(record: Mapping[str, Any], where: str) -> int:
    value = record.get("atdataSchemaVersion", 1)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SchemaError(f"{where}: 'atdataSchemaVersion' must be a positive integer")
    return value


def _build(record: Mapping[str, Any], version: str, accurate: bool, where: str, depth: int) -> type:
    if depth > _MAX_DEPTH:
        raise SchemaError(f"{where}: sample types nested more than {_MAX_DEPTH} deep")
    name = record.get("name")
    if not isinstance(name, str) or not name:
        raise SchemaError(f"{where}: the record has no 'name'")
    class_name = name.rsplit(".", 1)[-1]  # legacy records may hold 'module.Class'
    _check_identifier(class_name, f"{where}: class name")
    module = _module_of(record.get("sampleType"), class_name, where)
    fields = record.get("fields")
    if not isinstance(fields, list):
        raise SchemaError(f"{where}: 'fields' must be a list")
    if len(fields) > _MAX_FIELDS:
        raise SchemaError(f"{where}: more than {_MAX_FIELDS} fields")
    description = record.get("description")
    key = (name, version, _signature(module, fields, accurate, description))
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
            return cached
    cls = _make_class(class_name, module, fields, description, accurate, where, depth)
    cls._atdata_rebuild = (_rebuild_text(record), version, accurate)  # type: ignore[attr-defined]
    with _cache_lock:
        _cache[key] = cls
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return cls


def _rebuild_text(record: Mapping[str, Any]) -> str:
    """The parts of ``record`` :func:`_build` reads, as JSON (what a pickled type carries)."""
    keep = {k: record[k] for k in ("name", "sampleType", "fields", "description") if k in record}
    return json.dumps(keep, sort_keys=True, separators=(",", ":"))


def _signature(module: str, fields: list[Any], accurate: bool, description: Any) -> str:
    try:
        text = json.dumps(
            [module, fields, accurate, description], sort_keys=True, separators=(",", ":")
        )
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"schema fields are not JSON data ({exc})") from None
    return hashlib.sha256(text.encode()).hexdigest()


def _module_of(identity: Any, class_name: str, where: str) -> str:
    if identity is None:
        return _DEFAULT_MODULE
    if not isinstance(identity, str) or "." not in identity:
        raise SchemaError(f"{where}: 'sampleType' must be 'module.Class', not {identity!r}")
    module, _, qualname = identity.rpartition(".")
    parts = module.split(".")
    if len(identity) > _MAX_NAME or not all(p.isidentifier() for p in parts):
        raise SchemaError(f"{where}: 'sampleType' {identity!r} is not a dotted module path")
    if qualname != class_name:
        raise SchemaError(f"{where}: 'sampleType' {identity!r} does not end in {class_name!r}")
    return module


def _check_identifier(name: Any, what: str) -> str:
    """``name`` itself, if it is a plain Python identifier; else a :class:`SchemaError`."""
    if not isinstance(name, str) or not name.isidentifier() or len(name) > _MAX_NAME:
        raise SchemaError(f"{what} {name!r} is not a Python identifier")
    if unicodedata.normalize("NFKC", name) != name:
        # Python reads identifiers NFKC-normalised: the attribute would be another name
        raise SchemaError(
            f"{what} {name!r} is not NFKC-normalised "
            f"(Python would read it as {unicodedata.normalize('NFKC', name)!r})"
        )
    if keyword.iskeyword(name):
        raise SchemaError(f"{what} {name!r} is a Python keyword")
    if name.startswith("__") and name.endswith("__"):
        raise SchemaError(f"{what} {name!r} is a reserved (dunder) name")
    return name


def _make_class(
    class_name: str,
    module: str,
    fields: list[Any],
    description: Any,
    accurate: bool,
    where: str,
    depth: int,
) -> type:
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {"__module__": module, "__qualname__": class_name}
    if isinstance(description, str) and description:
        namespace["__doc__"] = description
    keyword_only = False
    for i, f in enumerate(fields):
        if not isinstance(f, Mapping):
            raise SchemaError(f"{where}: field #{i} is not an object")
        fname = _check_identifier(f.get("name"), f"{where}: field name")
        if fname in _RESERVED or fname.startswith("_atdata"):
            raise SchemaError(f"{where}: field name {fname!r} clashes with a PackableSample member")
        if fname in annotations:
            raise SchemaError(f"{where}: field {fname!r} appears twice")
        fwhere = f"{where}, field {fname!r}"
        optional = f.get("optional", False)
        if not isinstance(optional, bool):
            raise SchemaError(f"{fwhere}: 'optional' must be true or false")
        tp, ft = _parse_type(f.get("fieldType"), accurate, fwhere, depth)
        if optional:
            tp = typing.Optional[tp]  # noqa: UP045 - a runtime type object, built from data
            ft = dataclasses.replace(ft, optional=True)
        annotations[fname] = tp
        if "default" in f:
            keyword_only = True
            namespace[fname] = _field_with_default(ft, f["default"], fwhere)
        elif optional and not accurate:
            # the existing atdata reads an optional field as Optional[T] = None
            keyword_only = True
            namespace[fname] = dataclasses.field(kw_only=True, default=None)
        elif keyword_only:
            namespace[fname] = dataclasses.field(kw_only=True)
    namespace["__annotations__"] = annotations
    cls = types.new_class(
        class_name, (PackableSample,), {"metaclass": _RebuiltType}, lambda ns: ns.update(namespace)
    )
    return packable(dataclasses.dataclass(eq=False)(cls))


class _RebuiltType(type):
    """The metaclass of types built from records: they pickle as "rebuild from this record".

    Such a type cannot be imported by name in another process (its module may
    not exist there), so pickling it (spawn-started DataLoader workers, Dask)
    stores the record, and unpickling rebuilds it with :func:`schema_to_type`,
    cached, so one process gets one type per record.
    """

    _atdata_rebuild: tuple[str, str, bool]


def _reduce_rebuilt(cls: _RebuiltType) -> tuple[Any, tuple[Any, ...]]:
    return _rebuild, cls._atdata_rebuild


def _rebuild(text: str, version: str, accurate: bool) -> type:
    """Unpickle a type built from a record (see :class:`_RebuiltType`)."""
    record = json.loads(text)
    where = f"schema {record.get('name')!r}"
    _check_size(record, where)
    return _build(record, version, accurate, where, 0)


copyreg.pickle(_RebuiltType, _reduce_rebuilt)  # type: ignore[arg-type]


def _field_with_default(ft: FieldType, raw: Any, where: str) -> Any:
    value = _default_value(ft, raw, where)
    if isinstance(value, list | dict):
        return dataclasses.field(kw_only=True, default_factory=lambda: copy.deepcopy(value))
    return dataclasses.field(kw_only=True, default=value)


def _default_value(ft: FieldType, raw: Any, where: str) -> Any:
    """The Python value of a recorded default, checked against the field type."""
    if raw is None:
        if ft.optional:
            return None
        raise SchemaError(f"{where}: default is null but the field is not optional")
    kind = ft.kind
    ok = False
    value = raw
    if kind == "str":
        ok = isinstance(raw, str)
    elif kind == "bool":
        ok = isinstance(raw, bool)
    elif kind == "int":
        ok = isinstance(raw, int) and not isinstance(raw, bool)
    elif kind == "float":
        ok = isinstance(raw, int | float) and not isinstance(raw, bool)
        value = float(raw) if ok else raw
    elif kind == "bytes":
        if isinstance(raw, Mapping) and isinstance(raw.get("$bytes"), str):
            try:
                value = base64.b64decode(raw["$bytes"], validate=True)
                ok = True
            except binascii.Error:
                ok = False
    elif kind == "list" and isinstance(raw, list):
        assert ft.item is not None
        value = [_default_value(ft.item, v, f"{where}[{i}]") for i, v in enumerate(raw)]
        ok = True
    elif kind == "dict" and isinstance(raw, Mapping):
        assert ft.item is not None
        value = {k: _default_value(ft.item, v, f"{where}[{k!r}]") for k, v in raw.items()}
        ok = True
    if not ok:
        raise SchemaError(f"{where}: default {raw!r} does not fit the type {ft.describe()}")
    return value


def _kind(ft: Mapping[str, Any], where: str) -> str:
    tag = ft.get("$type")
    if isinstance(tag, str) and "#" in tag:
        return tag.rsplit("#", 1)[1]
    kind = ft.get("kind", tag)
    if not isinstance(kind, str):
        raise SchemaError(f"{where}: the field type has no '$type' or 'kind'")
    return kind


def _parse_type(raw: Any, accurate: bool, where: str, depth: int) -> tuple[Any, FieldType]:
    """Return ``(annotation, FieldType)`` for a recorded field type."""
    if depth > _MAX_DEPTH:
        raise SchemaError(f"{where}: field types nested more than {_MAX_DEPTH} deep")
    if not isinstance(raw, Mapping):
        raise SchemaError(f"{where}: 'fieldType' must be an object")
    kind = _kind(raw, where)
    tp: Any
    if kind == "primitive":
        prim = raw.get("primitive")
        if prim not in _PRIMITIVE_TYPES:
            raise SchemaError(
                f"{where}: unknown primitive {prim!r}; expected one of {sorted(_PRIMITIVE_TYPES)}"
            )
        tp, ft = _PRIMITIVE_TYPES[prim], FieldType(prim)
    elif kind == "ndarray":
        _check_shape(raw.get("shape"), where)
        tp, ft = _ndarray_type(raw.get("dtype"), accurate, where)
        if raw.get("shape") is not None:
            shape = tuple(-1 if d is None else d for d in raw["shape"])
            tp, ft = Annotated[tp, Shape(*shape)], dataclasses.replace(ft, shape=shape)
    elif kind in ("array", "map"):
        key = "items" if kind == "array" else "values"
        inner_tp, inner = _parse_type(
            raw.get(key), accurate, f"{where}{'[]' if key == 'items' else '{}'}", depth + 1
        )
        if raw.get(key, {}).get("optional") is True:
            inner_tp = typing.Optional[inner_tp]  # noqa: UP045
            inner = dataclasses.replace(inner, optional=True)
        if kind == "array":
            tp, ft = list[inner_tp], FieldType("list", item=inner)  # type: ignore[valid-type]
        else:
            tp, ft = dict[str, inner_tp], FieldType("dict", item=inner)  # type: ignore[valid-type]
    elif kind == "sample":
        nested = _build(raw, "", accurate, f"{where} (nested type)", depth + 1)
        tp, ft = nested, FieldType("sample", sample_type=nested)
    elif kind == "ref":
        raise SchemaError(
            f"{where}: 'ref' field types are not supported; nested sample types are recorded "
            "inline (kind 'sample')"
        )
    else:
        raise SchemaError(
            f"{where}: unknown field kind {kind!r}; expected primitive, ndarray, array, map "
            "or sample"
        )
    return tp, ft


def _check_shape(shape: Any, where: str) -> None:
    """An ndarray ``shape`` (informational) must be a short list of sizes (-1 or null: any)."""
    if shape is None:
        return
    if not isinstance(shape, list) or len(shape) > _MAX_DIMS:
        raise SchemaError(f"{where}: 'shape' must be a list of at most {_MAX_DIMS} sizes")
    for size in shape:
        if size is None or size == -1:
            continue
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= _MAX_DIM:
            raise SchemaError(
                f"{where}: 'shape' size {size!r} is not an integer from 0 to {_MAX_DIM:,} "
                "(or -1 for any)"
            )


def _ndarray_type(dtype: Any, accurate: bool, where: str) -> tuple[Any, FieldType]:
    if dtype is None:
        return NDArray, FieldType("ndarray")
    if not isinstance(dtype, str) or len(dtype) > _MAX_NAME:
        raise SchemaError(f"{where}: 'dtype' must be a NumPy dtype name such as 'float32'")
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError, OverflowError, SyntaxError, MemoryError):
        raise SchemaError(f"{where}: unknown dtype {dtype!r}") from None
    if dt.hasobject:
        raise SchemaError(f"{where}: dtype {dtype!r} holds Python objects")
    if dt.fields is not None or dt.subdtype is not None or dt.kind == "V":
        raise SchemaError(
            f"{where}: dtype {dtype!r} is structured or a sub-array; "
            "use a plain dtype such as 'float32'"
        )
    if dt.itemsize > _MAX_ITEMSIZE:
        raise SchemaError(f"{where}: dtype {dtype!r} has {dt.itemsize:,}-byte items")
    # Records without atdataSchemaVersion carry unreliable dtypes; a dtype that its scalar
    # type does not determine (sizes, byte order) cannot be written as an annotation.
    if not accurate or np.dtype(dt.type) != dt:
        return NDArray, FieldType("ndarray")
    return NDArray[dt.type], FieldType("ndarray", dtype=dt)  # type: ignore[name-defined]
