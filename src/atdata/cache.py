"""A local disk cache of remote shards, with retries, LRU eviction and prefetching.

Remote shards (S3, HTTP, PDS blobs) are downloaded whole into ``ShardCache``
and read from there as local files, which the reader memory-maps. Entries are
named by a hash of the shard id (never the URL itself, which may carry a
token), written under a temporary name and renamed when complete, and evicted
least recently used first when the cache grows past ``max_bytes``. Several
processes (DataLoader workers) can share one cache directory: an exclusive
``flock`` on a per-entry lock file makes one process download a shard while
the others wait, and readers hold a shared lock so an open entry is never
evicted. :class:`Prefetcher` downloads the next shards of an iteration order
in a few threads while the current one is read.

One retry policy per transport. A streamed download (HTTP, or any
``DataSource.open_shard``) is retried by the cache, with exponential backoff.
An S3 object is downloaded by boto3's managed transfer (:class:`S3Object`):
botocore retries each request as the client's retry configuration says
(:func:`~atdata.sources.make_s3_client`: standard mode, up to 5 retries), and the
cache adds no loop of its own. A mirrored shard falls to its next location
instead of retrying (:class:`~atdata.MirroredSource`).

What no retry can fix is reported at once, never retried: a shard that does
not exist or may not be read (HTTP or S3 400, 401, 403, 404, 410), a full disk
(named as such, with the cache directory), and a shard larger than
``max_shard_bytes`` (one download is bounded; the rest of it is never fetched).

>>> import io, tempfile
>>> cache = ShardCache(tempfile.mkdtemp(), max_bytes=2**20)
>>> cache.fetch("https://example.org/a.tar", lambda: io.BytesIO(b"tar bytes")).read_bytes()
b'tar bytes'
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from atdata._locations import NoValidLocationError
from atdata.errors import PrivateURLError, ShardError, ShardUnavailableError
from atdata.protocols import DataSource
from atdata.sources import S3Source, URLSource, redact_url

__all__ = ["Prefetcher", "S3Object", "ShardCache", "default_cache_dir", "opener_for"]

Opener = Callable[[], IO[bytes]]
_COPY = 1 << 20  # small reads: big fresh buffers cost page faults
_NO_RETRY_STATUS = frozenset({400, 401, 403, 404, 410})
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
#: The default largest shard one download may bring into the cache.
MAX_SHARD_BYTES = 8 * 2**30


class _Refused(Exception):
    """A download stopped for a reason no retry can change (its message says which)."""


def default_cache_dir() -> Path:
    """``$ATDATA_HOME/cache``, or ``~/.atdata/cache`` when ``ATDATA_HOME`` is unset."""
    home = os.environ.get("ATDATA_HOME")
    return (Path(home) if home else Path.home() / ".atdata") / "cache"


def _status(exc: BaseException) -> int | None:
    """The HTTP status of a failed request (an S3 ``ClientError`` or an HTTP shard), if any."""
    if isinstance(exc, ShardUnavailableError):
        return exc.status
    response = getattr(exc, "response", None)  # botocore ClientError
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status is not None else None
    return None


def _retryable(exc: BaseException) -> bool:
    """False for errors no retry can fix: an unknown shard id, bad credentials, a bad request,
    a missing or forbidden shard, a full disk, a shard over the size limit."""
    if isinstance(exc, KeyError | TypeError | ValueError | _Refused | NoValidLocationError):
        return False
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
        return False
    return _status(exc) not in _NO_RETRY_STATUS


def _attempts(exc: BaseException) -> int | None:
    """How many requests botocore made before it gave up (an S3 ``ClientError``), if known."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        retried = response.get("ResponseMetadata", {}).get("RetryAttempts")
        return int(retried) + 1 if retried is not None else None
    return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ShardError):
        return str(exc).rpartition(": ")[2] or type(exc).__name__
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        code = str(error.get("Code", "error"))
        if code.isdigit():  # a HEAD has no error body: botocore names the status only
            code = str(error.get("Message") or code)
        status = _status(exc)
        return f"S3 {code}" + (f" (HTTP {status})" if status else "")
    if isinstance(exc, _Refused):
        return str(exc)
    return type(exc).__name__


