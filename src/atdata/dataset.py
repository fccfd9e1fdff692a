"""``Dataset[T]``: typed, lazy iteration over tar shards, ordered, shuffled or batched.

>>> import atdata, numpy as np
>>> from numpy.typing import NDArray
>>> @atdata.packable
... class Feature:
...     x: NDArray
...     label: int
>>> # ds = atdata.Dataset[Feature]("data-{000000..000009}.tar")
>>> # for batch in ds.ordered(batch_size=32): batch.x.shape
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, ClassVar, Generic, Literal, TypeVar

import numpy as np

from atdata._codec import decoder_for as _decoder_for
from atdata._tar import iter_members, iter_stream_members, map_file
from atdata.batch import SampleBatch
from atdata.cache import Prefetcher, ShardCache
from atdata.dict_sample import DictSample
from atdata.errors import AtdataError, SampleError, ShardError
from atdata.lens import Lens, network
from atdata.protocols import DataSource
from atdata.sample import is_packable
from atdata.shard_index import ShardIndex, cached_index, index_file, keep_index
from atdata.sources import S3Source, URLSource, expand_urls, local_path

__all__ = ["Dataset"]

ST = TypeVar("ST")
OnError = Literal["raise", "skip"]
SourceLike = DataSource | str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
_SUFFIX = ".msgpack"


def make_source(source: SourceLike, credentials: Mapping[str, str] | None = None) -> DataSource:
    """Turn a path, URL, brace pattern or list of them into a :class:`DataSource`."""
    if isinstance(source, DataSource) and not isinstance(source, str):
        return source
    urls = expand_urls(source)  # type: ignore[arg-type]
    if not urls:
        raise ValueError("the dataset source names no shards")
    if all(u.startswith("s3://") for u in urls):
        if credentials:
            return S3Source.from_credentials(credentials, *_one_bucket(urls))
        return S3Source.from_urls(urls)
    return URLSource(urls)


def _one_bucket(urls: list[str]) -> tuple[str, list[str]]:
    src = S3Source.from_urls(urls)
    return src.bucket, src.keys


def _split_name(name: str) -> tuple[str, str]:
    """WebDataset's rule: the key is the path up to the first dot of the base name."""
    base = name.rfind("/") + 1
    dot = name.find(".", base)
    if dot < 0:
        return name, ""
    return name[:dot], name[dot + 1 :]


