"""The team stores' base class: each shard byte-copied, streaming, to an object at a URL the store names."""

from __future__ import annotations

import contextlib
import os
import tempfile
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from atdata._shard_check import CheckedStream, MemberCheck, member_checker, stored_type
from atdata._storage import AbstractDataStore, HashingReader, ShardInfo
from atdata._tar import TarWriter, iter_members, iter_stream_members, map_file, tar_size
from atdata.dataset import Dataset
from atdata.errors import ShardError
from atdata.protocols import DataSource
from atdata.sample import new_key
from atdata.sources import redact_url

__all__ = ["DataStore"]

_SUFFIX = ".msgpack"


class DataStore(AbstractDataStore):
    """A store keeping each shard as one object at a URL it names (local disk, S3).

    :meth:`copy_shards` copies every shard byte for byte (sample keys kept,
    nothing decoded), streaming, and records each shard's size and SHA-256.
    It either writes and verifies every shard or raises having removed what
    it wrote, so an index never points at partial data.
    """

    location: str
    """Where the store keeps shards (a folder, ``s3://bucket/prefix``)."""
    workers: int = 1
    """How many shards are copied at the same time."""

    def copy_shards(
        self, dataset: Dataset[Any], *, prefix: str, sample_type: type | None = None
    ) -> list[ShardInfo]:
        """Copy every shard of ``dataset`` to ``{prefix}/data-{run}-{i:06d}.tar``, verified.

        Each shard is checked as it streams: a whole tar whose every member is
        a sample decoding as ``sample_type`` (default: the dataset's stored
        type). A bad shard raises :class:`~atdata.ShardError` or
        :class:`~atdata.SampleError` and every copy made is removed.
        """
        check = member_checker(sample_type or stored_type(dataset))
        source = dataset.source
        shard_ids = source.list_shards()
        if not shard_ids:
            raise ValueError("the dataset has no shards to copy")
        run = new_key()[-12:]
        clean = _clean_prefix(prefix)
        urls = [self.url_for(f"{clean}/data-{run}-{i:06d}.tar") for i in range(len(shard_ids))]
        self.prepare()
        getattr(source, "client", None)  # a lazily made S3 client: make it in one thread
        try:
            if self.workers <= 1 or len(shard_ids) == 1:
                return [self._copy_shard(source, s, u, check) for s, u in zip(shard_ids, urls)]
            with ThreadPoolExecutor(min(self.workers, len(shard_ids))) as pool:
                futures = [
                    pool.submit(self._copy_shard, source, s, u, check)
                    for s, u in zip(shard_ids, urls)
                ]
                try:
                    return [f.result() for f in futures]
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
        except BaseException as exc:
            self.remove_after(exc, urls)
            raise

    def reshard(
        self,
        dataset: Dataset[Any],
        *,
        prefix: str,
        maxcount: int | None = None,
        maxsize: int | None = None,
        sample_type: type | None = None,
    ) -> list[ShardInfo]:
        """Copy every sample of ``dataset`` into new shards of at most ``maxcount`` samples
        and ``maxsize`` bytes, under ``{prefix}/data-{run}-{i:06d}.tar``, verified.

        Samples are copied as stored (keys and bytes kept, nothing decoded), in
        order. Each new shard is built in a temporary local file, then stored,
        so memory holds one sample at a time. A sample larger than ``maxsize``
        gets a shard of its own. With ``sample_type``, every sample is checked to
        decode as it before anything is stored. A failure removes every shard stored so far.
        """
        for label, limit in (("maxcount", maxcount), ("maxsize", maxsize)):
            if limit is not None and (not isinstance(limit, int) or limit < 1):
                raise ValueError(f"{label} must be a positive integer, not {limit!r}")
        source = dataset.source
        shard_ids = source.list_shards()
        if not shard_ids:
            raise ValueError("the dataset has no shards to copy")
        run = new_key()[-12:]
        clean = _clean_prefix(prefix)
        self.prepare()
        stored: list[ShardInfo] = []
        urls: list[str] = []

        def store(writer: TarWriter) -> None:
            writer.close()
            url = self.url_for(f"{clean}/data-{run}-{len(stored):06d}.tar")
            urls.append(url)
            with open(writer.path, "rb") as f:
                reader = HashingReader(f)
                self.put(reader, url, f"re-sharded shard {len(stored)}")
            info = ShardInfo(url, reader.size, reader.hexdigest())
            self.verify_written(info)
            stored.append(info)
            os.unlink(writer.path)

        try:
            with tempfile.TemporaryDirectory(prefix="atdata-reshard-") as tmp:
                writer: TarWriter | None = None
                for key, payload in _raw_samples(
                    source, shard_ids, member_checker(sample_type) if sample_type else None
                ):
                    size = len(payload)
                    if (
                        writer is None
                        or (maxcount is not None and writer.count >= maxcount)
                        or (
                            maxsize is not None
                            and writer.count
                            and tar_size(writer.offset, key + _SUFFIX, size) > maxsize
                        )
                    ):
                        if writer is not None:
                            store(writer)
                        writer = TarWriter(os.path.join(tmp, f"{len(stored):06d}.tar"))
                    writer.write(f"{key}.msgpack", [payload])
                if writer is None:
                    raise ValueError("the dataset has no samples to copy")
                store(writer)
        except BaseException as exc:
            self.remove_after(exc, urls)
            raise
        return stored

    def _copy_shard(
        self, source: DataSource, shard_id: str, url: str, check: MemberCheck
    ) -> ShardInfo:
        try:
            stream = source.open_shard(shard_id)
        except KeyError as exc:
            raise ShardError(redact_url(shard_id), str(exc)) from None
        except OSError as exc:
            raise ShardError(redact_url(shard_id), f"cannot open ({exc})") from None
        with contextlib.closing(stream):
            reader = HashingReader(CheckedStream(stream, redact_url(shard_id), check))
            self.put(reader, url, shard_id)
        info = ShardInfo(url, reader.size, reader.hexdigest())
        self.verify_written(info)
        return info

    def planned_url(self, prefix: str) -> str:
        """The URL of a shard copied under ``prefix`` (its folder and scheme; the file name differs)."""
        return self.url_for(f"{_clean_prefix(prefix)}/shard.tar")

    def prepare(self) -> None:
        """Check the destination before copying (for example that the bucket exists)."""

    @abstractmethod
    def url_for(self, key: str) -> str:
        """The URL of the object named ``key`` in this store."""

    @abstractmethod
    def put(self, reader: HashingReader, url: str, shard_id: str) -> None:
        """Stream ``reader`` to ``url``; raise :class:`ShardError` naming both on failure."""

    @abstractmethod
    def verify_written(self, shard: ShardInfo) -> None:
        """Raise :class:`ShardError` unless ``shard`` is stored with its recorded size."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"


def _raw_samples(
    source: DataSource, shard_ids: Sequence[str], check: MemberCheck | None = None
) -> Iterator[tuple[str, Any]]:
    """``(key, msgpack payload)`` of every sample of the shards, in order, undecoded
    (each checked first by ``check``, when given)."""
    for shard_id in shard_ids:
        where = redact_url(shard_id)
        try:
            stream = source.open_shard(shard_id)
        except KeyError as exc:
            raise ShardError(where, str(exc)) from None
        except OSError as exc:
            raise ShardError(where, f"cannot open ({exc})") from None
        with contextlib.closing(stream):
            mapped = map_file(stream)
            if mapped is not None:
                view = memoryview(mapped)
                members: Iterator[tuple[str, int, Any]] = (
                    (name, off, view[off : off + size])
                    for name, off, size in iter_members(mapped, where)
                )
            else:
                members = iter_stream_members(stream, where)
            for name, off, payload in members:
                if check is not None:
                    check(where, name, off, payload)
                key = name[: -len(_SUFFIX)]
                if not name.endswith(_SUFFIX) or "." in key.rsplit("/", 1)[-1]:
                    raise ShardError(
                        where,
                        f"member {name!r} is not a '<key>.msgpack' sample, so it cannot be "
                        "re-sharded (insert without maxcount/maxsize to copy shards as they are)",
                        offset=off - 512,
                    )
                yield key, payload


def _clean_prefix(prefix: str) -> str:
    parts = [p for p in str(prefix).replace("\\", "/").split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise ValueError(f"prefix {prefix!r} must name a folder, without '.' or '..' parts")
    return "/".join(parts)
