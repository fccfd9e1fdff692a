"""The one reader of tar shards: payload iteration, decoding and the ``on_error`` policy.

A :class:`Reader` is what :class:`~atdata.Dataset`, :mod:`atdata.processing` and the
PyTorch adapter share to read samples: it opens a shard (a remote one through the shard
cache), walks or indexes its members, decodes each payload as the stored type (through a
lens when the dataset is a view), and skips or raises a bad sample or shard per
``on_error``. Its names are the package's own interface, not a user API.

>>> from atdata.sources import URLSource
>>> reader = Reader(URLSource(["a.tar", "b.tar"]), on_error="skip")
>>> reader.replace(on_error="raise").on_error
'raise'
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from atdata._codec import decoder_for
from atdata._tar import BLOCK, iter_members, iter_stream_members, map_file, split_name
from atdata.batch import SampleBatch
from atdata.cache import Prefetcher
from atdata.dict_sample import DictSample
from atdata.errors import AtdataError, SampleError, ShardError
from atdata.lens import Lens
from atdata.protocols import DataSource
from atdata.shard_index import ShardIndex, cached_index, index_file, keep_index
from atdata.sources import local_path

__all__ = ["MappedRegion", "OnError", "Reader"]

OnError = Literal["raise", "skip"]
Decode = Callable[[str, str, Any], Any]
"""``decode(shard, key, payload)``: one sample, or :class:`~atdata.SampleError`."""
MappedRegion = tuple[int, int, tuple[str, int, int, int]]
"""(start address, end address, (path, device, inode, size)) of a memory-mapped local shard."""

_SUFFIX = ".msgpack"
#: Per-process state: memory maps and closures, rebuilt on first use after pickling
#: (the offset indexes travel: a DataLoader worker walks no header the parent walked).
_PER_PROCESS = ("_maps", "_files", "_spans", "_decoders", "_shard_ids")


class Reader:
    """Reads the samples of ``source``'s shards as ``read_type``, then through ``lens``.

    ``remote`` (a :class:`~atdata.cache.Prefetcher`) serves remote shards from the
    local shard cache; without one they are streamed. ``on_error="skip"`` warns and
    skips a bad sample (or the rest of a corrupt shard) instead of raising.
    """

    source: DataSource
    on_error: OnError
    read_type: type
    lens: Lens[Any, Any] | None
    remote: Prefetcher | None

    def __init__(
        self,
        source: DataSource,
        *,
        on_error: OnError = "raise",
        read_type: type = DictSample,
        lens: Lens[Any, Any] | None = None,
        remote: Prefetcher | None = None,
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
        self.source = source
        self.on_error = on_error
        self.read_type = read_type
        self.lens = lens
        self.remote = remote

    def replace(self, **changes: Any) -> Reader:
        """A reader like this one with some of the constructor's arguments changed."""
        args: dict[str, Any] = {
            "on_error": self.on_error,
            "read_type": self.read_type,
            "lens": self.lens,
            "remote": self.remote,
        }
        source = changes.pop("source", self.source)
        args.update(changes)
        return Reader(source, **args)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in _PER_PROCESS:
            state.pop(name, None)
        return state

    # ------------------------------------------------------------------ the policy

    def fail(self, exc: AtdataError) -> None:
        """Raise ``exc``, or with ``on_error="skip"`` warn about it and carry on."""
        if self.on_error == "raise":
            raise exc
        warnings.warn(f"skipped: {exc}", stacklevel=3)

    # ------------------------------------------------------------------ shards

    def open(self, shard: str) -> IO[bytes]:
        """Open one shard for reading; a remote one as its local copy in the shard cache."""
        if self.remote is None or local_path(shard) is not None:
            return self.source.open_shard(shard)
        return self.remote.open(shard)

    def prefetch(self, shards: list[str]) -> list[str]:
        """Announce the order of the next shard reads, so remote ones download ahead; return it."""
        if self.remote is not None:
            self.remote.prefetch([s for s in shards if local_path(s) is None])
        return shards

    # ------------------------------------------------------------------ decoding

    def decoder(self, copy: bool) -> Decode:
        """The decoder of one payload into the output type (through the lens, if any)."""
        read_type = self.read_type
        lens = self.lens
        if read_type is DictSample:

            def decode(shard: str, key: str, payload: Any) -> Any:
                return DictSample.from_bytes(payload, key=key)
        else:
            dec = decoder_for(read_type).decode

            def decode(shard: str, key: str, payload: Any) -> Any:
                return dec(payload, copy, key, shard)

        if lens is None:
            return decode
        get = lens.get
        return lambda shard, key, payload: get(decode(shard, key, payload))

    def fast_decoder(self, copy: bool) -> Callable[[Any], Any] | None:
        """The hot-path decoder of typed samples without a lens (None otherwise)."""
        if self.lens is not None or self.read_type is DictSample:
            return None
        return decoder_for(self.read_type).fast(copy)

    # ------------------------------------------------------------------ iteration

    def payloads(
        self,
        shard: str,
        decode: Decode | None = None,
        fast: Callable[[Any], Any] | None = None,
    ) -> Iterator[Any]:
        """``(shard, key, payload)`` for every sample of one shard, or the decoded samples.

        Payloads are memoryviews into the memory-mapped shard when it is a local
        file. With ``decode``, samples are decoded here (one generator level less
        on the hottest path) and a bad one is skipped or raised per ``on_error``.
        """
        try:
            stream = self.open(shard)
        except (ShardError, KeyError, OSError) as exc:
            self.fail(exc if isinstance(exc, ShardError) else ShardError(shard, str(exc)))
            return
        try:
            mapped = map_file(stream)
            members: Iterator[tuple[str, int, Any]]
            view = memoryview(mapped) if mapped is not None else None
            if mapped is not None:
                index = cached_index(stream, shard)
                if index is not None:  # read before in this process: no header walk
                    members = zip(index.keys, index.offsets.tolist(), index.sizes.tolist())
                else:
                    members = self._keys(iter_members(mapped, shard), shard, stream)
            else:
                members = self._keys(iter_stream_members(stream, shard), shard, None)
            for key, off, size_or_payload in members:
                payload = view[off : off + size_or_payload] if view is not None else size_or_payload
                if decode is None:
                    yield shard, key, payload
                    continue
                if fast is not None:
                    try:
                        sample = fast(payload)
                    except Exception:
                        pass
                    else:
                        yield sample
                        continue
                try:
                    sample = decode(shard, key, payload)
                except SampleError as exc:
                    self.fail(exc)
                    continue
                yield sample
        except ShardError as exc:
            self.fail(exc)
        finally:
            stream.close()

    def _keys(
        self, members: Iterator[tuple[str, int, Any]], shard: str, stream: IO[bytes] | None
    ) -> Iterator[tuple[str, int, Any]]:
        """``(key, offset, size or payload)`` of each sample member of a header walk.

        When the walk of a local file ends cleanly with only sample members, its
        offset index is kept, so reading the unchanged shard again walks no header.
        """
        keys: list[str] = []
        offsets: list[int] = []
        sizes: list[Any] = []
        clean = True
        for name, off, size_or_payload in members:
            key = name[:-8]
            if not (name[-8:] == _SUFFIX and "." not in key):
                found = self._member_key(shard, name, off)
                if found is None:
                    clean = False
                    continue
                key = found
            if stream is not None:
                keys.append(key)
                offsets.append(off)
                sizes.append(size_or_payload)
            yield key, off, size_or_payload
        if stream is not None and clean:
            keep_index(
                stream,
                ShardIndex(
                    shard, tuple(keys), np.asarray(offsets, np.int64), np.asarray(sizes, np.int64)
                ),
            )

    def _member_key(self, shard: str, name: str, off: int) -> str | None:
        """The key of a ``.msgpack`` member with dots in its directory; report any other member."""
        key, ext = split_name(name)
        if ext == "msgpack":
            return key
        self.fail(
            SampleError(
                f"member {name!r} at byte offset {off - BLOCK} is not a '.msgpack' payload "
                f"(extension {ext!r}); atdata samples are one '<key>.msgpack' member",
                key=key,
                shard=shard,
            )
        )
        return None

    def ordered(self, shards: list[str], copy: bool = True) -> Iterator[Any]:
        """The decoded samples of ``shards``, in shard order, then tar order."""
        decode = self.decoder(copy)
        fast = self.fast_decoder(copy)
        for shard in shards:
            yield from self.payloads(shard, decode, fast)

    def shuffled(
        self, order: list[str], rng: random.Random, buffer_shards: int, buffer_samples: int
    ) -> Iterator[tuple[str, str, Any]]:
        """Undecoded payloads of ``order``'s shards, ``buffer_shards`` interleaved, drawn
        at random from a buffer of ``buffer_samples``."""
        pending = iter(order)
        streams = [
            self.payloads(s)
            for s in (next(pending, None) for _ in range(max(1, buffer_shards)))
            if s
        ]
        buf: list[tuple[str, str, Any]] = []
        while streams:
            i = rng.randrange(len(streams))
            item = next(streams[i], None)
            if item is None:
                nxt = next(pending, None)
                if nxt is None:
                    streams.pop(i)
                else:
                    streams[i] = self.payloads(nxt)
                continue
            if len(buf) < buffer_samples:
                buf.append(item)
                continue
            j = rng.randrange(len(buf))
            yield buf[j]
            buf[j] = item
        rng.shuffle(buf)
        yield from buf

    def samples(self, payloads: Iterator[tuple[str, str, Any]], copy: bool = True) -> Iterator[Any]:
        """Decode ``(shard, key, payload)`` triples, skipping or raising a bad one."""
        decode = self.decoder(copy)
        if self.on_error == "raise":
            for shard, key, payload in payloads:
                yield decode(shard, key, payload)
            return
        for shard, key, payload in payloads:
            try:
                sample = decode(shard, key, payload)
            except SampleError as exc:
                self.fail(exc)
                continue
            yield sample

    def batches(
        self, payloads: Iterator[tuple[str, str, Any]], batch_size: int, sample_type: type
    ) -> Iterator[SampleBatch[Any]]:
        """Decode ``(shard, key, payload)`` triples into batches of ``batch_size`` samples."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, not {batch_size}")
        return self._batches(payloads, batch_size, sample_type)

    def _batches(
        self, payloads: Iterator[tuple[str, str, Any]], batch_size: int, sample_type: type
    ) -> Iterator[SampleBatch[Any]]:
        decode = self.decoder(copy=False)  # arrays are views; stacking makes the one copy
        chunk: list[Any] = []
        for shard, key, payload in payloads:
            try:
                chunk.append(decode(shard, key, payload))
            except SampleError as exc:
                self.fail(exc)
                continue
            if len(chunk) == batch_size:
                yield SampleBatch(chunk, sample_type)
                chunk = []
        if chunk:
            yield SampleBatch(chunk, sample_type)

    # ------------------------------------------------------------------ random access

    def shard_index(self, shard: str) -> ShardIndex:
        """The offset index of one shard (built once by a header walk, then kept)."""
        indexes: dict[str, ShardIndex] = self.__dict__.setdefault("_indexes", {})
        found = indexes.get(shard)
        if found is None:
            stream = self.open(shard)
            try:
                found = index_file(stream, shard)
            finally:
                stream.close()
            indexes[shard] = found
        return found

    def count(self, shard: str) -> int:
        """The number of samples in one shard (0 for a bad one with ``on_error="skip"``)."""
        if self.on_error == "raise":
            return len(self.shard_index(shard))
        try:
            return len(self.shard_index(shard))
        except AtdataError as exc:
            self.fail(exc)
            return 0

    def read_samples(
        self, shard_positions: Sequence[int], indices: Sequence[int], copy: bool = True
    ) -> list[Any]:
        """Decode many samples by (shard position, index in shard), through the offset index."""
        decoders = self.__dict__.get("_decoders")
        if decoders is None:
            decoders = self._decoders = {c: self.decoder(c) for c in (True, False)}
        decode = decoders[copy]
        fast = self.fast_decoder(copy)
        spans: dict[int, tuple[str, tuple[str, ...], list[int], list[int], memoryview]]
        spans = self.__dict__.setdefault("_spans", {})
        out = []
        for pos, i in zip(shard_positions, indices):
            span = spans.get(pos)
            if span is None:
                shard = self._shards()[pos]
                index = self.shard_index(shard)
                span = (
                    shard,
                    index.keys,
                    index.offsets.tolist(),
                    index.sizes.tolist(),
                    self._mapped(shard),
                )
                spans[pos] = span
            shard, keys, offsets, sizes, view = span
            off = offsets[i]
            payload = view[off : off + sizes[i]]
            if fast is not None:
                try:
                    out.append(fast(payload))
                    continue
                except Exception:
                    pass  # decode again below, for the error that names the shard and key
            out.append(decode(shard, keys[i], payload))
        return out

    def _shards(self) -> list[str]:
        shards = self.__dict__.get("_shard_ids")
        if shards is None:
            shards = self._shard_ids = self.source.list_shards()
        return shards

    def _mapped(self, shard: str) -> memoryview:
        """A memoryview over the whole shard (memory-mapped when local), kept for reuse."""
        maps: dict[str, memoryview] = self.__dict__.setdefault("_maps", {})
        view = maps.get(shard)
        if view is None:
            stream = self.open(shard)
            try:
                mapped = map_file(stream)
                view = memoryview(mapped if mapped is not None else stream.read())
                # local files only: a cached remote shard may be evicted once it is closed
                name = getattr(stream, "name", None)
                if (
                    mapped is not None
                    and isinstance(name, str | Path)
                    and local_path(shard) is not None
                ):
                    st = os.fstat(stream.fileno())
                    start = np.frombuffer(view, dtype=np.uint8).ctypes.data
                    path = os.path.abspath(os.fspath(name))
                    file = (path, st.st_dev, st.st_ino, st.st_size)
                    files: dict[str, MappedRegion] = self.__dict__.setdefault("_files", {})
                    files[shard] = (start, start + len(view), file)
            finally:
                stream.close()
            if len(maps) >= 64:
                evicted = next(iter(maps))
                maps.pop(evicted)
                self.__dict__.get("_files", {}).pop(evicted, None)
            maps[shard] = view
        return view

    def mapped_regions(self) -> dict[str, MappedRegion]:
        """Shard id -> :data:`MappedRegion` of each local shard mapped for random access in
        this process (for cheap DataLoader transfers)."""
        return self.__dict__.get("_files", {})
