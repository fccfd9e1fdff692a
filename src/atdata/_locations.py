"""Shards with several locations: read the first that serves the recorded bytes.

A published shard can exist in more than one place: where its publisher put it,
and in mirrors (PDS blobs of another account, another bucket). Every copy must
hash to the same SHA-256, the one the original record states. :class:`MirroredSource`
is a :class:`~atdata.DataSource` whose shards each carry an ordered list of
locations (the original first); reading a shard streams the first location into
a local file while hashing it, and falls to the next location when the
location refuses the connection, answers 404 or 5xx, times out, sends more bytes
than recorded, or sends bytes whose SHA-256 differs. A shard is handed to the
reader only once its digest matched, so a fallback never yields a sample twice
or out of order. A host that failed to serve (not one that served other bytes) is
tried after the others for a minute, so a publisher that is gone costs one try,
not one per shard. Without any valid location, :class:`NoValidLocationError`
lists every location tried and why each failed.

>>> import hashlib, io
>>> good = b"shard bytes"
>>> shard = ShardLocations("s-0", hashlib.sha256(good).hexdigest(), ("bad", "good"))
>>> src = MirroredSource([shard], opener=lambda url: io.BytesIO(b"tampered" if url == "bad" else good))
>>> src.open_shard("s-0").read()
b'shard bytes'
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO
from urllib.parse import urlsplit

from atdata._storage import HashingReader
from atdata.errors import ShardError
from atdata.sources import open_url, redact_url

__all__ = ["MirroredSource", "NoValidLocationError", "ShardLocations"]

log = logging.getLogger("atdata.mirrors")

LocationOpener = Callable[[str], IO[bytes]]
_CHUNK = 1 << 20
_DEMOTION = 60.0  # seconds a host that failed is tried after the others
_HEX = frozenset("0123456789abcdef")


class NoValidLocationError(ShardError):
    """No location of a shard served bytes matching the recorded SHA-256.

    ``attempts`` holds ``(location, reason)`` for every location tried, in order.
    """

    def __init__(self, shard: str, attempts: Sequence[tuple[str, str]]) -> None:
        self.attempts: list[tuple[str, str]] = list(attempts)
        tried = "; ".join(f"{i}. {loc}: {why}" for i, (loc, why) in enumerate(self.attempts, 1))
        super().__init__(shard, f"no valid location among {len(self.attempts)} tried ({tried})")


@dataclass(frozen=True)
class ShardLocations:
    """One shard: its id (the original's), its SHA-256 (hex), its size if known, where to read it."""

    shard_id: str
    sha256: str
    locations: tuple[str, ...]
    size: int | None = None

    def __post_init__(self) -> None:
        if len(self.sha256) != 64 or not set(self.sha256) <= _HEX:
            raise ValueError(f"{self.shard_id}: {self.sha256!r} is not a lower-case hex SHA-256")
        if not self.locations:
            raise ValueError(f"{self.shard_id}: no locations")


class _Mismatch(ShardError):
    """A location served bytes other than the recorded ones (the host itself works)."""


class _Fetch:
    """Downloads one shard into a file from its first valid location (an opener with ``write_to``)."""

    def __init__(self, source: MirroredSource, shard: ShardLocations) -> None:
        self.source = source
        self.shard = shard

    def write_to(self, out: IO[bytes], max_bytes: int | None = None) -> int:
        """Write the verified shard to ``out`` (truncated between tries); its size.

        A location sending more than ``max_bytes`` (the cache's limit on one
        download) fails like any other.
        """
        shard = self.shard
        order = self.source.ordered(shard.locations)
        shown = [redact_url(loc) for loc in order]
        log.info("shard %s: locations in order: %s", redact_url(shard.shard_id), ", ".join(shown))
        attempts: list[tuple[str, str]] = []
        for i, (location, name) in enumerate(zip(order, shown)):
            out.seek(0)
            out.truncate()
            try:
                size = self._copy(location, out, max_bytes)
            except (ShardError, OSError, KeyError, ValueError) as exc:
                reason = _reason(exc)
                attempts.append((name, reason))
                if not isinstance(exc, _Mismatch):
                    self.source.demote(location)
                if i + 1 < len(shown):
                    log.warning(
                        "shard %s: %s failed (%s); falling back to %s",
                        redact_url(shard.shard_id),
                        name,
                        reason,
                        shown[i + 1],
                    )
                continue
            if location != shard.locations[0]:  # not where the record says: a mirror
                log.info("shard %s: read from %s", redact_url(shard.shard_id), name)
            return size
        out.seek(0)
        out.truncate()
        raise NoValidLocationError(redact_url(shard.shard_id), attempts)

    def _copy(self, location: str, out: IO[bytes], max_bytes: int | None) -> int:
        name = redact_url(location)
        limit = self.shard.size
        with self.source.opener(location) as stream:
            reader = HashingReader(stream, name)
            while chunk := reader.read(_CHUNK):
                total = reader.size
                if limit is not None and total > limit:
                    raise _Mismatch(name, f"more than the recorded {limit} bytes")
                if max_bytes is not None and total > max_bytes:
                    raise ShardError(name, f"more than the {max_bytes}-byte limit of one download")
                out.write(chunk)
        total = reader.size
        digest = reader.hexdigest()
        if limit is not None and total != limit:
            raise _Mismatch(name, f"{total} bytes, {limit} recorded")
        if digest != self.shard.sha256:
            raise _Mismatch(
                name, f"SHA-256 {digest} differs from the original's {self.shard.sha256}"
            )
        out.flush()
        return total


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ShardError):
        text, where = str(exc), f"{exc.shard}: "
        return text[len(where) :] if text.startswith(where) else text
    if isinstance(exc, KeyError):
        return str(exc.args[0]) if exc.args else "unknown location"
    return f"{type(exc).__name__}: {exc}"


