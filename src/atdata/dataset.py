"""``Dataset[T]``: typed, lazy iteration over tar shards, ordered, shuffled or batched.

>>> import atdata, tempfile
>>> import numpy as np
>>> @atdata.packable
... class Feature:
...     x: np.ndarray
...     label: int
>>> out = tempfile.mkdtemp()
>>> ds = atdata.write_samples(
...     (Feature(np.zeros(3), i) for i in range(10)), f"{out}/data.tar", maxcount=4
... )
>>> len(ds.list_shards())
3
>>> [batch.x.shape for batch in ds.ordered(batch_size=4)]
[(4, 3), (4, 3), (2, 3)]
"""

from __future__ import annotations

import copy
import itertools
import os
import random
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, overload

import numpy as np

from atdata._reader import OnError, Reader
from atdata.batch import SampleBatch
from atdata.cache import Prefetcher, ShardCache
from atdata.dict_sample import DictSample
from atdata.errors import SampleError
from atdata.lens import network
from atdata.protocols import DataSource
from atdata.sample import is_packable
from atdata.shard_index import ShardIndex
from atdata.sources import S3Source, URLSource, expand_urls
from atdata.writer import write_shards

if TYPE_CHECKING:
    from atdata.processing import Engine
    from atdata.torch_loader import TorchDataset

__all__ = ["Dataset", "write_samples"]