def _copy(src: IO[bytes], out: IO[bytes], limit: int) -> None:
    """Copy ``src`` to ``out``; refuse (before writing them) bytes past ``limit``."""
    total = 0
    while True:
        chunk = src.read(_COPY)
        if not chunk:
            return
        total += len(chunk)
        if total > limit:
            raise _Refused(_too_large(limit))
        out.write(chunk)


def _too_large(limit: int) -> str:
    return (
        f"the shard is larger than the cache's limit of {limit} bytes for one shard "
        "(ShardCache(max_shard_bytes=...) raises it)"
    )


class _Pinned(io.FileIO):
    """A cached shard opened for reading; holds a shared lock on its entry until closed."""

    def __init__(self, path: Path, lock_fd: int) -> None:
        super().__init__(path, "rb")
        self._lock_fd = lock_fd

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._lock_fd >= 0:
                os.close(self._lock_fd)  # releases the shared lock
                self._lock_fd = -1


class ShardCache:
    """Remote shards kept as local files under ``root``, at most ``max_bytes`` of them.

    ``fetch`` downloads a shard once and returns its local path; ``open`` also
    pins it against eviction until the file is closed. A streamed download
    (HTTP) that fails for a transient reason is tried again ``retries`` times,
    with exponential backoff from ``backoff`` seconds; an opener that downloads
    by itself (``write_to``: S3, mirrored shards) is tried once, as it retries
    in its own way. One download is at most ``max_shard_bytes`` (default 8 GiB);
    a missing or forbidden shard, a full disk and a larger shard are reported
    without retrying.

    >>> import io, tempfile
    >>> cache = ShardCache(tempfile.mkdtemp())
    >>> with cache.open("s3://bucket/shard-0.tar", lambda: io.BytesIO(b"x")) as f:
    ...     f.read()
    b'x'
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        max_bytes: int = 10 * 2**30,
        retries: int = 4,
        backoff: float = 0.25,
        max_shard_bytes: int = MAX_SHARD_BYTES,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        if max_shard_bytes <= 0:
            raise ValueError(f"max_shard_bytes must be positive, not {max_shard_bytes}")
        self.root: Path = Path(root) if root is not None else default_cache_dir()
        self.max_bytes: int = max_bytes
        self.max_shard_bytes: int = max_shard_bytes
        self.retries: int = retries
        self.backoff: float = backoff

    def __repr__(self) -> str:
        return f"ShardCache({str(self.root)!r}, max_bytes={self.max_bytes})"

    # ------------------------------------------------------------------ entries

    def path(self, shard_id: str) -> Path:
        """Where the shard is (or would be) cached: a hash of its id, never the id itself."""
        return self.root / (hashlib.sha256(shard_id.encode()).hexdigest()[:40] + ".tar")

    def __contains__(self, shard_id: str) -> bool:
        return self.path(shard_id).exists()

    def total_bytes(self) -> int:
        """Bytes held by complete entries."""
        return sum(size for _, size, _ in self._entries())

    def _entries(self) -> Iterator[tuple[Path, int, float]]:
        try:
            scan = list(os.scandir(self.root))
        except FileNotFoundError:
            return
        for entry in scan:
            if entry.name.endswith(".tar"):
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                yield Path(entry.path), st.st_size, st.st_mtime

    @contextmanager
    def _locked(self, entry: Path, mode: int) -> Iterator[int | None]:
        """Hold ``flock(mode)`` on the entry's lock file; yield None if a non-blocking lock failed."""
        lock = entry.with_suffix(".lock")
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, mode)
            except BlockingIOError:
                os.close(fd)
                yield None
                return
            try:  # the lock file may have been evicted (unlinked) while we waited
                same = os.fstat(fd).st_ino == os.stat(lock).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            yield fd
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ fetching

    def fetch(self, shard_id: str, opener: Opener) -> Path:
        """The local path of ``shard_id``, downloaded through ``opener()`` if not cached yet.

        An opener with a ``write_to(file, max_bytes)`` method (:class:`S3Object`) writes the
        file itself and is called once; a plain opener is retried (``retries``, ``backoff``).

        Raises :class:`~atdata.ShardError` naming the (redacted) URL when every try failed.
        """
        path = self.path(shard_id)
        if self._touch(path):
            return path
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked(path, fcntl.LOCK_EX):
            if not self._touch(path):  # else another process or thread finished it meanwhile
                self._download(shard_id, opener, path)
                self.trim()  # our lock keeps the new entry
        return path

    def open(self, shard_id: str, opener: Opener) -> IO[bytes]:
        """The cached shard opened for reading, fetched first if needed; never evicted while open."""
        path = self.path(shard_id)
        while True:
            self.fetch(shard_id, opener)
            with self._locked(path, fcntl.LOCK_SH) as fd:
                assert fd is not None
                if self._touch(path):  # not evicted since: pin it
                    return _Pinned(path, os.dup(fd))  # the dup keeps the lock after this block

    def _touch(self, path: Path) -> bool:
        try:
            os.utime(path)  # the mtime is the entry's last access, for LRU
        except FileNotFoundError:
            return False
        return True

    def _download(self, shard_id: str, opener: Opener, path: Path) -> None:
        for stale in self.root.glob(path.stem + ".*.part"):  # a crashed download; we hold the lock
            stale.unlink(missing_ok=True)
        write_to: Callable[..., int] | None = getattr(opener, "write_to", None)
        tries = 1 if write_to is not None else self.retries + 1  # write_to retries by itself
        last: BaseException | None = None
        for attempt in range(tries):
            if attempt:
                delay = self.backoff * 2 ** (attempt - 1)
                time.sleep(min(delay * random.uniform(0.5, 1.0), 30.0))
            tmp = None
            try:
                fd, tmp = tempfile.mkstemp(dir=self.root, prefix=path.stem + ".", suffix=".part")
                with os.fdopen(fd, "wb") as out:
                    if write_to is not None:
                        write_to(out, max_bytes=self.max_shard_bytes)
                    else:
                        with opener() as src:
                            _copy(src, out, self.max_shard_bytes)
                os.replace(tmp, path)  # complete: only now does the entry exist
                return
            except Exception as exc:
                last = exc
                if not _retryable(exc):
                    break
            finally:
                if tmp is not None and os.path.exists(tmp):
                    os.unlink(tmp)
        assert last is not None
        if isinstance(last, KeyError | PrivateURLError | NoValidLocationError):
            # not a download failure: a refusal, or a MirroredSource that tried every location
            raise last
        shard = redact_url(shard_id)
        if isinstance(last, OSError) and last.errno in _DISK_FULL:
            free = shutil.disk_usage(self.root).free
            raise ShardError(
                shard,
                f"no space left on the disk of the shard cache {self.root} ({free} bytes free); "
                "free some space, lower ShardCache(max_bytes=...) or set ATDATA_HOME elsewhere",
            ) from None
        if not _retryable(last):
            raise ShardError(shard, f"download failed (not retried): {_reason(last)}") from None
        made = _attempts(last) or (attempt + 1 if write_to is None else None)
        if made is None:  # write_to retried in its own way, and does not say how often
            raise ShardError(shard, f"download failed: {_reason(last)}") from None
        raise ShardError(
            shard,
            f"download failed after {made} {'try' if made == 1 else 'tries'}: {_reason(last)}",
        ) from None

    # ------------------------------------------------------------------ eviction

    def trim(self) -> None:
        """Evict least recently used entries until at most ``max_bytes`` remain.

        An entry open for reading (in any process) or being downloaded is kept,
        even when that leaves more than ``max_bytes``.
        """
        entries = sorted(self._entries(), key=lambda e: e[2])
        total = sum(size for _, size, _ in entries)
        for path, size, _ in entries:
            if total <= self.max_bytes:
                break
            with self._locked(path, fcntl.LOCK_EX | fcntl.LOCK_NB) as fd:
                if fd is None:
                    continue  # pinned by a reader
                path.unlink(missing_ok=True)
                path.with_suffix(".lock").unlink(missing_ok=True)
                total -= size
        self._remove_orphans()

    def _remove_orphans(self) -> None:
        """Delete partial downloads of crashed processes and lock files of evicted entries."""
        for name in os.listdir(self.root):
            if not name.endswith((".part", ".lock")):
                continue
            entry = self.root / (name.split(".", 1)[0] + ".tar")
            if name.endswith(".lock") and entry.exists():
                continue
            with self._locked(entry, fcntl.LOCK_EX | fcntl.LOCK_NB) as fd:
                if fd is not None:  # no one is downloading or reading it
                    (self.root / name).unlink(missing_ok=True)

    def clear(self) -> None:
        """Evict every entry that is not open or being downloaded."""
        max_bytes, self.max_bytes = self.max_bytes, 0
        try:
            self.trim()
        finally:
            self.max_bytes = max_bytes


