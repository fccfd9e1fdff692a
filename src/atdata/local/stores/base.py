"""The data store contract: byte-copy shards in, hand out sources that read them back verified."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

from atdata._shard_check import CheckedStream, MemberCheck, member_checker, stored_type
from atdata._tar import TarWriter, iter_members, iter_stream_members, map_file
from atdata._tar import closed_size as _closed_size
from atdata.dataset import Dataset
from atdata.errors import OrphanedDataError, ShardError
from atdata.local.entry import ShardInfo
from atdata.protocols import DataSource
from atdata.sample import new_key
from atdata.sources import redact_url

__all__ = ["DataStore", "HashingReader", "VerifiedSource"]

_SUFFIX = ".msgpack"
_TAIL = 64 * 1024
"""A stream closed with at most this much unread (the tar end padding) is drained and checked."""


class DataStore(ABC):
    """Where shard bytes live: implements :class:`~atdata.AbstractDataStore`.

    :meth:`copy_shards` copies every shard byte for byte (sample keys kept,
    nothing decoded), streaming, and records each shard's size and SHA-256.
    It either writes and verifies every shard or raises having removed what
    it wrote, so an index never points at partial data.
    """

    location: str
    workers: int = 1
    """How many shards are copied at the same time."""

    def write_shards(self, dataset: Dataset[Any], *, prefix: str, **kwargs: Any) -> list[str]:
        """Copy the dataset's shards under ``prefix``; return their URLs."""
        return [s.url for s in self.copy_shards(dataset, prefix=prefix)]

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
                            and _closed_size(writer.offset, key, size) > maxsize
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

    def remove_after(self, exc: BaseException, urls: Sequence[str]) -> None:
        """Remove ``urls`` after ``exc`` ended a write; if that fails, say what is left behind.

        Raises :class:`~atdata.OrphanedDataError` (from ``exc``) listing the URLs
        that may remain; for an interrupt, the list is added to it as a note.
        """
        try:
            self.delete(urls)
        except Exception as cleanup:
            if isinstance(cleanup, OrphanedDataError):
                orphaned, reason = cleanup.orphaned, cleanup.reason
            else:
                orphaned, reason = list(urls), f"{type(cleanup).__name__}: {cleanup}"
            if not isinstance(exc, Exception):
                exc.add_note(f"removing the copies failed ({reason}); left behind: {orphaned}")
                return
            raise OrphanedDataError(
                f"{exc}; removing the copies failed too ({reason})", orphaned
            ) from exc

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

    def prepare(self) -> None:  # noqa: B027 - optional hook
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

    @abstractmethod
    def delete(self, urls: Sequence[str]) -> None:
        """Remove stored shards (missing ones are ignored)."""

    @abstractmethod
    def owns(self, url: str) -> bool:
        """True when ``url`` names a shard in this store."""

    @abstractmethod
    def create_source(self, urls: Sequence[str]) -> DataSource:
        """A source reading these shards of the store, with the store's credentials."""

    @abstractmethod
    def read_url(self, url: str) -> str:
        """A URL for ``url`` that readers without the store's credentials can open."""

    def supports_streaming(self) -> bool:
        """True: shards are read as streams, never downloaded whole first."""
        return True

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


class HashingReader(io.RawIOBase):
    """A read-only, non-seekable view of a stream that counts and hashes what is read."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._hash = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        data = self._stream.read() if n is None or n < 0 else self._stream.read(n)
        if data:
            self._hash.update(data)
            self.size += len(data)
        return data or b""

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(memoryview(buffer)))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)

    def hexdigest(self) -> str:
        """The SHA-256 of the bytes read so far."""
        return self._hash.hexdigest()


class _CheckedStream(io.RawIOBase):
    """Reads a remote shard, checking its size as it goes and its SHA-256 at the end."""

    def __init__(self, stream: IO[bytes], info: ShardInfo, shard_id: str) -> None:
        self._reader = HashingReader(stream)
        self._stream = stream
        self._info = info
        self._shard = redact_url(shard_id)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._reader.readinto(buffer)
        if self._info.size is not None and self._reader.size > self._info.size:
            raise ShardError(self._shard, f"longer than the {self._info.size} bytes recorded")
        return n

    def close(self) -> None:
        if self.closed:
            return
        try:
            expected = self._info.size
            remaining = expected - self._reader.size if expected is not None else 0
            if 0 <= remaining <= _TAIL:  # read to the end (but the tar padding): check it
                while self._reader.read(_TAIL):
                    pass
                self._check()
        finally:
            self._stream.close()
            super().close()

    def _check(self) -> None:
        info = self._info
        if info.size is not None and self._reader.size != info.size:
            raise ShardError(self._shard, f"{self._reader.size} bytes, {info.size} recorded")
        if info.sha256 is not None and self._reader.hexdigest() != info.sha256:
            raise ShardError(
                self._shard,
                f"SHA-256 {self._reader.hexdigest()} differs from the recorded {info.sha256}",
            )


class VerifiedSource:
    """A :class:`~atdata.DataSource` that checks shards against their recorded size and SHA-256.

    A local file is hashed the first time it is opened (then memory-mapped as
    usual; it is hashed again only if it changed); a stream is hashed as it is
    read and checked when read to the end. A mismatch raises
    :class:`~atdata.ShardError`.
    """

    def __init__(self, inner: DataSource, shards: Mapping[str, ShardInfo]) -> None:
        self.inner = inner
        self.shards = dict(shards)
        self._verified: set[tuple[str, int, int, int, int]] = set()

    def list_shards(self) -> list[str]:
        """The inner source's shards."""
        return self.inner.list_shards()

    @property
    def shard_list(self) -> list[str]:
        """The existing atdata's name of :meth:`list_shards`."""
        return self.list_shards()

    def open_shard(self, shard_id: str) -> IO[bytes]:
        """Open a shard of the inner source, checked."""
        stream = self.inner.open_shard(shard_id)
        info = self.shards.get(shard_id)
        if info is None or (info.size is None and info.sha256 is None):
            return stream
        try:
            st = os.fstat(stream.fileno())
            local = stat.S_ISREG(st.st_mode)
        except (AttributeError, OSError, io.UnsupportedOperation):
            local = False
        if not local:
            return io.BufferedReader(_CheckedStream(stream, info, shard_id), buffer_size=1 << 20)
        seen = (shard_id, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if seen in self._verified:
            return stream
        try:
            if info.size is not None and st.st_size != info.size:
                raise ShardError(redact_url(shard_id), f"{st.st_size} bytes, {info.size} recorded")
            if info.sha256 is not None:
                digest = hashlib.file_digest(stream, "sha256").hexdigest()  # type: ignore[arg-type]
                if digest != info.sha256:
                    raise ShardError(
                        redact_url(shard_id),
                        f"SHA-256 {digest} differs from the recorded {info.sha256}",
                    )
                stream.seek(0)
        except BaseException:
            stream.close()
            raise
        self._verified.add(seen)
        return stream