ST = TypeVar("ST")
V = TypeVar("V")
S = TypeVar("S")  # any @packable type: the decorator adds PackableSample at run time only
SourceLike = DataSource | str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


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
    #: How this dataset reads its shards (shared with :mod:`atdata.processing` and the
    #: PyTorch adapter; not a stable API).
    reader: Reader
    metadata_url: str | None

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

    @overload
    def __init__(
        self: Dataset[DictSample],
        source: SourceLike | None = None,
        metadata_url: str | None = None,
        *,
        sample_type: None = None,
        credentials: Mapping[str, str] | None = None,
        on_error: OnError = "raise",
        url: str | None = None,
        cache: ShardCache | bool | None = None,
        prefetch: int = 2,
    ) -> None: ...
    @overload
    def __init__(
        self,
        source: SourceLike | None = None,
        metadata_url: str | None = None,
        *,
        sample_type: type[ST] | None = None,
        credentials: Mapping[str, str] | None = None,
        on_error: OnError = "raise",
        url: str | None = None,
        cache: ShardCache | bool | None = None,
        prefetch: int = 2,
    ) -> None: ...
    def __init__(
        self,
        source: SourceLike | None = None,
        metadata_url: str | None = None,
        *,
        sample_type: type[Any] | None = None,
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
        resolved = make_source(source, credentials)
        remote: Prefetcher | None = None
        if cache is not False:
            shard_cache = cache if isinstance(cache, ShardCache) else ShardCache()
            remote = Prefetcher(shard_cache, resolved, prefetch)
        self.reader = Reader(resolved, on_error=on_error, read_type=self.sample_type, remote=remote)
        self._url = source if isinstance(source, str) else None
        self.metadata_url = metadata_url

    # ------------------------------------------------------------------ description

    @property
    def source(self) -> DataSource:
        """Where the shards are."""
        return self.reader.source

    @property
    def on_error(self) -> OnError:
        """``"raise"`` or ``"skip"``: what a bad sample or shard does."""
        return self.reader.on_error

    def streaming(self) -> Dataset[ST]:
        """This dataset reading remote shards as streams: no shard cache, no download step."""
        if self.reader.remote is None:
            return self
        out = copy.copy(self)
        out.reader = self.reader.replace(remote=None)
        return out

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

    def as_type(self, view_type: type[V]) -> Dataset[V]:
        """A view of this dataset as ``view_type`` through the shortest chain of lenses."""
        lens = network.transform(self.sample_type, view_type)
        cls = _typed(view_type)
        out = cls.__new__(cls)
        out._url = self._url
        out.metadata_url = self.metadata_url
        reader = self.reader  # the same source, shard cache and prefetching
        if self.sample_type is DictSample and lens is getattr(view_type, "_atdata_dict_lens", None):
            out.reader = reader.replace(read_type=view_type)  # decode straight into the view type
        else:
            out.reader = reader.replace(
                lens=lens if reader.lens is None else reader.lens.then(lens)
            )
        return out

    # ------------------------------------------------------------------ iteration

    def __iter__(self) -> Iterator[ST]:
        return self.ordered()

    def head(self, n: int = 5) -> list[ST]:
        """The first ``n`` samples in order."""
        out: list[ST] = []
        if n <= 0:
            return out
        for sample in self.ordered():
            out.append(sample)
            if len(out) >= n:
                break
        return out

    @overload
    def ordered(self, batch_size: None = None, *, copy: bool = True) -> Iterator[ST]: ...
    @overload
    def ordered(self, batch_size: int, *, copy: bool = True) -> Iterator[SampleBatch[ST]]: ...
    def ordered(
        self, batch_size: int | None = None, *, copy: bool = True
    ) -> Iterator[ST] | Iterator[SampleBatch[ST]]:
        """Samples in shard order, then tar order; batches of ``batch_size`` if given.

        ``copy=False`` (unbatched, typed samples): array fields are read-only NumPy
        views of the memory-mapped shard instead of owned copies. A view keeps the
        shard's map open for as long as it lives; copy it (``np.array(view)``) to
        modify it. Batches always own their stacked arrays.
        """
        reader = self.reader
        order = reader.prefetch(self.list_shards())
        if batch_size is None:
            return reader.ordered(order, copy)
        payloads = (p for s in order for p in reader.payloads(s))
        return reader.batches(payloads, batch_size, self.sample_type)

    @overload
    def shuffled(
        self,
        batch_size: None = None,
        *,
        seed: int | None = None,
        buffer_shards: int = 8,
        buffer_samples: int = 10_000,
        copy: bool = True,
    ) -> Iterator[ST]: ...
    @overload
    def shuffled(
        self,
        batch_size: int,
        *,
        seed: int | None = None,
        buffer_shards: int = 8,
        buffer_samples: int = 10_000,
        copy: bool = True,
    ) -> Iterator[SampleBatch[ST]]: ...
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
        reader = self.reader
        reader.prefetch(order)
        payloads = reader.shuffled(order, rng, buffer_shards, buffer_samples)
        if batch_size is None:
            return reader.samples(payloads, copy)
        return reader.batches(payloads, batch_size, self.sample_type)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_keymap", None)
        state.pop("_dupkeys", None)
        return state

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.sample_type, self.__getstate__()))

    # ------------------------------------------------------------------ random access

    def shard_index(self, shard: str) -> ShardIndex:
        """The offset index of one shard (built once by a header walk, then kept)."""
        return self.reader.shard_index(shard)

    def sample_counts(self) -> tuple[int, ...]:
        """The number of samples in each shard, in shard order.

        With ``on_error="skip"`` a shard that cannot be indexed warns and counts as empty.
        """
        reader = self.reader
        shards = reader.prefetch(self.list_shards())  # remote shards download ahead
        return tuple(reader.count(s) for s in shards)

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
                return self.read_sample(pos, j)
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
        return self.read_sample(pos, i)

    def read_sample(self, shard_pos: int, i: int, *, copy: bool = True) -> ST:
        """Decode sample ``i`` of the shard at position ``shard_pos`` without scanning the shard."""
        return self.reader.read_samples([shard_pos], [i], copy)[0]  # type: ignore[no-any-return]

    def read_samples(
        self, shard_positions: Sequence[int], indices: Sequence[int], *, copy: bool = True
    ) -> list[ST]:
        """Decode many samples by (shard position, index in shard), through the offset index."""
        return self.reader.read_samples(shard_positions, indices, copy)

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
    ) -> TorchDataset:
        """A ``torch.utils.data.IterableDataset`` over this dataset for DDP ranks and workers.

        See :mod:`atdata.distributed` for the exact rules (every sample once per
        epoch, equal counts per rank, the same order for any number of workers)
        and :class:`atdata.torch_loader.TorchDataset` for resume. Rank and world
        size come from ``torch.distributed`` or ``RANK``/``WORLD_SIZE``. Iterate
        ``ds.to_torch(batch_size=32, shuffle=True).loader(num_workers=2)`` for
        dicts of tensors. Needs ``torch``.
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
        ``pyarrow.parquet.ParquetWriter`` (``compression=...``), as in
        ``ds.to_parquet("features.parquet", compression="zstd")``. Needs ``pyarrow``.
        """
        from atdata._parquet import write_parquet

        return write_parquet(self, path, sample_map, maxcount, **kwargs)

    def to_hf(self) -> Any:
        """A Hugging Face ``datasets.IterableDataset`` over these shards, one dict per sample.

        One Hugging Face shard per atdata shard, so ``DataLoader`` workers and
        ``datasets.distributed.split_dataset_by_node`` split it by shard. Needs
        ``datasets`` (``pip install 'atdata[hf]'``); ``ds.to_hf().with_format("torch")``
        yields tensors.
        """
        from atdata._to_hf import to_hf

        return to_hf(self.reader, self.list_shards(), self.sample_type)

    # ------------------------------------------------------------------ processing

    def map_shards(
        self,
        fn: Callable[[ST], Any],
        output_pattern: str | os.PathLike[str],
        *,
        engine: Engine = "local",
        maxcount: int | None = None,
        num_workers: int | None = None,
        client: Any = None,
    ) -> Dataset[Any]:
        """``fn`` (a function or lens) applied to every sample, one output shard per input shard.

        Input shard ``i`` is written to ``output_pattern % i`` (a local path with a
        ``%06d``-style placeholder); with ``maxcount``, into pieces of at most
        ``maxcount`` samples (``<name>-001.tar``, ...). Keys are kept, samples for
        which ``fn`` returns None are dropped, and shards whose output exists are
        skipped, so a rerun resumes. ``engine="local"`` runs ``num_workers``
        processes (default: one per CPU; 0 runs here); ``engine="dask"`` uses
        ``client``, the current Dask client, or a local cluster of ``num_workers``.
        With processes, ``fn`` and the sample types must be importable (picklable).
        The new dataset's type is ``fn``'s declared output type (a lens's view type
        or a ``@packable`` return annotation), else that of the samples written.

        >>> import atdata, tempfile
        >>> @atdata.packable
        ... class Num:
        ...     value: int
        >>> out = tempfile.mkdtemp()
        >>> ds = atdata.write_samples([Num(1), Num(2)], f"{out}/in.tar")
        >>> twice = ds.map_shards(lambda n: Num(n.value * 2), f"{out}/out-%06d.tar", num_workers=0)
        >>> [n.value for n in twice]
        [2, 4]
        """
        from atdata.processing import map_shards

        paths, out_type = map_shards(
            self.reader,
            self.list_shards(),
            fn,
            output_pattern,
            engine=engine,
            maxcount=maxcount,
            num_workers=num_workers,
            client=client,
        )
        return _typed(out_type)(paths)


