"""``Dataset.to_parquet``: samples as Parquet rows, written a row group at a time.

One row per sample, one column per field. Array fields become Arrow
fixed-shape tensor columns (``pyarrow.fixed_shape_tensor``, the
``arrow.fixed_shape_tensor`` canonical extension type), so their shape and
dtype survive; every array of such a column must share the first one's shape
and dtype, an integer or float one (convert others with ``sample_map``). Nested sample types become structs, ``dict[str, T]`` maps, lists
lists. Rows are buffered until ``row_group_size`` rows or ``row_group_bytes``
of array data, then written as one row group, so memory stays bounded
whatever the dataset's size. Each file is written under a temporary name and
renamed when complete.

Needs ``pyarrow`` (``pip install 'atdata[parquet]'``).

>>> import atdata, tempfile
>>> import numpy as np
>>> import pyarrow.parquet as pq
>>> @atdata.packable
... class Feature:
...     image: np.ndarray
...     label: int
>>> out = tempfile.mkdtemp()
>>> ds = atdata.write_samples([Feature(np.ones((2, 3)), i) for i in range(4)], f"{out}/f.tar")
>>> [path] = ds.to_parquet(f"{out}/features.parquet")
>>> table = pq.read_table(path)
>>> table["label"].to_pylist(), table["image"].combine_chunks().to_numpy_ndarray().shape
([0, 1, 2, 3], (4, 2, 3))
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from atdata.dict_sample import DictSample
from atdata.errors import SampleError
from atdata.sample import FieldType, PackableSample, fields_of, is_packable, new_key

if TYPE_CHECKING:
    from atdata.dataset import Dataset

__all__ = ["write_parquet"]

ROW_GROUP_SIZE = 4096
ROW_GROUP_BYTES = 64 << 20


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("Parquet export needs pyarrow: pip install 'atdata[parquet]'") from exc
    return pa, pq


def _plain(value: Any) -> Any:
    """A value pyarrow can convert: nested samples as dicts, nested arrays as lists."""
    if isinstance(value, PackableSample):
        return {s.name: _plain(value.__dict__[s.name]) for s in fields_of(type(value))}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _arrow_type(pa: Any, ft: FieldType) -> Any:
    """The Arrow type of a non-tensor field, or None when it must be inferred from values."""
    simple = {
        "str": pa.string(),
        "int": pa.int64(),
        "float": pa.float64(),
        "bool": pa.bool_(),
        "bytes": pa.binary(),
    }
    if ft.kind in simple:
        return simple[ft.kind]
    if ft.kind in ("list", "dict") and ft.item is not None:
        item = _arrow_type(pa, ft.item)
        if item is None:
            return None
        return pa.list_(item) if ft.kind == "list" else pa.map_(pa.string(), item)
    if ft.kind == "sample" and ft.sample_type is not None:
        members = []
        for spec in fields_of(ft.sample_type):
            t = _arrow_type(pa, spec.type)
            if t is None:
                return None
            members.append(pa.field(spec.name, t))
        return pa.struct(members)
    return None  # arrays nested in other values: lists, types inferred


class _Columns:
    """The column layout: names, which are tensors, and the Arrow types fixed so far."""

    def __init__(self, pa: Any, names: list[str], tensors: set[str], types: dict[str, Any]):
        self.pa = pa
        self.names = names
        self.tensors = tensors
        self.types = dict(types)

    @classmethod
    def for_type(cls, pa: Any, sample_type: type) -> _Columns:
        specs = fields_of(sample_type)
        tensors = {s.name for s in specs if s.type.kind == "ndarray"}
        types = {s.name: _arrow_type(pa, s.type) for s in specs if s.name not in tensors}
        return cls(pa, [s.name for s in specs], tensors, {k: v for k, v in types.items() if v})

    @classmethod
    def for_rows(cls, pa: Any, rows: list[dict[str, Any]]) -> _Columns:
        names = list(rows[0])
        tensors = {
            n
            for n in names
            if any(isinstance(r.get(n), np.ndarray) for r in rows)
            and all(r.get(n) is None or isinstance(r.get(n), np.ndarray) for r in rows)
        }
        return cls(pa, names, tensors, {})

    def table(self, rows: list[dict[str, Any]], first: int) -> Any:
        """One Arrow table of ``rows`` (rows ``first`` onwards of the dataset)."""
        pa = self.pa
        for i, row in enumerate(rows):
            if list(row) != self.names:
                raise SampleError(
                    f"has fields {list(row)}, the first sample had {self.names}; "
                    "Parquet rows need the same columns",
                    key=f"#{first + i}",
                )
        arrays = []
        for name in self.names:
            values = [row[name] for row in rows]
            if name in self.tensors:
                arrays.append(self._tensor(name, values, first))
                continue
            try:
                arr = pa.array([_plain(v) for v in values], type=self.types.get(name))
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                raise SampleError(
                    f"cannot be a Parquet column of {self.types.get(name) or 'one type'}: {exc}",
                    field=name,
                    key=f"#{first}..#{first + len(rows) - 1}",
                ) from None
            if name not in self.types and arr.type != pa.null():
                self.types[name] = arr.type
            arrays.append(arr)
        return pa.Table.from_arrays(arrays, names=self.names)

    def _tensor(self, name: str, values: list[Any], first: int) -> Any:
        pa = self.pa
        known = self.types.get(name)
        shape: tuple[int, ...] | None = tuple(known.shape) if known is not None else None
        dtype: np.dtype | None = known.storage_type.value_type.to_pandas_dtype() if known else None
        for i, v in enumerate(values):
            if v is None:
                continue
            if not isinstance(v, np.ndarray):
                raise SampleError(
                    f"is a {type(v).__name__}, not an array", field=name, key=f"#{first + i}"
                )
            if shape is None:
                shape, dtype = v.shape, v.dtype.newbyteorder("=")
                try:
                    if v.size == 0:
                        raise ValueError("it is empty")
                    if v.dtype.kind not in "iuf":
                        raise ValueError("tensors hold integers or floats")
                    known = pa.fixed_shape_tensor(pa.from_numpy_dtype(dtype), shape)
                except (pa.ArrowException, TypeError, ValueError) as exc:
                    raise SampleError(
                        f"is a {v.dtype} array of shape {v.shape}, which an Arrow fixed-shape "
                        f"tensor cannot hold ({exc}); convert it with sample_map=...",
                        field=name,
                        key=f"#{first + i}",
                    ) from None
                self.types[name] = known
            elif v.shape != shape or v.dtype.newbyteorder("=") != dtype:
                raise SampleError(
                    f"is a {v.dtype} array of shape {v.shape}, the column holds {dtype} arrays "
                    f"of shape {shape}; a Parquet fixed-shape tensor column needs one of each",
                    field=name,
                    key=f"#{first + i}",
                )
        if known is None:  # no value yet: a null column until one arrives
            return pa.nulls(len(values))
        assert shape is not None and dtype is not None
        size = int(np.prod(shape))
        flat = np.zeros((len(values), size), dtype=dtype)
        mask = np.zeros(len(values), dtype=bool)
        for i, v in enumerate(values):
            if v is None:
                mask[i] = True
            else:
                flat[i] = v.reshape(-1)
        storage = pa.FixedSizeListArray.from_arrays(
            pa.array(flat.reshape(-1)), size, mask=pa.array(mask) if mask.any() else None
        )
        return pa.ExtensionArray.from_storage(known, storage)


def _rows(
    samples: Iterable[Any], sample_map: Callable[[Any], Mapping[str, Any]] | None
) -> Iterator[dict[str, Any]]:
    for sample in samples:
        if sample_map is not None:
            row = sample_map(sample)
            if not isinstance(row, Mapping):
                raise TypeError(f"sample_map must return a dict, not {type(row).__name__}")
            yield dict(row)
        elif isinstance(sample, DictSample):
            yield sample.to_dict()
        elif isinstance(sample, PackableSample):
            yield {s.name: sample.__dict__[s.name] for s in fields_of(type(sample))}
        elif dataclasses.is_dataclass(sample):
            yield {f.name: getattr(sample, f.name) for f in dataclasses.fields(sample)}
        else:
            raise TypeError(f"cannot turn a {type(sample).__name__} into a row; pass sample_map")


def _size(row: Mapping[str, Any]) -> int:
    return sum(
        v.nbytes if isinstance(v, np.ndarray) else len(v) if isinstance(v, str | bytes) else 8
        for v in row.values()
    )


def _paths(path: Path, maxcount: int | None) -> Iterator[Path]:
    if maxcount is None:
        yield path
        return
    i = 0
    while True:
        yield path.with_name(f"{path.stem}-{i:06d}{path.suffix}")
        i += 1


def write_parquet(
    dataset: Dataset[Any],
    path: str | os.PathLike[str],
    sample_map: Callable[[Any], Mapping[str, Any]] | None = None,
    maxcount: int | None = None,
    *,
    row_group_size: int = ROW_GROUP_SIZE,
    row_group_bytes: int = ROW_GROUP_BYTES,
    **writer_options: Any,
) -> list[str]:
    """Write ``dataset`` to Parquet; return the files written (see :meth:`Dataset.to_parquet`)."""
    pa, pq = _pyarrow()
    for label, value in (
        ("maxcount", maxcount),
        ("row_group_size", row_group_size),
        ("row_group_bytes", row_group_bytes),
    ):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{label} must be a positive integer, not {value!r}")
    sample_type = dataset.sample_type
    columns = (
        _Columns.for_type(pa, sample_type)
        if sample_map is None and is_packable(sample_type)
        else None
    )
    names = _paths(Path(path), maxcount)
    written: list[str] = []
    writer: Any = None
    target: Path | None = None
    partial: Path | None = None
    in_file = 0
    done = 0
    rows: list[dict[str, Any]] = []
    held = 0

    def flush() -> None:
        nonlocal columns, writer, done, rows, held, in_file, target, partial
        if not rows:
            return
        if columns is None:
            columns = _Columns.for_rows(pa, rows)
        table = columns.table(rows, done)
        if writer is None:
            target = next(names)
            partial = target.with_name(f".{target.name}.{new_key()[-8:]}.partial")
            target.parent.mkdir(parents=True, exist_ok=True)
            writer = pq.ParquetWriter(str(partial), table.schema, **writer_options)
        elif table.schema != writer.schema:
            try:
                table = table.cast(writer.schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                changed = [
                    f.name for f in table.schema if f.type != writer.schema.field(f.name).type
                ]
                raise SampleError(
                    f"columns {changed} have other types than in the file's first row group "
                    "(where they held no values); pass sample_map, or a typed dataset",
                    key=f"#{done}",
                ) from None
        writer.write_table(table, row_group_size=len(rows))
        done += len(rows)
        in_file += len(rows)
        rows, held = [], 0
        if maxcount is not None and in_file >= maxcount:
            close()

    def close() -> None:
        nonlocal writer, in_file
        if writer is None:
            return
        writer.close()
        writer = None
        assert partial is not None and target is not None
        os.replace(partial, target)
        written.append(str(target))
        in_file = 0

    try:
        for row in _rows(dataset.ordered(), sample_map):
            rows.append(row)
            held += _size(row)
            room = row_group_size if maxcount is None else min(row_group_size, maxcount - in_file)
            if len(rows) >= room or held >= row_group_bytes:
                flush()
        flush()
        close()
    except BaseException:
        if writer is not None:
            writer.close()
        if partial is not None:
            partial.unlink(missing_ok=True)
        for done_path in written:  # all or nothing
            Path(done_path).unlink(missing_ok=True)
        raise
    if not written:
        raise ValueError("the dataset has no samples to write")
    return written
