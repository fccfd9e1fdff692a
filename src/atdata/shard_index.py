"""Per-shard offset index: where each sample's payload sits inside a tar shard.

Built by one walk over the tar headers (about a microsecond per sample) and
kept for the life of the dataset, it gives random access (``ds[i]``,
``ds.get(key)``) and O(1) resume inside a shard without scanning it.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from atdata._tar import iter_members, iter_stream_members, map_file
from atdata.errors import SampleError

__all__ = ["ShardIndex", "build_index", "cached_index", "index_file", "keep_index"]

_SUFFIX = ".msgpack"


@dataclass(frozen=True)
class ShardIndex:
    """The samples of one shard: keys, payload byte offsets and sizes, in tar order."""

    shard: str
    keys: tuple[str, ...]
    offsets: np.ndarray
    sizes: np.ndarray

    def __len__(self) -> int:
        return len(self.keys)


def build_index(stream: IO[bytes], shard: str) -> ShardIndex:
    """Walk the tar headers of ``stream`` and index its ``<key>.msgpack`` members.

    Raises :class:`~atdata.ShardError` for a truncated or corrupt shard and
    :class:`~atdata.SampleError` for a member that is not ``.msgpack``.
    """
    keys: list[str] = []
    offsets: list[int] = []
    sizes: list[int] = []
    mapped = map_file(stream)
    members: Any
    if mapped is not None:
        members = iter_members(mapped, shard)
    else:
        members = (
            (name, off, len(payload)) for name, off, payload in iter_stream_members(stream, shard)
        )
    for name, off, size in members:
        base = name.rfind("/") + 1
        if not name.endswith(_SUFFIX) or name.find(".", base) != len(name) - len(_SUFFIX):
            raise SampleError(
                f"member {name!r} at byte offset {off - 512} is not a '.msgpack' payload",
                shard=shard,
            )
        keys.append(name[: -len(_SUFFIX)])
        offsets.append(off)
        sizes.append(size)
    return ShardIndex(
        shard, tuple(keys), np.asarray(offsets, np.int64), np.asarray(sizes, np.int64)
    )


_CACHE: OrderedDict[tuple[str, int, int, int], ShardIndex] = OrderedDict()
_CACHE_SIZE = 4096
_CACHE_LOCK = threading.Lock()


def _file_key(stream: IO[bytes], shard: str) -> tuple[str, int, int, int] | None:
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return None
    return (shard, st.st_ino, st.st_size, st.st_mtime_ns)


def cached_index(stream: IO[bytes], shard: str) -> ShardIndex | None:
    """The kept index of this unchanged local file, if one was built in this process."""
    key = _file_key(stream, shard)
    if key is None:
        return None
    with _CACHE_LOCK:
        found = _CACHE.get(key)
        if found is not None:
            _CACHE.move_to_end(key)
        return found


def keep_index(stream: IO[bytes], index: ShardIndex) -> None:
    """Keep ``index`` for this local file (built by a complete, verified header walk)."""
    key = _file_key(stream, index.shard)
    if key is None:
        return
    with _CACHE_LOCK:
        _CACHE[key] = index
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)


def index_file(stream: IO[bytes], shard: str) -> ShardIndex:
    """:func:`build_index` for a shard, reusing the index of an unchanged local file.

    Indexes of regular files are kept per process, keyed by device, inode, size
    and modification time, so opening the same shards again (a new ``Dataset``
    each epoch, DataLoader workers after a fork) walks no header twice.
    """
    found = cached_index(stream, shard)
    if found is None:
        found = build_index(stream, shard)
        keep_index(stream, found)
    return found
