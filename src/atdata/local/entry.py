"""Index entries: one dataset's name, schema, shard URLs, checksums and metadata, content-addressed."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgpack

from atdata._storage import ShardInfo
from atdata.cid import generate_cid
from atdata.errors import AtdataError

__all__ = ["LocalDatasetEntry"]

_MAX_NAME = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_name(name: Any) -> str:
    """Return ``name`` if it is a usable dataset name, else raise :class:`ValueError`."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a dataset name is a non-empty string, not {name!r}")
    if len(name) > _MAX_NAME or _CONTROL.search(name):
        raise ValueError(f"dataset name {name[:80]!r} is too long or has control characters")
    return name


@dataclass(frozen=True)
class LocalDatasetEntry:
    """A dataset in a local index.

    ``cid`` addresses the whole entry (name, schema reference, shard URLs,
    shard sizes and checksums, metadata), so equal content under another name
    is another entry. ``shards`` holds per-shard size and SHA-256 when the
    index copied the data (empty for :meth:`~atdata.local.Index.add_entry`).
    ``created_at`` is when it was indexed and is not part of the CID.

    >>> e = LocalDatasetEntry("mnist", "atdata://local/sampleSchema/Digit@1.0.0", ["a.tar"])
    >>> e.cid.startswith("bafyrei")
    True
    """

    name: str
    schema_ref: str
    data_urls: list[str]
    metadata: dict[str, Any] | None = None
    shards: tuple[ShardInfo, ...] = ()
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(), compare=False)
    cid: str = ""

    def __post_init__(self) -> None:
        check_name(self.name)
        if not isinstance(self.schema_ref, str) or not self.schema_ref:
            raise ValueError(f"entry {self.name!r}: schema_ref must be a non-empty string")
        urls = list(self.data_urls)
        if not urls or not all(isinstance(u, str) and u for u in urls):
            raise ValueError(f"entry {self.name!r}: data_urls must be a non-empty list of URLs")
        object.__setattr__(self, "data_urls", urls)
        shards = tuple(self.shards)
        if shards and [s.url for s in shards] != urls:
            raise ValueError(f"entry {self.name!r}: shards must list data_urls in order")
        object.__setattr__(self, "shards", shards)
        if self.metadata is not None and not isinstance(self.metadata, Mapping):
            raise ValueError(f"entry {self.name!r}: metadata must be a dict")
        if not self.cid:
            try:
                cid = generate_cid(self.content())
            except ValueError as exc:
                raise ValueError(f"entry {self.name!r}: {exc}") from None
            object.__setattr__(self, "cid", cid)

    def __hash__(self) -> int:
        return hash(self.cid)

    def content(self) -> dict[str, Any]:
        """The value the CID addresses (DAG-CBOR data)."""
        out: dict[str, Any] = {
            "name": self.name,
            "schema_ref": self.schema_ref,
            "data_urls": list(self.data_urls),
        }
        if self.shards:
            out["shards"] = [{"size": s.size, "sha256": s.sha256} for s in self.shards]
        if self.metadata is not None:
            out["metadata"] = dict(self.metadata)
        return out

    def shard(self, url: str) -> ShardInfo | None:
        """The recorded size and checksum of one shard, or None when not recorded."""
        for s in self.shards:
            if s.url == url:
                return s
        return None

    # ---------------------------------------------------------------- storage form

    def to_fields(self) -> dict[str, str | bytes]:
        """The stored form: a Redis hash or a table row (the seed-era field layout, extended)."""
        out: dict[str, str | bytes] = {
            "name": self.name,
            "schema_ref": self.schema_ref,
            "data_urls": _pack(self.data_urls),
            "cid": self.cid,
            "created_at": self.created_at,
        }
        if self.metadata is not None:
            out["metadata"] = _pack(self.metadata)
        if self.shards:
            out["shards"] = _pack([[s.size, s.sha256] for s in self.shards])
        return out

    @classmethod
    def from_fields(cls, fields: Mapping[Any, Any], where: str) -> LocalDatasetEntry:
        """Rebuild an entry from :meth:`to_fields` output (keys and text may be bytes).

        The stored form was checked when written, so only its structure is
        checked here (listing reads many entries); the stored CID is kept.
        """
        f = {(k.decode() if isinstance(k, bytes) else k): v for k, v in fields.items()}
        try:
            urls = _unpack(f["data_urls"])
            raw_meta, raw_shards = f.get("metadata"), f.get("shards")
            metadata = _unpack(raw_meta) if raw_meta is not None else None
            pairs = _unpack(raw_shards) if raw_shards is not None else []
            if not isinstance(urls, list) or (pairs and len(pairs) != len(urls)):
                raise ValueError("data_urls and shards do not match")
            if metadata is not None and not isinstance(metadata, dict):
                raise ValueError("metadata is not a map")
            entry = object.__new__(cls)
            entry.__dict__.update(
                name=_text(f["name"]),
                schema_ref=_text(f["schema_ref"]),
                data_urls=urls,
                metadata=metadata,
                shards=tuple([ShardInfo(u, p[0], p[1]) for u, p in zip(urls, pairs)]),
                created_at=_text(f.get("created_at") or ""),
                cid=_text(f["cid"]),
            )
            return entry
        except (KeyError, ValueError, TypeError, IndexError, msgpack.UnpackException) as exc:
            raise AtdataError(
                f"{where}: corrupt index entry ({type(exc).__name__}: {exc})"
            ) from None


def _pack(value: Any) -> bytes:
    packed = msgpack.packb(value, use_bin_type=True)
    if not isinstance(packed, bytes):  # packb returns bytes; its annotation allows None
        raise TypeError(f"cannot pack {type(value).__name__}")
    return packed


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _unpack(value: bytes) -> Any:
    if not isinstance(value, bytes):
        raise ValueError("expected msgpack bytes")
    return msgpack.unpackb(value)
