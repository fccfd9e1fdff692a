"""Hugging Face ``datasets`` into atdata: :func:`from_hf` writes typed shards (``Dataset.to_hf``,
the other way, is :mod:`atdata._to_hf`).

:func:`from_hf` takes a ``datasets.Dataset`` or ``IterableDataset``. Without a
``sample_type`` one is generated from its features:

- ``Value``: ``str``, ``int``, ``float``, ``bool`` or ``bytes`` by its dtype;
  ``ClassLabel``: ``int`` (the label index);
- ``Image``: ``NDArray`` (the decoded pixels, ``H x W`` or ``H x W x C``);
  ``Array2D`` ... ``Array5D``: ``NDArray[dtype]``; a ``List`` of numbers: a
  one-dimensional ``NDArray[dtype]``;
- any other ``List``: ``list[T]``; a dict of features: a nested sample type.

A column of a ``datasets.Dataset`` that holds nulls becomes ``T | None``; the
columns of an ``IterableDataset`` (which cannot be counted without reading it)
all do. Column names must be Python identifiers (rename others first with
``rename_column``). Audio, video and other features need an explicit
``sample_type`` whose fields say what to keep.

``Dataset.to_hf()`` is a ``datasets.IterableDataset`` over the shards, one
Hugging Face shard per atdata shard (so ``DataLoader`` workers and
``split_dataset_by_node`` split it by shard), yielding one dict per sample.

Needs ``datasets`` (``pip install 'atdata[hf]'``).

>>> import atdata, datasets, tempfile
>>> hf = datasets.Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]})
>>> ds = from_hf(hf, tempfile.mkdtemp())
>>> [(s.text, s.label) for s in ds]
[('a', 0), ('b', 1)]
>>> list(ds.to_hf())
[{'text': 'a', 'label': 0}, {'text': 'b', 'label': 1}]
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from atdata.dataset import Dataset
from atdata.dict_sample import DictSample
from atdata.errors import SampleError, SchemaError
from atdata.sample import FieldType, fields_of, is_packable
from atdata.schema import LOCAL_TYPE_PREFIX, SCHEMA_FORMAT_VERSION, schema_to_type
from atdata.writer import ShardWriter

__all__ = ["from_hf", "sample_type_for"]

_P = LOCAL_TYPE_PREFIX
_STRINGS = {"string", "large_string", "string_view"}
_BYTES = {"binary", "large_binary", "binary_view"}
_BOOL = {"bool"}
_INTS = {f"{s}int{n}" for s in ("", "u") for n in (8, 16, 32, 64)}
_FLOATS = {"float16", "float32", "float64", "halffloat", "float", "double"}
_NUMPY = {"halffloat": "float16", "float": "float32", "double": "float64"}
_MODULE = "atdata.hf"
"""The module part of generated types' identity (``atdata.hf.{Name}``)."""


# --------------------------------------------------------------------------- features -> type


def _primitive(kind: str) -> dict[str, Any]:
    return {"$type": f"{_P}#primitive", "primitive": kind}