def write_samples(
    samples: Iterable[S],
    pattern: str | os.PathLike[str],
    *,
    maxcount: int | None = None,
    maxsize: int | None = None,
) -> Dataset[S]:
    """Write samples to tar shards and return the :class:`Dataset` that reads them back.

    ``pattern`` is a file name, or a ``%06d`` pattern; with ``maxcount`` or
    ``maxsize`` and no placeholder, ``-%06d`` is added before the extension.
    All samples have one type. All or nothing: when writing fails (or is
    interrupted), the shards this call completed are removed again, and a
    killed process leaves no shard under a shard name but complete ones.

    >>> import atdata, tempfile
    >>> @atdata.packable
    ... class Word:
    ...     text: str
    >>> out = tempfile.mkdtemp()
    >>> ds = write_samples([Word("a"), Word("b"), Word("c")], f"{out}/w.tar", maxcount=2)
    >>> [p.rsplit("/", 1)[1] for p in ds.list_shards()], [w.text for w in ds]
    (['w-000000.tar', 'w-000001.tar'], ['a', 'b', 'c'])
    """
    it = iter(samples)
    first = next(it, None)
    if first is None:
        raise ValueError("write_samples got no samples")
    paths = write_shards(itertools.chain([first], it), pattern, maxcount=maxcount, maxsize=maxsize)
    return _typed(type(first))(paths)


def _typed(sample_type: type[V]) -> type[Dataset[V]]:
    """``Dataset[sample_type]``, the class, for a type known only at run time."""
    return Dataset[sample_type]  # type: ignore[valid-type,no-any-return]


def _rebuild(sample_type: type, state: dict[str, Any]) -> Dataset[Any]:
    """Unpickle a dataset (its typed class is created on the fly by ``Dataset[T]``)."""
    cls = _typed(sample_type)
    ds = cls.__new__(cls)
    ds.__dict__.update(state)
    return ds
