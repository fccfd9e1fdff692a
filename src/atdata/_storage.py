"""The storage contract: stored shards, the data-store base class, the hashing stream, verified reading.

Every data store derives from :class:`AbstractDataStore`: the team layer's
:class:`~atdata.local.LocalDiskStore` and :class:`~atdata.local.S3DataStore`
(through :class:`~atdata.local.DataStore`) and the federation layer's
:class:`~atdata.atmosphere.PDSBlobStore`. A store copies a dataset's shards in
(:meth:`~AbstractDataStore.copy_shards`, returning a :class:`ShardInfo` per
stored shard) and hands out sources that read them back; a
:class:`VerifiedSource` checks what is read against the recorded size and
SHA-256. :class:`HashingReader` is the one stream that hashes while bytes pass.

>>> import hashlib, io
>>> reader = HashingReader(io.BytesIO(b"shard bytes"))
>>> reader.read()
b'shard bytes'
>>> reader.size, reader.hexdigest() == hashlib.sha256(b"shard bytes").hexdigest()
(11, True)
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from atdata.errors import OrphanedDataError, ShardError
from atdata.sources import redact_url

if TYPE_CHECKING:
    from atdata.dataset import Dataset
    from atdata.protocols import DataSource

__all__ = ["AbstractDataStore", "HashingReader", "ShardInfo", "VerifiedSource"]

_TAIL = 64 * 1024
"""A stream closed with at most this much unread (the tar end padding) is drained and checked."""


@dataclass(frozen=True, slots=True)
class ShardInfo:
    """One stored shard: its URL, size in bytes and SHA-256 (hex), as recorded when written.

    >>> ShardInfo("data/shard-000000.tar", 10240, "ab" * 32).size
    10240
    """

    url: str
    size: int | None = None
    sha256: str | None = None


class HashingReader(io.RawIOBase):
    """A read-only view of a binary stream that counts and SHA-256-hashes the bytes read.

    Bytes are hashed as they are read in order from the start; rewinding to the
    start (a retried upload) starts the count and the hash again. ``size`` is the
    number of bytes hashed; ``name`` names the stream in messages.
    """

    size: int
    """Bytes read (and hashed) from the start so far."""
    name: str

    def __init__(self, stream: IO[bytes] | io.RawIOBase, name: str | None = None) -> None:
        self._stream = stream
        self._hash = hashlib.sha256()
        self._pos = 0
        self.size = 0
        self.name = name if name is not None else str(getattr(stream, "name", "<stream>"))

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return bool(getattr(self._stream, "seekable", lambda: False)())

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._pos = self._stream.seek(offset, whence)
        if self._pos == 0:  # a (re)start: hash from scratch
            self._hash = hashlib.sha256()
            self.size = 0
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        data = self._stream.read() if size is None or size < 0 else self._stream.read(size)
        if not data:
            return b""
        if self._pos == self.size:  # in order from the start: hash it
            self._hash.update(data)
            self.size += len(data)
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def digest(self) -> bytes:
        """The SHA-256 of the bytes read so far."""
        return self._hash.digest()

    def hexdigest(self) -> str:
        """The SHA-256 (hex) of the bytes read so far."""
        return self._hash.hexdigest()


class AbstractDataStore(ABC):
    """Where shard bytes are kept: the base class of every data store.

    :meth:`copy_shards` copies a dataset's shards in, verified, and records each
    stored shard's URL, size and SHA-256; it either stores every shard or raises
    having removed what it wrote. :meth:`create_source` reads stored shards with
    the store's credentials and :meth:`read_url` gives a URL others can open.
    """

    @abstractmethod
    def copy_shards(
        self, dataset: Dataset[Any], *, prefix: str, sample_type: type | None = None
    ) -> list[ShardInfo]:
        """Copy every shard of ``dataset`` under ``prefix``, each checked to hold samples of
        ``sample_type`` (default: the dataset's stored type); what was stored, in order."""

    def write_shards(self, dataset: Dataset[Any], *, prefix: str = "", **kwargs: Any) -> list[str]:
        """Copy the dataset's shards into the store (see :meth:`copy_shards`); return their URLs."""
        return [s.url for s in self.copy_shards(dataset, prefix=prefix, **kwargs)]

    @abstractmethod
    def create_source(self, urls: Sequence[str]) -> DataSource:
        """A source reading these shards of the store, with the store's credentials."""

    @abstractmethod
    def read_url(self, url: str) -> str:
        """A URL for ``url`` that readers without the store's credentials can open."""

    @abstractmethod
    def owns(self, url: str) -> bool:
        """True when ``url`` names a shard in this store."""

    @abstractmethod
    def delete(self, urls: Sequence[str]) -> None:
        """Remove stored shards (missing ones are ignored)."""

    def planned_url(self, prefix: str) -> str | None:
        """The URL a shard copied under ``prefix`` will have, when known before copying
        (so it can be checked first); None when only the copy tells (content-addressed stores)."""
        return None

    def supports_streaming(self) -> bool:
        """True: shards are read as streams, never downloaded whole first."""
        return True

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

    >>> import io
    >>> class Bytes:
    ...     def list_shards(self): return ["s"]
    ...     def open_shard(self, shard_id): return io.BytesIO(b"other bytes")
    >>> src = VerifiedSource(Bytes(), {"s": ShardInfo("s", 11, "00" * 32)})
    >>> stream = src.open_shard("s")
    >>> stream.read()
    b'other bytes'
    >>> stream.close()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    atdata.errors.ShardError: s: SHA-256 ... differs from the recorded 0000...
    """

    inner: DataSource
    """The source the shards are read from."""
    shards: dict[str, ShardInfo]
    """The recorded size and SHA-256 of each shard, by shard id."""

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
