"""Items that cross from a DataLoader worker to the main process cheaply.

Torch sends every tensor a worker yields through a new shared-memory segment and a
file descriptor passed over a socket: about a millisecond per tensor, whatever its
size. A :class:`Packed` item avoids that. It pickles to a few flat buffers, and
unpickling it in the main process builds the item the user sees:

* an array that is a view of a memory-mapped local shard travels as its place in the
  file (path, inode, byte offset). The main process maps the same file, so the
  bytes come from the shared page cache, and it makes the one copy the batch owns;
* strings of a batch travel as one UTF-8 buffer plus offsets;
* numbers and small arrays travel inline as NumPy buffers, and become tensors on
  arrival (``torch.from_numpy``, no copy);
* anything else is pickled as it is (plain data only: bytes, lists, dicts).
"""

from __future__ import annotations

import mmap
import os
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

from atdata.errors import ShardError

__all__ = ["MappedFile", "Packed", "pack_batch", "pack_sample"]

_INLINE_BYTES = 1 << 18  # arrays below this cross inline; larger ones as a shared tensor
_MAPS: OrderedDict[tuple[str, int, int, int], mmap.mmap] = OrderedDict()
_MAX_MAPS = 64

# a file the worker read: path, device, inode, size (the main process checks them)
MappedFile = tuple[str, int, int, int]


class Packed:
    """A worker's item in transit; it unpickles as the dict of tensors, lists and values."""

    __slots__ = ("batched", "fields")

    def __init__(self, fields: list[tuple[str, str, Any]], batched: bool) -> None:
        self.fields = fields
        self.batched = batched

    def __reduce__(self) -> tuple[Any, ...]:
        return (_unpack, (self.fields, self.batched))


def _mapped(file: MappedFile) -> mmap.mmap:
    """This process's map of a shard file, checked to be the file the worker read."""
    found = _MAPS.get(file)
    if found is not None:
        _MAPS.move_to_end(file)
        return found
    path, dev, ino, size = file
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if (st.st_dev, st.st_ino, st.st_size) != (dev, ino, size):
                raise ShardError(
                    path,
                    "the shard file changed between the DataLoader worker and the main process",
                )
            found = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise ShardError(path, f"cannot map the shard a DataLoader worker read ({exc})") from None
    _MAPS[file] = found
    if len(_MAPS) > _MAX_MAPS:
        _MAPS.popitem(last=False)
    return found


def _gather(
    files: list[MappedFile],
    which: np.ndarray,
    offsets: np.ndarray,
    dtype: str,
    shape: tuple[int, ...],
) -> Any:
    """One owned array ``(len(offsets), *shape)``: row ``i`` copied from ``files[which[i]]``."""
    dt = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    flats = []
    for file in files:
        mm = _mapped(file)
        rows_here = offsets[which == len(flats)]
        if len(rows_here) and (int(rows_here.min()) < 0 or int(rows_here.max()) + nbytes > len(mm)):
            raise ShardError(
                file[0], "an array offset from a DataLoader worker is outside the shard"
            )
        flats.append(np.frombuffer(mm, dtype=np.uint8))
    out = np.empty((len(offsets), *shape), dtype=dt)
    rows = out.reshape(len(offsets), -1).view(np.uint8)
    for i, (w, off) in enumerate(zip(which.tolist(), offsets.tolist())):
        rows[i] = flats[w][off : off + nbytes]
    return out


