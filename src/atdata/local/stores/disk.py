"""Shards on a local (or mounted) file system."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from atdata._storage import HashingReader, ShardInfo
from atdata.errors import ShardError
from atdata.local.stores.base import DataStore
from atdata.protocols import DataSource
from atdata.sample import new_key
from atdata.sources import URLSource

__all__ = ["LocalDiskStore"]

_CHUNK = 1 << 20


class LocalDiskStore(DataStore):
    """Shards as files under ``root``; their URLs are absolute paths.

    Each shard is written to a temporary file, flushed to disk, then renamed
    into place, so a reader never sees a partial shard.

    >>> import tempfile
    >>> store = LocalDiskStore(tempfile.mkdtemp())
    >>> store.supports_streaming()
    True
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root: Path = Path(root).expanduser().resolve()
        self.location: str = f"local disk store {self.root}"

    def url_for(self, key: str) -> str:
        return str(self.root / key)

    def put(self, reader: HashingReader, url: str, shard_id: str) -> None:
        path = Path(url)
        partial = path.with_name(f".{path.name}.{new_key()[-8:]}.partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(partial, "wb") as out:
                while chunk := reader.read(_CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, path)
        except OSError as exc:
            raise ShardError(url, f"cannot write a copy of {shard_id} ({exc.strerror})") from None
        finally:
            partial.unlink(missing_ok=True)

    def verify_written(self, shard: ShardInfo) -> None:
        size = os.stat(shard.url).st_size
        if size != shard.size:
            raise ShardError(shard.url, f"{size} bytes written, {shard.size} read from the source")

    def delete(self, urls: Sequence[str]) -> None:
        for url in urls:
            if self.owns(url):
                Path(url).unlink(missing_ok=True)

    def owns(self, url: str) -> bool:
        return Path(url).is_absolute() and Path(url).resolve().is_relative_to(self.root)

    def create_source(self, urls: Sequence[str]) -> DataSource:
        return URLSource(list(urls))

    def read_url(self, url: str) -> str:
        return url