def _class_name(text: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", text)
    name = "".join(w[:1].upper() + w[1:] for w in words)
    if not name or not name[0].isalpha():
        name = "Hf" + name
    return name


def _field_type(feature: Any, owner: str, column: str, where: str) -> dict[str, Any]:
    """The schema field type of one Hugging Face feature."""
    kind = type(feature).__name__
    if isinstance(feature, dict):
        return {
            "$type": f"{_P}#sample",
            "name": f"{owner}{_class_name(column)}",
            "sampleType": f"{_MODULE}.{owner}{_class_name(column)}",
            "fields": _fields(feature, f"{owner}{_class_name(column)}", None, where),
        }
    if kind == "Value":
        dtype = str(feature.dtype)
        if dtype in _STRINGS:
            return _primitive("str")
        if dtype in _BYTES:
            return _primitive("bytes")
        if dtype in _BOOL:
            return _primitive("bool")
        if dtype in _INTS:
            return _primitive("int")
        if dtype in _FLOATS:
            return _primitive("float")
        raise SchemaError(
            f"{where}: Value({dtype!r}) has no atdata field type; pass sample_type=..."
        )
    if kind == "ClassLabel":
        return _primitive("int")
    if kind == "Image":
        return {"$type": f"{_P}#ndarray"}
    if kind in ("Array2D", "Array3D", "Array4D", "Array5D"):
        return {"$type": f"{_P}#ndarray", "dtype": np.dtype(feature.dtype).name}
    if kind in ("List", "LargeList", "Sequence") and hasattr(feature, "feature"):
        inner = feature.feature
        if type(inner).__name__ == "Value":
            dtype = str(inner.dtype)
            if dtype in _INTS or dtype in _FLOATS or dtype in _BOOL:
                return {
                    "$type": f"{_P}#ndarray",
                    "dtype": np.dtype(_NUMPY.get(dtype, dtype)).name,
                }
        return {"$type": f"{_P}#array", "items": _field_type(inner, owner, column, where + "[]")}
    raise SchemaError(
        f"{where}: {kind} features have no atdata field type; pass a sample_type whose "
        "fields say what to keep"
    )


def _fields(
    features: Mapping[str, Any], owner: str, nullable: set[str] | None, where: str
) -> list[dict[str, Any]]:
    out = []
    for column, feature in features.items():
        fwhere = f"{where}, column {column!r}"
        if not isinstance(column, str) or not column.isidentifier():
            raise SchemaError(
                f"{fwhere}: atdata field names are Python identifiers; rename the column "
                "first (hf_dataset.rename_column) or pass sample_type=..."
            )
        optional = nullable is None or column in nullable
        out.append(
            {
                "name": column,
                "fieldType": _field_type(feature, owner, column, fwhere),
                "optional": optional,
            }
        )
    return out


def sample_type_for(hf_dataset: Any, name: str | None = None) -> type:
    """The sample type :func:`from_hf` generates for ``hf_dataset`` (see the module docs)."""
    features = hf_dataset.features
    if features is None:
        raise SchemaError(
            "the Hugging Face dataset has no features to build a sample type from; "
            "pass sample_type=..."
        )
    info = getattr(hf_dataset, "info", None)
    base = name or getattr(info, "dataset_name", None) or getattr(info, "builder_name", None)
    class_name = _class_name(base) + "Sample" if base else "HfSample"
    table = getattr(getattr(hf_dataset, "data", None), "table", None)
    nullable: set[str] | None = None
    if table is not None:  # an Arrow-backed datasets.Dataset: count the nulls
        nullable = {c for c in features if c in table.column_names and table[c].null_count}
    record = {
        "name": class_name,
        "version": "1.0.0",
        "sampleType": f"{_MODULE}.{class_name}",
        "atdataSchemaVersion": SCHEMA_FORMAT_VERSION,
        "description": f"Generated from the features of Hugging Face dataset {base or '?'}.",
        "fields": _fields(features, class_name, nullable, f"features of {base or 'the dataset'}"),
    }
    return schema_to_type(record)


# --------------------------------------------------------------------------- rows -> samples


def _image(value: Any) -> np.ndarray:
    if isinstance(value, Mapping):  # Image(decode=False): {"bytes": ..., "path": ...}
        from PIL import Image

        raw = value.get("bytes")
        if raw is None:
            raise ValueError("an undecoded image without bytes")
        with Image.open(io.BytesIO(raw)) as img:
            return np.asarray(img)
    return np.asarray(value)


def _convert(ft: FieldType, value: Any) -> Any:
    if value is None:
        return None
    kind = ft.kind
    if kind == "ndarray":
        if isinstance(value, np.ndarray):
            return value if ft.dtype is None else value.astype(ft.dtype, copy=False)
        if hasattr(value, "__array_interface__") or isinstance(value, Mapping):  # PIL images
            return _image(value)
        arr = np.asarray(value, dtype=ft.dtype)
        if arr.dtype == object:
            raise ValueError("holds values that are not numbers (a None inside?)")
        return arr
    if kind == "list" and isinstance(value, list | tuple):
        assert ft.item is not None
        return [_convert(ft.item, v) for v in value]
    if kind == "dict" and isinstance(value, Mapping):
        assert ft.item is not None
        return {k: _convert(ft.item, v) for k, v in value.items()}
    if kind == "sample" and isinstance(value, Mapping):
        assert ft.sample_type is not None
        return {s.name: _convert(s.type, value.get(s.name)) for s in fields_of(ft.sample_type)}
    return value


def _sample(sample_type: type, row: Mapping[str, Any], i: int) -> Any:
    if sample_type is DictSample:
        return DictSample.from_data(dict(row))
    data = {}
    for spec in fields_of(sample_type):
        if spec.name not in row:
            continue
        try:
            data[spec.name] = _convert(spec.type, row[spec.name])
        except (ValueError, TypeError, OSError) as exc:
            raise SampleError(str(exc), key=f"row {i}", field=spec.name) from None
    try:
        return sample_type.from_data(data)
    except SampleError as exc:
        raise SampleError(exc.reason, key=f"row {i}", field=exc.field) from None


def _pattern(out: str | os.PathLike[str], sharded: bool) -> str:
    """The shard pattern for ``out``; refuses one whose first shard already exists."""
    text = os.fspath(out)
    directory = "%" not in text and not text.endswith(".tar")
    pattern = os.path.join(text, "data-%06d.tar") if directory else text
    if "%" in pattern:
        first = pattern % 0
    elif sharded:
        stem, _, ext = pattern.rpartition(".")
        first = f"{stem}-000000.{ext}"
    else:
        first = pattern
    if os.path.exists(first):
        raise FileExistsError(
            f"{first} already exists; write to a new directory or pattern (shards of an "
            "earlier run would otherwise mix with these)"
        )
    return pattern


def from_hf(
    hf_dataset: Any,
    out: str | os.PathLike[str],
    *,
    sample_type: type | None = None,
    maxcount: int | None = 10_000,
    maxsize: int | None = None,
) -> Dataset[Any]:
    """Write a Hugging Face ``Dataset`` or ``IterableDataset`` as typed shards; return them.

    ``out`` is a directory (shards ``data-000000.tar``, ...), a ``%06d``
    pattern, or a ``.tar`` file name (``-000000`` is added when there are
    limits). A new shard starts after ``maxcount`` samples or before
    ``maxsize`` bytes. Without ``sample_type`` one is generated from the
    features (see :mod:`atdata._hf`); with one, each row's columns of that
    name are converted to its fields (other columns are left out). A row that
    does not fit raises :class:`~atdata.SampleError` naming it and the column,
    and the shards written so far are removed. A first shard that already
    exists raises ``FileExistsError`` (nothing is overwritten). For example
    ``atdata.from_hf(datasets.load_dataset("mnist", split="train"), "mnist/train")``
    (the module's docstring runs a small one).
    """
    if not hasattr(hf_dataset, "features") or isinstance(hf_dataset, Mapping):
        raise TypeError(
            "from_hf takes a datasets.Dataset or IterableDataset (pick one split of a "
            f"DatasetDict), not {type(hf_dataset).__name__}"
        )
    if sample_type is None:
        sample_type = sample_type_for(hf_dataset)
    elif not (is_packable(sample_type) or sample_type is DictSample):
        raise TypeError(f"sample_type must be a @packable type, not {sample_type!r}")
    sharded = maxcount is not None or maxsize is not None
    writer = ShardWriter(_pattern(out, sharded), maxcount=maxcount, maxsize=maxsize)
    try:
        with writer:
            for i, row in enumerate(hf_dataset):
                writer.write(_sample(sample_type, row, i))
    except BaseException:
        for shard in writer.shards:
            with contextlib.suppress(OSError):
                os.unlink(shard)
        raise
    if not writer.shards:
        raise ValueError("the Hugging Face dataset has no rows")
    return Dataset[sample_type](writer.shards)  # type: ignore[valid-type]