class Dataset(Generic[ST]):
    """A dataset of typed samples stored as tar shards.

    ``source`` is a path or URL (local, ``file://``, ``http(s)://``, ``s3://``),
    a brace pattern, a list of those, or any :class:`~atdata.DataSource`.
    ``Dataset[T](...)`` decodes samples as ``T``; without a type, samples are
    :class:`~atdata.DictSample`. ``credentials`` (``AWS_*`` keys) are used for
    ``s3://`` URLs. ``on_error="skip"`` warns and skips a bad sample (or the rest
    of a corrupt shard) instead of raising. Remote shards are read from a local
    :class:`~atdata.cache.ShardCache` (``cache=None``: the default one under
    ``$ATDATA_HOME/cache``; ``False``: stream without caching), with the next
    ``prefetch`` shards downloaded while the current one is read.
    ``metadata_url`` names a msgpack map of dataset-level metadata (read on
    first access of :attr:`metadata`).

    >>> ds = Dataset("shards/data-{000000..000002}.tar")
    >>> ds.list_shards()[-1]
    'shards/data-000002.tar'
    """

    sample_type: ClassVar[type] = DictSample
    _typed: ClassVar[dict[type, type]] = {}

    def __class_getitem__(cls, item: Any) -> Any:
        if isinstance(item, TypeVar) or item is Any:
            return super().__class_getitem__(item)  # type: ignore[misc]
        if not (is_packable(item) or item is DictSample):
            raise TypeError(
                f"Dataset[...] takes a @packable sample type or DictSample, not {item!r}"
            )
        typed = cls._typed.get(item)
        if typed is None:
            typed = type(
                f"Dataset[{item.__name__}]",
                (cls,),
                {"sample_type": item, "__module__": cls.__module__},
            )
            cls._typed[item] = typed
        return typed

    def __init__(
        self,
        source: SourceLike | None = None,
        metadata_url: str | None = None,
        *,
        sample_type: type | None = None,
        credentials: Mapping[str, str] | None = None,
        on_error: OnError = "raise",
        url: str | None = None,
        cache: ShardCache | bool | None = None,
        prefetch: int = 2,
    ) -> None:
        if source is None:
            source = url
        if source is None:
            raise TypeError(
                "Dataset needs a source: a path, URL, brace pattern, list or DataSource"
            )
        if sample_type is not None:
            self.sample_type = sample_type  # type: ignore[misc]
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
        self.source: DataSource = make_source(source, credentials)
        self.on_error: OnError = on_error
        self._lens: Lens[Any, Any] | None = None
        self._read_type: type = self.sample_type
        self._url = source if isinstance(source, str) else None
        self.metadata_url = metadata_url
        self._remote: Prefetcher | None = None
        if cache is not False:
            shard_cache = cache if isinstance(cache, ShardCache) else ShardCache()
            self._remote = Prefetcher(shard_cache, self.source, prefetch)

    # ------------------------------------------------------------------ description

    @property
    def url(self) -> str:
        """The source as given when it was a string, else a space-free list of every shard."""
        return self._url if self._url is not None else " ".join(self.list_shards())

    def list_shards(self) -> list[str]:
        """Every shard id of the source, in order."""
        return self.source.list_shards()

    @property
    def shards(self) -> Iterator[str]:
        """Iterate over shard ids."""
        return iter(self.list_shards())

    @property
    def shard_list(self) -> list[str]:
        """Every shard id (the existing atdata's deprecated name of :meth:`list_shards`)."""
        warnings.warn(
            "shard_list is deprecated, use list_shards() instead", DeprecationWarning, stacklevel=2
        )
        return self.list_shards()

    @property
    def metadata(self) -> dict[str, Any] | None:
        """The msgpack map at ``metadata_url`` (read once, then cached), or None without one."""
        if self.metadata_url is None:
            return None
        cached: dict[str, Any] | None = self.__dict__.get("_metadata")
        if cached is None:
            from atdata._metadata import read_metadata

            cached = self._metadata = read_metadata(self.metadata_url)
        return cached

    @property
    def batch_type(self) -> type:
        """``SampleBatch[T]`` for this dataset's sample type."""
        return SampleBatch[self.sample_type]  # type: ignore[name-defined,return-value]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.list_shards())} shards)"

    # ------------------------------------------------------------------ views

    def as_type(self, view_type: type) -> Dataset[Any]:
        """A view of this dataset as ``view_type`` through the shortest chain of lenses."""
        lens = network.transform(self.sample_type, view_type)
        out: Dataset[Any] = Dataset[view_type](self.source, on_error=self.on_error)  # type: ignore[valid-type]
        out._url = self._url
        out.metadata_url = self.metadata_url
        out._remote = self._remote  # the same shard cache and prefetching
        if self.sample_type is DictSample and lens is getattr(view_type, "_atdata_dict_lens", None):
            out._read_type = view_type  # decode straight into the view type
        else:
            out._lens = lens if self._lens is None else self._lens.then(lens)
            out._read_type = self._read_type
        return out

    # ------------------------------------------------------------------ iteration

    def __iter__(self) -> Iterator[ST]:
        return self.ordered()  # type: ignore[return-value]

    def head(self, n: int = 5) -> list[ST]:
        """The first ``n`` samples in order."""
        out: list[ST] = []
        if n <= 0:
            return out
        for sample in self.ordered():
            out.append(sample)  # type: ignore[arg-type]
            if len(out) >= n:
                break
        return out

    def ordered(
        self, batch_size: int | None = None, *, copy: bool = True
    ) -> Iterator[ST] | Iterator[SampleBatch[ST]]:
        """Samples in shard order, then tar order; batches of ``batch_size`` if given.

        ``copy=False`` (unbatched, typed samples): array fields are read-only NumPy
        views of the memory-mapped shard instead of owned copies. A view keeps the
        shard's map open for as long as it lives; copy it (``np.array(view)``) to
        modify it. Batches always own their stacked arrays.
        """
        order = self._prefetch_order(self.list_shards())
        if batch_size is None:
            return self._ordered_samples(order, copy)
        return self._emit((p for s in order for p in self._payloads(s)), batch_size)

    def _ordered_samples(self, shards: list[str], copy: bool = True) -> Iterator[Any]:
        decode = self._decoder(copy=copy)
        fast = self._fast_decoder(copy)
        for shard in shards:
            yield from self._payloads(shard, decode, fast)

    def shuffled(
        self,
        batch_size: int | None = None,
        *,
        seed: int | None = None,
        buffer_shards: int = 8,
        buffer_samples: int = 10_000,
        copy: bool = True,
    ) -> Iterator[ST] | Iterator[SampleBatch[ST]]:
        """Samples in a random order that is the same for the same ``seed``.

        The shard order is permuted; ``buffer_shards`` shards are read
        interleaved, and a buffer of ``buffer_samples`` undecoded samples
        (views into memory-mapped shards, so cheap) is drawn from at random.
        ``copy=False`` hands out read-only array views, as in :meth:`ordered`.
        """
        rng = random.Random(seed if seed is not None else random.SystemRandom().getrandbits(64))
        order = self.list_shards()
        rng.shuffle(order)
        self._prefetch_order(order)
        return self._emit(
            self._shuffled_payloads(order, rng, buffer_shards, buffer_samples), batch_size, copy
        )

    def _shuffled_payloads(
        self, order: list[str], rng: random.Random, buffer_shards: int, buffer_samples: int
    ) -> Iterator[tuple[str, str, Any]]:
        pending = iter(order)
        streams = [
            self._payloads(s)
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
                    streams[i] = self._payloads(nxt)
                continue
            if len(buf) < buffer_samples:
                buf.append(item)
                continue
            j = rng.randrange(len(buf))
            yield buf[j]
            buf[j] = item
        rng.shuffle(buf)
        yield from buf

    def _payloads(
        self,
        shard: str,
        decode: Callable[[str, str, Any], Any] | None = None,
        fast: Callable[[Any], Any] | None = None,
    ) -> Iterator[Any]:
        """``(shard, key, payload)`` for every sample of one shard, or the decoded samples.

        Payloads are memoryviews into the memory-mapped shard when it is a local
        file. With ``decode``, samples are decoded here (one generator level less
        on the hottest path) and a bad one is skipped or raised per ``on_error``.
        """
        try:
            stream = self._open(shard)
        except (ShardError, KeyError, OSError) as exc:
            self._fail(exc if isinstance(exc, ShardError) else ShardError(shard, str(exc)))
            return
        try:
            mapped = map_file(stream)
            members: Iterator[tuple[str, int, Any]]
            if mapped is not None:
                view = memoryview(mapped)
                index = cached_index(stream, shard)
                if index is not None:  # read before in this process: no header walk
                    members = zip(index.keys, index.offsets.tolist(), index.sizes.tolist())
                else:
                    members = self._keys(iter_members(mapped, shard), shard, stream)
            else:
                members = self._keys(iter_stream_members(stream, shard), shard, None)
            for key, off, size_or_payload in members:
                payload = (
                    view[off : off + size_or_payload] if mapped is not None else size_or_payload
                )
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
                    self._fail(exc)
                    continue
                yield sample
        except ShardError as exc:
            self._fail(exc)
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

    def _open(self, shard: str) -> IO[bytes]:
        """Open one shard for reading; a remote one as its local copy in the shard cache."""
        if self._remote is None or local_path(shard) is not None:
            return self.source.open_shard(shard)
        return self._remote.open(shard)

    def _prefetch_order(self, shards: list[str]) -> list[str]:
        """Announce the order of the next shard reads, so remote ones download ahead; return it."""
        if self._remote is not None:
            self._remote.prefetch([s for s in shards if local_path(s) is None])
        return shards

    def _member_key(self, shard: str, name: str, off: int) -> str | None:
        """The key of a ``.msgpack`` member with dots in its directory; report any other member."""
        key, ext = _split_name(name)
        if ext == "msgpack":
            return key
        self._fail(
            SampleError(
                f"member {name!r} at byte offset {off - 512} is not a '.msgpack' payload "
                f"(extension {ext!r}); atdata samples are one '<key>.msgpack' member",
                key=key,
                shard=shard,
            )
        )
        return None

    def _fail(self, exc: AtdataError) -> None:
        if self.on_error == "raise":
            raise exc
        warnings.warn(f"skipped: {exc}", stacklevel=3)

    def _decoder(self, copy: bool) -> Callable[[str, str, Any], Any]:
        read_type = self._read_type
        lens = self._lens
        if read_type is DictSample:

            def decode(shard: str, key: str, payload: Any) -> Any:
                return DictSample.from_bytes(payload, key=key)
        else:
            dec = _decoder_for(read_type).decode

            def decode(shard: str, key: str, payload: Any) -> Any:
                return dec(payload, copy, key, shard)

        if lens is None:
            return decode
        get = lens.get
        return lambda shard, key, payload: get(decode(shard, key, payload))

    def _emit(
        self, payloads: Iterator[tuple[str, str, Any]], batch_size: int | None, copy: bool = True
    ) -> Iterator[Any]:
        if batch_size is None:
            return self._samples(payloads, copy)
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, not {batch_size}")
        return self._batches(payloads, batch_size)

    def _samples(
        self, payloads: Iterator[tuple[str, str, Any]], copy: bool = True
    ) -> Iterator[Any]:
        decode = self._decoder(copy=copy)
        if self.on_error == "raise":
            for shard, key, payload in payloads:
                yield decode(shard, key, payload)
            return
        for shard, key, payload in payloads:
            try:
                sample = decode(shard, key, payload)
            except SampleError as exc:
                self._fail(exc)
                continue
            yield sample

    def _batches(self, payloads: Iterator[tuple[str, str, Any]], batch_size: int) -> Iterator[Any]:
        decode = self._decoder(copy=False)  # arrays are views; stacking makes the one copy
        sample_type = self.sample_type
        chunk: list[Any] = []
        for shard, key, payload in payloads:
            try:
                chunk.append(decode(shard, key, payload))
            except SampleError as exc:
                self._fail(exc)
                continue
            if len(chunk) == batch_size:
                yield SampleBatch(chunk, sample_type)
                chunk = []
        if chunk:
            yield SampleBatch(chunk, sample_type)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_maps", None)  # memory maps are per process
        state.pop("_keymap", None)
        state.pop("_dupkeys", None)
        for per_process in ("_decoders", "_spans", "_shard_ids", "_files"):
            state.pop(per_process, None)  # closures and memory maps, rebuilt on first use
        return state

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.sample_type, self.__getstate__()))

    # ------------------------------------------------------------------ random access

    def shard_index(self, shard: str) -> ShardIndex:
        """The offset index of one shard (built once by a header walk, then kept)."""
        indexes: dict[str, ShardIndex] = self.__dict__.setdefault("_indexes", {})
        found = indexes.get(shard)
        if found is None:
            stream = self._open(shard)
            try:
                found = index_file(stream, shard)
            finally:
                stream.close()
            indexes[shard] = found
        return found

    def sample_counts(self) -> tuple[int, ...]:
        """The number of samples in each shard, in shard order.

        With ``on_error="skip"`` a shard that cannot be indexed warns and counts as empty.
        """
        shards = self._prefetch_order(self.list_shards())  # remote shards download ahead
        return tuple(self._count(s) for s in shards)

    def _count(self, shard: str) -> int:
        if self.on_error == "raise":
            return len(self.shard_index(shard))
        try:
            return len(self.shard_index(shard))
        except AtdataError as exc:
            self._fail(exc)
            return 0

    def __len__(self) -> int:
        return sum(self.sample_counts())

    def __getitem__(self, i: int) -> ST:
        """The ``i``-th sample in dataset order, read through the offset index."""
        if not isinstance(i, int | np.integer):
            raise TypeError(f"dataset indices are integers, not {type(i).__name__}")
        counts = self.sample_counts()
        n = sum(counts)
        j = int(i) + n if i < 0 else int(i)
        if not 0 <= j < n:
            raise IndexError(f"sample {i} is out of range for a dataset of {n} samples")
        for pos, c in enumerate(counts):
            if j < c:
                return self.read_sample(pos, j)  # type: ignore[no-any-return]
            j -= c
        raise AssertionError("unreachable")

    def get(self, key: str) -> ST:
        """The sample with this key, read through the offset index.

        Raises ``KeyError`` if no sample has the key, and
        :class:`~atdata.SampleError` naming every place it occurs if several do
        (in one shard or in several): keys of a dataset are unique, so a
        duplicate is an error, never a silent choice.
        """
        keymap: dict[str, tuple[int, int]] | None = self.__dict__.get("_keymap")
        if keymap is None:
            keymap = {}
            dups: dict[str, list[tuple[int, int]]] = {}
            for pos, shard in enumerate(self.list_shards()):
                for i, k in enumerate(self.shard_index(shard).keys):
                    if keymap.setdefault(k, (pos, i)) != (pos, i):
                        dups.setdefault(k, [keymap[k]]).append((pos, i))
            self._keymap, self._dupkeys = keymap, dups
        try:
            pos, i = keymap[key]
        except KeyError:
            raise KeyError(f"no sample with key {key!r} in {self!r}") from None
        places: list[tuple[int, int]] | None = self._dupkeys.get(key)
        if places:
            shards = self.list_shards()
            where = "; ".join(
                f"{shards[p]} at byte offset {int(self.shard_index(shards[p]).offsets[j]) - 512}"
                for p, j in places
            )
            raise SampleError(
                f"{len(places)} samples have this key ({where}); get() needs unique keys, "
                "iterate or index by position to read them",
                key=key,
                shard=shards[pos],
            )
        return self.read_sample(pos, i)  # type: ignore[no-any-return]

    def read_sample(self, shard_pos: int, i: int, *, copy: bool = True) -> Any:
        """Decode sample ``i`` of the shard at position ``shard_pos`` without scanning the shard."""
        return self.read_samples([shard_pos], [i], copy=copy)[0]

    def read_samples(
        self, shard_positions: Sequence[int], indices: Sequence[int], *, copy: bool = True
    ) -> list[Any]:
        """Decode many samples by (shard position, index in shard), through the offset index."""
        decode = self._random_access()[copy]
        fast = self._fast_decoder(copy)
        spans: dict[int, tuple[str, tuple[str, ...], list[int], list[int], memoryview]]
        spans = self.__dict__.setdefault("_spans", {})
        out = []
        for pos, i in zip(shard_positions, indices):
            span = spans.get(pos)
            if span is None:
                shard = self._random_access_shards()[pos]
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

    def _fast_decoder(self, copy: bool) -> Callable[[Any], Any] | None:
        """The hot-path decoder of typed samples without a lens (None otherwise)."""
        if self._lens is not None or self._read_type is DictSample:
            return None
        return _decoder_for(self._read_type).fast(copy)

    def _random_access(self) -> dict[bool, Callable[[str, str, Any], Any]]:
        decoders = self.__dict__.get("_decoders")
        if decoders is None:
            decoders = self._decoders = {c: self._decoder(c) for c in (True, False)}
        return decoders

    def _random_access_shards(self) -> list[str]:
        shards = self.__dict__.get("_shard_ids")
        if shards is None:
            shards = self._shard_ids = self.list_shards()
        return shards

    def _mapped(self, shard: str) -> memoryview:
        """A memoryview over the whole shard (memory-mapped when local), kept for reuse."""
        maps: dict[str, memoryview] = self.__dict__.setdefault("_maps", {})
        view = maps.get(shard)
        if view is None:
            stream = self._open(shard)
            try:
                mapped = map_file(stream)
                view = memoryview(mapped if mapped is not None else stream.read())
                # local files only: a cached remote shard may be evicted once it is closed
                named = isinstance(getattr(stream, "name", None), str | Path)
                if mapped is not None and named and local_path(shard) is not None:
                    st = os.fstat(stream.fileno())
                    start = np.frombuffer(view, dtype=np.uint8).ctypes.data
                    path = os.path.abspath(os.fspath(stream.name))
                    file = (path, st.st_dev, st.st_ino, st.st_size)
                    files: dict[str, tuple[int, int, tuple[str, int, int, int]]]
                    files = self.__dict__.setdefault("_files", {})
                    files[shard] = (start, start + len(view), file)
            finally:
                stream.close()
            if len(maps) >= 64:
                evicted = next(iter(maps))
                maps.pop(evicted)
                self.__dict__.get("_files", {}).pop(evicted, None)
            maps[shard] = view
        return view

    def _mapped_regions(self) -> dict[str, tuple[int, int, tuple[str, int, int, int]]]:
        """Shard id -> (start address, end address, (path, device, inode, size)) of each local
        shard mapped for random access in this process (for cheap DataLoader transfers)."""
        return self.__dict__.get("_files", {})

    # ------------------------------------------------------------------ PyTorch

    def to_torch(
        self,
        batch_size: int | None = None,
        *,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        block_shards: int = 4,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> Any:
        """A ``torch.utils.data.IterableDataset`` over this dataset for DDP ranks and workers.

        See :mod:`atdata.distributed` for the exact rules (every sample once per
        epoch, equal counts per rank, the same order for any number of workers)
        and :class:`atdata.torch_loader.TorchDataset` for resume. Rank and world
        size come from ``torch.distributed`` or ``RANK``/``WORLD_SIZE``.

        >>> # loader = ds.to_torch(batch_size=32, shuffle=True).loader(num_workers=2)
        >>> # for batch in loader: batch["image"].shape
        """
        from atdata.torch_loader import TorchDataset

        return TorchDataset(
            self,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
            block_shards=block_shards,
            rank=rank,
            world_size=world_size,
        )

    # ------------------------------------------------------------------ export

    def to_parquet(
        self,
        path: str | os.PathLike[str],
        sample_map: Callable[[Any], Mapping[str, Any]] | None = None,
        maxcount: int | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Write the samples to Parquet, one row per sample, in bounded memory; return the files.

        Array fields become Arrow fixed-shape tensor columns (one shape and
        dtype per column). ``sample_map`` turns a sample into the row dict;
        with ``maxcount``, files of at most that many rows are written as
        ``{stem}-{i:06d}{suffix}``. ``row_group_size`` (rows) and
        ``row_group_bytes`` bound each row group; other keyword arguments go to
        ``pyarrow.parquet.ParquetWriter`` (``compression=...``). Needs ``pyarrow``.

        >>> # ds.to_parquet("features.parquet", compression="zstd")
        """
        from atdata._parquet import write_parquet

        return write_parquet(self, path, sample_map, maxcount, **kwargs)

    def to_hf(self) -> Any:
        """A Hugging Face ``datasets.IterableDataset`` over these shards, one dict per sample.

        One Hugging Face shard per atdata shard, so ``DataLoader`` workers and
        ``datasets.distributed.split_dataset_by_node`` split it by shard. Needs
        ``datasets`` (``pip install 'atdata[hf]'``).

        >>> # hf = ds.to_hf().with_format("torch")
        """
        from atdata._hf import to_hf

        return to_hf(self)

    # ------------------------------------------------------------------ processing

    def map_shards(
        self, fn: Callable[[Any], Any], output_pattern: str, **kwargs: Any
    ) -> Dataset[Any]:
        """``fn`` (a function or lens) applied to every sample, one output shard per input shard.

        Keyword arguments (``engine="local"|"dask"``, ``maxcount``, ``num_workers``,
        ``client``) are those of :func:`atdata.processing.map_dataset`.

        >>> # gray = ds.map_shards(to_gray, "gray/data-%06d.tar", engine="dask")
        """
        from atdata.processing import map_dataset

        return map_dataset(self, fn, output_pattern, **kwargs)


def _rebuild(sample_type: type, state: dict[str, Any]) -> Dataset[Any]:
    """Unpickle a dataset (its typed class is created on the fly by ``Dataset[T]``)."""
    ds = Dataset[sample_type].__new__(Dataset[sample_type])  # type: ignore[valid-type]
    ds.__dict__.update(state)
    return ds