def _unpack(fields: list[tuple[str, str, Any]], batched: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, how, value in fields:
        if how == "map":
            arr = _gather(*value)
            out[name] = torch.from_numpy(arr if batched else arr[0])
        elif how == "np":
            out[name] = torch.from_numpy(value)
        elif how == "str":
            data, ends = value
            text = data.decode("utf-8")
            if text.isascii():
                bounds = ends.tolist()
                out[name] = [text[a:b] for a, b in zip([0, *bounds[:-1]], bounds)]
            else:
                bounds = ends.tolist()
                out[name] = [data[a:b].decode("utf-8") for a, b in zip([0, *bounds[:-1]], bounds)]
        else:
            out[name] = value
    return out


class _Locator:
    """Finds where an array view lies inside the memory-mapped shards of one dataset."""

    def __init__(self, regions: dict[int, tuple[int, int, MappedFile]]) -> None:
        # start address -> (start, end, file); few shards are open at once
        self.regions = regions

    def locate(self, arr: np.ndarray) -> tuple[MappedFile, int] | None:
        if not (isinstance(arr, np.ndarray) and arr.flags.c_contiguous and arr.base is not None):
            return None
        addr = arr.__array_interface__["data"][0]
        for start, end, file in self.regions.values():
            if start <= addr and addr + arr.nbytes <= end:
                return file, addr - start
        return None


def _numeric(values: list[Any], kinds: set[type]) -> np.ndarray | None:
    """``torch.tensor(values)`` as a NumPy array (same dtype rules), or None if not numeric."""
    if kinds == {int}:
        return np.array(values, dtype=np.int64)
    if values and kinds <= {bool, int, float}:
        return torch.tensor(values).numpy()
    return None


def _strings(values: list[Any], kinds: set[type]) -> tuple[bytes, np.ndarray] | None:
    """Strings as one UTF-8 buffer and the end offset of each."""
    if not values or kinds != {str}:
        return None
    text = "".join(values)
    if text.isascii():
        return text.encode("ascii"), np.cumsum([len(v) for v in values], dtype=np.int64)
    encoded = [v.encode("utf-8") for v in values]
    return b"".join(encoded), np.cumsum([len(e) for e in encoded], dtype=np.int64)


def _array(arr: np.ndarray) -> tuple[str, Any]:
    if arr.dtype.kind not in "biufc" or not arr.dtype.isnative:  # torch has no such tensors
        return "raw", arr
    if arr.nbytes < _INLINE_BYTES:
        return "np", arr if arr.flags.writeable else arr.copy()
    tensor = torch.from_numpy(arr if arr.flags.writeable else arr.copy())
    return "raw", tensor.share_memory_()


def pack_batch(
    fields: dict[str, list[Any]], regions: dict[int, tuple[int, int, MappedFile]]
) -> Packed:
    """Pack the per-field value lists of one batch for the trip to the main process.

    Array views of one mapped shard file are sent as offsets; other arrays are stacked.
    """
    locator = _Locator(regions)
    out: list[tuple[str, str, Any]] = []
    for name, values in fields.items():
        first = values[0] if values else None
        if isinstance(first, np.ndarray):
            packed = _pack_arrays(values, locator)
            if packed is not None:
                out.append((name, *packed))
                continue
            if all(
                isinstance(v, np.ndarray) and v.shape == first.shape and v.dtype == first.dtype
                for v in values
            ):
                out.append((name, *_array(np.stack(values))))
                continue
            out.append((name, "raw", [v if v.flags.owndata else v.copy() for v in values]))
            continue
        kinds = {type(v) for v in values}
        numbers = _numeric(values, kinds)
        if numbers is not None:
            out.append((name, "np", numbers))
            continue
        text = _strings(values, kinds)
        out.append((name, "str", text) if text is not None else (name, "raw", values))
    return Packed(out, batched=True)


def _pack_arrays(values: list[Any], locator: _Locator) -> tuple[str, Any] | None:
    first = values[0]
    if first.dtype.kind not in "biufc" or not first.dtype.isnative:
        return None
    files: dict[MappedFile, int] = {}
    which = np.empty(len(values), dtype=np.int64)
    offsets = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        if not isinstance(v, np.ndarray) or v.shape != first.shape or v.dtype != first.dtype:
            return None
        found = locator.locate(v)
        if found is None:
            return None
        which[i] = files.setdefault(found[0], len(files))
        offsets[i] = found[1]
    return "map", (list(files), which, offsets, first.dtype.str, first.shape)


def pack_sample(fields: dict[str, Any], regions: dict[int, tuple[int, int, MappedFile]]) -> Packed:
    """Pack one sample (``batch_size=None``) for the trip to the main process."""
    locator = _Locator(regions)
    out: list[tuple[str, str, Any]] = []
    for name, value in fields.items():
        if isinstance(value, np.ndarray) and value.dtype.kind in "biufc":
            found = locator.locate(value) if value.dtype.isnative else None
            if found is not None:
                file, off = found
                where = ([file], np.zeros(1, np.int64), np.array([off], np.int64))
                out.append((name, "map", (*where, value.dtype.str, value.shape)))
            else:
                out.append((name, *_array(value)))
        else:
            out.append((name, "raw", value))
    return Packed(out, batched=False)