# --------------------------------------------------------------------------- S3 downloads


class S3Object:
    """One S3 object to download: ``obj()`` streams it; ``obj.write_to(file)`` is faster.

    ``write_to`` asks for the object's size (one HEAD), refuses it if larger than
    ``max_bytes``, then hands it to boto3's managed transfer: ``concurrency``
    parallel ranged GETs of ``part_size`` bytes, every range pinned to the ETag
    the HEAD saw. Retries are boto3's: botocore's per request (the client's retry
    configuration), and the transfer's for a body that breaks off mid-range.
    :class:`ShardCache` uses it when an opener has it.

    >>> obj = S3Object(None, "bucket", "data-000000.tar", part_size=8 << 20)
    >>> obj.bucket, obj.key, obj.part_size, obj.concurrency
    ('bucket', 'data-000000.tar', 8388608, 4)
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        *,
        part_size: int = 16 << 20,
        concurrency: int = 4,
    ) -> None:
        self.client: Any = client  # a boto3 S3 client
        self.bucket: str = bucket
        self.key: str = key
        self.part_size: int = part_size
        self.concurrency: int = concurrency

    def __call__(self) -> IO[bytes]:
        body: IO[bytes] = self.client.get_object(Bucket=self.bucket, Key=self.key)["Body"]
        return body

    def write_to(self, file: IO[bytes], max_bytes: int | None = None) -> int:
        """Download the object into ``file`` (a real, seekable file); return its size.

        An object larger than ``max_bytes`` is refused before any of it is fetched.
        """
        from boto3.s3.transfer import TransferConfig, create_transfer_manager

        head = self.client.head_object(Bucket=self.bucket, Key=self.key)
        size = int(head["ContentLength"])
        if max_bytes is not None and size > max_bytes:
            raise _Refused(_too_large(max_bytes))
        config = TransferConfig(
            multipart_threshold=self.part_size,
            multipart_chunksize=self.part_size,
            max_concurrency=self.concurrency,
            io_chunksize=_COPY,
            preferred_transfer_client="classic",  # the CRT client takes no size or ETag given
        )
        known = _KnownObject(size, head.get("ETag"))
        with create_transfer_manager(self.client, config) as manager:
            manager.download(self.bucket, self.key, file, subscribers=[known]).result()
        return size


class _KnownObject:
    """A transfer subscriber telling boto3 the size and ETag our HEAD found: it asks no
    second time, downloads exactly the size checked, and every ranged GET fails if the
    object changed since (``If-Match``)."""

    def __init__(self, size: int, etag: str | None) -> None:
        self.size = size
        self.etag = etag

    def on_queued(self, future: Any, **kwargs: Any) -> None:
        meta = future.meta
        meta.provide_transfer_size(self.size)
        if self.etag is not None and hasattr(
            meta, "provide_object_etag"
        ):  # older s3transfer: no pin
            meta.provide_object_etag(self.etag)


def opener_for(source: DataSource, shard_id: str) -> Opener:
    """How to download one shard of ``source``: an :class:`S3Object` for an S3 object, the
    source's own ``fetcher`` when it has one (a :class:`~atdata.MirroredSource`), else
    ``open_shard``.

    >>> opener = opener_for(URLSource("https://example.org/a.tar"), "https://example.org/a.tar")
    >>> isinstance(opener, S3Object)
    False
    """
    fetcher = getattr(source, "fetcher", None)
    if fetcher is not None:
        return fetcher(shard_id)  # type: ignore[no-any-return]
    if isinstance(source, S3Source):
        bucket, _, key = shard_id[len("s3://") :].partition("/")
        if not shard_id.startswith("s3://") or bucket != source.bucket or key not in source.keys:
            raise KeyError(f"{shard_id!r} is not a shard of this source")
        return S3Object(source.client, bucket, key)  # the client is made here: not thread-safe
    if isinstance(source, URLSource) and shard_id.startswith("s3://") and not source.s3_endpoint:
        if shard_id not in source.list_shards():
            raise KeyError(f"{shard_id!r} is not a shard of this source")
        bucket, _, key = shard_id[len("s3://") :].partition("/")
        return S3Object(S3Source(bucket, [key]).client, bucket, key)  # the AWS credential chain
    return lambda: source.open_shard(shard_id)


# --------------------------------------------------------------------------- prefetching


class Prefetcher:
    """Reads shards of ``source`` through ``cache``, downloading the next ``depth`` ahead.

    ``prefetch(order)`` announces the order in which shards will be opened;
    ``open(shard)`` returns the cached copy, then keeps ``depth`` shards of the
    order that were not opened yet downloading in a small thread pool. It never
    holds more than ``depth`` shards ahead; ``depth=0`` downloads on demand only.

    >>> import pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for i in range(3):
    ...     _ = (d / f"d-{i}.tar").write_bytes(b"shard %d" % i)
    >>> p = Prefetcher(ShardCache(d / "cache"), URLSource(f"{d}/d-{{0..2}}.tar"), depth=2)
    >>> p.prefetch(p.source.list_shards())  # d-0 and d-1 start downloading
    >>> with p.open(f"{d}/d-0.tar") as f:  # and now d-2
    ...     f.read()
    b'shard 0'
    >>> p.close()
    """

    def __init__(self, cache: ShardCache, source: DataSource, depth: int = 2) -> None:
        if depth < 0:
            raise ValueError(f"prefetch depth must be >= 0, not {depth}")
        self.cache = cache
        self.source = source
        self.depth = depth
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._order: list[str] = []
        self._next = 0  # order[:_next] were opened or scheduled
        self._opened: set[str] = set()
        self._pending: dict[str, Future[Path]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"cache": self.cache, "source": self.source, "depth": self.depth}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def _check_fork(self) -> None:
        if self._pid != os.getpid():  # forked: the parent's threads are not here
            self._reset()

    def prefetch(self, shard_ids: Sequence[str]) -> None:
        """Start downloading the first shards of ``shard_ids``, the order of the next reads."""
        self._check_fork()
        with self._lock:
            for future in self._pending.values():
                future.cancel()  # of an earlier order; running downloads finish into the cache
            self._order = list(shard_ids)
            self._next = 0
            self._opened = set()
            self._pending = {}
            self._schedule()

    def open(self, shard_id: str) -> IO[bytes]:
        """The cached copy of ``shard_id`` opened for reading (a local file)."""
        self._check_fork()
        with self._lock:
            future = self._pending.pop(shard_id, None)
            self._opened.add(shard_id)
            self._schedule()
        if future is not None:
            future.result()  # a failed download raises its ShardError here
        return self.cache.open(shard_id, opener_for(self.source, shard_id))

    def _schedule(self) -> None:
        while len(self._pending) < self.depth and self._next < len(self._order):
            shard = self._order[self._next]
            self._next += 1
            if shard in self._opened or shard in self._pending or shard in self.cache:
                continue
            if self._pool is None:
                self._pool = ThreadPoolExecutor(min(self.depth, 4), "atdata-prefetch")
            opener = opener_for(self.source, shard)
            self._pending[shard] = self._pool.submit(self.cache.fetch, shard, opener)

    def close(self) -> None:
        """Cancel downloads that have not started."""
        self._check_fork()
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            self._reset()
