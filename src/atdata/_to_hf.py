"""``Dataset.to_hf``: a Hugging Face ``datasets.IterableDataset`` over atdata shards.

One Hugging Face shard per atdata shard (so ``DataLoader`` workers and
``split_dataset_by_node`` split it by shard), yielding one dict per sample. The
generator's arguments pickle even when the sample type was generated at run time
(by :func:`atdata.from_hf` or ``decode_schema``): such a type travels as its schema
record and is rebuilt from it. Needs ``datasets`` (``pip install 'atdata[hf]'``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from atdata._reader import Reader
from atdata.dict_sample import DictSample
from atdata.errors import AtdataError
from atdata.sample import FieldType, PackableSample, fields_of, is_packable
from atdata.schema import schema_record, schema_to_type

__all__ = ["datasets_module", "to_hf"]


def datasets_module() -> Any:
    """The ``datasets`` package, or an ``ImportError`` saying how to install it."""
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Hugging Face support needs the datasets package: pip install 'atdata[hf]'"
        ) from exc
    return datasets


def _as_dict(sample: Any) -> Any:
    if isinstance(sample, DictSample):
        return sample.to_dict()
    if isinstance(sample, PackableSample):
        return {s.name: _as_dict(sample.__dict__[s.name]) for s in fields_of(type(sample))}
    if isinstance(sample, list):
        return [_as_dict(v) for v in sample]
    if isinstance(sample, dict):
        return {k: _as_dict(v) for k, v in sample.items()}
    return sample


def _type_spec(cls: type) -> Any:
    """``cls`` if it pickles by reference (importable), else its schema record."""
    module = sys.modules.get(cls.__module__)
    if cls is DictSample or getattr(module, cls.__qualname__, None) is cls:
        return cls
    return ("schema", schema_record(cls, version="1.0.0"))


def _from_spec(spec: Any) -> type:
    return spec if isinstance(spec, type) else schema_to_type(spec[1])


class _Portable:
    """The reader handed to the generator; pickles even when its read type was generated."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    def __reduce__(self) -> tuple[Any, ...]:
        reader = self.reader
        return (_portable, (_type_spec(reader.read_type), reader.replace(read_type=DictSample)))


def _portable(read_type: Any, reader: Reader) -> _Portable:
    return _Portable(reader.replace(read_type=_from_spec(read_type)))


def _generate(portable: _Portable, shards: list[str]) -> Iterator[dict[str, Any]]:
    reader = portable.reader
    for sample in reader.ordered(reader.prefetch(list(shards))):
        yield _as_dict(sample)


def _feature(datasets: Any, ft: FieldType) -> Any:
    """The Hugging Face feature of an atdata field type (None: not expressible, e.g. arrays)."""
    simple = {
        "str": "string",
        "int": "int64",
        "float": "float64",
        "bool": "bool",
        "bytes": "binary",
    }
    if ft.kind in simple:
        return datasets.Value(simple[ft.kind])
    if ft.kind == "list" and ft.item is not None:
        inner = _feature(datasets, ft.item)
        return None if inner is None else datasets.List(inner)
    if ft.kind == "sample" and ft.sample_type is not None:
        return _features(datasets, ft.sample_type)
    return None  # arrays of unknown shape, maps


def _features(datasets: Any, sample_type: type) -> Any:
    if not is_packable(sample_type):
        return None
    out = {}
    for spec in fields_of(sample_type):
        feature = _feature(datasets, spec.type)
        if feature is None:
            return None
        out[spec.name] = feature
    return datasets.Features(out)


def to_hf(reader: Reader, shards: list[str], sample_type: type) -> Any:
    """A ``datasets.IterableDataset`` over ``shards`` read by ``reader`` (see ``Dataset.to_hf``)."""
    datasets = datasets_module()
    if not shards:
        raise AtdataError("the dataset has no shards")
    return datasets.IterableDataset.from_generator(
        _generate,
        features=_features(datasets, sample_type),
        gen_kwargs={"portable": _Portable(reader), "shards": shards},
    )