class MirroredSource:
    """A :class:`~atdata.DataSource` over shards with ordered locations, each read verified.

    ``opener`` opens one location for reading (default: local paths, ``http(s)://``,
    ``s3://``); the federation layer passes one that also reads ``at://`` blobs.
    ``tmp_dir`` holds shards being verified when no shard cache is used.
    """

    def __init__(
        self,
        shards: Sequence[ShardLocations],
        *,
        opener: LocationOpener | None = None,
        tmp_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if not shards:
            raise ValueError("a MirroredSource needs at least one shard")
        self.shards: dict[str, ShardLocations] = {s.shard_id: s for s in shards}
        if len(self.shards) != len(shards):
            raise ValueError("shard ids repeat")
        self._order = [s.shard_id for s in shards]
        self.opener: LocationOpener = opener if opener is not None else open_url
        self.tmp_dir: str | None = os.fspath(tmp_dir) if tmp_dir is not None else None
        self._failed: dict[str, float] = {}  # host -> when it last failed to serve

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_failed": {}}

    def _host(self, location: str) -> str:
        parts = urlsplit(location)
        return f"{parts.scheme}://{parts.netloc}" if parts.netloc else location

    def demote(self, location: str) -> None:
        """Remember that ``location``'s host failed: for a minute it is tried after the others."""
        self._failed[self._host(location)] = time.monotonic()

    def ordered(self, locations: Sequence[str]) -> list[str]:
        """``locations`` with those on a host that failed in the last minute moved last."""
        now = time.monotonic()
        late = {
            loc
            for loc in locations
            if now - self._failed.get(self._host(loc), -_DEMOTION) < _DEMOTION
        }
        return [loc for loc in locations if loc not in late] + [
            loc for loc in locations if loc in late
        ]

    def __repr__(self) -> str:
        most = max(len(s.locations) for s in self.shards.values())
        return f"MirroredSource({len(self._order)} shards, up to {most} locations each)"

    def list_shards(self) -> list[str]:
        """The original's shard ids, in order."""
        return list(self._order)

    def fetcher(self, shard_id: str) -> _Fetch:
        """The download of one shard, for the shard cache (it writes the verified bytes itself)."""
        shard = self.shards.get(shard_id)
        if shard is None:
            raise KeyError(f"{shard_id!r} is not a shard of this source")
        return _Fetch(self, shard)

    def open_shard(self, shard_id: str) -> IO[bytes]:
        """A local, verified copy of the shard (an anonymous temporary file)."""
        fetch = self.fetcher(shard_id)
        spool = tempfile.TemporaryFile(dir=self.tmp_dir)  # noqa: SIM115 - returned open
        try:
            fetch.write_to(spool)
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        return spool  # type: ignore[return-value]
