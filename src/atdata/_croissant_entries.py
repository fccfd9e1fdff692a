"""Dataset entries of either layer, read as one plain description for :mod:`atdata.croissant`.

Team-index entries are read through their :class:`~atdata.IndexEntry`
attributes and federation records as data, so this core module imports neither
layer. Records come from strangers: every value is checked, brace patterns are
bounded before they are expanded, and a malformed record raises
:class:`CroissantError` naming its AT-URI.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import libipld
import msgpack

from atdata.errors import AtdataError
from atdata.sources import expand_urls

__all__ = ["CroissantError", "DatasetFacts", "ShardFacts", "nonempty_text", "read_entry"]

_DATASET = "ac.foundation.dataset.record"
_EXTERNAL = "ac.foundation.dataset.storageExternal"
_BLOBS = "ac.foundation.dataset.storageBlobs"
_MAX_SHARDS = 100_000
_MAX_METADATA = 1_000_000
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_BRACE_GROUP = re.compile(r"\{([^{}]*)\}")
_BRACE_RANGE = re.compile(r"^(-?\d+|[A-Za-z])\.\.(-?\d+|[A-Za-z])(?:\.\.(-?\d+))?$")


class CroissantError(AtdataError, ValueError):
    """An entry or record cannot be described as Croissant (the entry is named)."""


@dataclass
class ShardFacts:
    """One shard: its URL, and its size and SHA-256 (hex) when known."""

    url: str
    size: int | None = None
    sha256: str | None = None


@dataclass
class DatasetFacts:
    """What a Croissant document says about a dataset, from an entry of either layer."""

    where: str
    name: str
    schema_ref: str
    shards: list[ShardFacts]
    metadata: dict[str, Any] = field(default_factory=dict)
    description: str | None = None
    license: str | None = None
    tags: list[str] = field(default_factory=list)
    created: str | None = None
    uri: str | None = None
    did: str | None = None
    cid: str | None = None
    schema_cid: str | None = None
    splits: list[tuple[str, list[int]]] = field(default_factory=list)


def nonempty_text(value: Any) -> str | None:
    """``value`` if it is a non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _from_index_entry(entry: Any) -> DatasetFacts:
    name = entry.name
    meta = entry.metadata if isinstance(entry.metadata, Mapping) else {}
    recorded = {s.url: s for s in getattr(entry, "shards", ()) or ()}
    shards = []
    for url in entry.data_urls:
        info = recorded.get(url)
        size = _count(getattr(info, "size", None))
        digest = _digest(getattr(info, "sha256", None))
        if digest is None and url.startswith("at://") and "/blob/" in url:
            digest = _cid_sha256(url.rsplit("/", 1)[-1])
        shards.append(ShardFacts(_file_url(url), size, digest))
    splits = getattr(entry, "splits", None)
    tags = meta.get("tags")
    return DatasetFacts(
        where=f"dataset {name!r}",
        name=name,
        schema_ref=entry.schema_ref,
        shards=shards,
        metadata=dict(meta),
        description=nonempty_text(meta.get("description")),
        license=nonempty_text(meta.get("license")),
        tags=[t for t in tags if isinstance(t, str)] if isinstance(tags, list) else [],
        created=nonempty_text(getattr(entry, "created_at", None)),
        cid=nonempty_text(getattr(entry, "cid", None)),
        splits=_record_splits(
            [{"name": n, "shards": list(i)} for n, i in splits.items()]
            if isinstance(splits, Mapping)
            else None,
            len(shards),
            f"dataset {name!r}",
        ),
    )


def _file_url(url: str) -> str:
    """Local paths as absolute ``file://`` URLs; other URLs unchanged."""
    scheme = urlsplit(url).scheme
    if scheme and len(scheme) > 1:
        return url
    path = url[len("file://") :] if scheme == "file" else url
    return "file://" + quote(os.path.abspath(path))


def _from_record(
    value: Mapping[str, Any], uri: str, cid: str | None, pds: str | None
) -> DatasetFacts:
    if value.get("$type", _DATASET) != _DATASET:
        raise CroissantError(f"{uri}: not a dataset record ($type {value.get('$type')!r})")
    did = uri.removeprefix("at://").split("/", 1)[0]
    name, schema_ref = nonempty_text(value.get("name")), nonempty_text(value.get("schemaRef"))
    if name is None or schema_ref is None:
        raise CroissantError(f"{uri}: a dataset record needs 'name' and 'schemaRef'")
    storage = value.get("storage")
    storage = storage if isinstance(storage, Mapping) else {}
    kind = storage.get("$type")
    if kind == _EXTERNAL:
        shards = _external_shards(storage, uri)
    elif kind == _BLOBS:
        shards = _blob_shards(storage, did, pds, uri)
    else:
        raise CroissantError(f"{uri}: unknown storage type {kind!r}")
    tags = value.get("tags")
    return DatasetFacts(
        where=uri,
        name=name,
        schema_ref=schema_ref,
        shards=shards,
        metadata=_record_metadata(value.get("metadata"), uri),
        description=nonempty_text(value.get("description")),
        license=nonempty_text(value.get("license")),
        tags=[t for t in tags if isinstance(t, str)] if isinstance(tags, list) else [],
        created=nonempty_text(value.get("createdAt")),
        uri=uri,
        did=did,
        cid=cid,
        schema_cid=nonempty_text(value.get("schemaCid")),
        splits=_record_splits(value.get("splits"), len(shards), uri),
    )


def _external_shards(storage: Mapping[str, Any], uri: str) -> list[ShardFacts]:
    urls = storage.get("urls")
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
        raise CroissantError(f"{uri}: storage.urls must be a list of URLs")
    if sum(_expansion_size(u) for u in urls) > _MAX_SHARDS:
        raise CroissantError(f"{uri}: storage.urls name more than {_MAX_SHARDS} shards")
    try:
        expanded = expand_urls(urls)
    except (ValueError, AtdataError) as exc:
        raise CroissantError(f"{uri}: storage.urls: {exc}") from None
    digests = storage.get("sha256")
    if not isinstance(digests, list) or len(digests) != len(expanded):
        digests = [None] * len(expanded)
    return [ShardFacts(u, None, _digest(d)) for u, d in zip(expanded, digests)]


def _expansion_size(pattern: str) -> int:
    """How many URLs a brace pattern expands to (an upper bound), without expanding it."""
    sizes: list[int] = []

    def product(text: str) -> int:
        n = 1
        for token in re.findall(r"\x00(\d+)\x00", text):
            n *= sizes[int(token)]
        return n

    def reduce(m: re.Match[str]) -> str:
        body = m.group(1)
        ranged = _BRACE_RANGE.match(body)
        if ranged:
            lo, hi, step = ranged.group(1), ranged.group(2), ranged.group(3)
            a, b = (int(lo), int(hi)) if lo.lstrip("-").isdigit() else (ord(lo), ord(hi))
            size = abs(b - a) // max(abs(int(step or 1)), 1) + 1
        elif "," in body:
            size = sum(product(alt) for alt in body.split(","))
        else:
            size = product(body)
        sizes.append(min(size, _MAX_SHARDS + 1))
        return f"\x00{len(sizes) - 1}\x00"

    text = pattern.replace("\x00", "")
    while True:
        text, n = _BRACE_GROUP.subn(reduce, text, count=1)
        if not n:
            return min(product(text), _MAX_SHARDS + 1)


def _digest(value: Any) -> str | None:
    if isinstance(value, str) and _SHA256.match(value.lower()):
        return value.lower()
    return None


def _blob_shards(
    storage: Mapping[str, Any], did: str, pds: str | None, uri: str
) -> list[ShardFacts]:
    blobs = storage.get("blobs")
    if not isinstance(blobs, list) or not blobs or len(blobs) > _MAX_SHARDS:
        raise CroissantError(f"{uri}: storage.blobs must be a non-empty list of blobs")
    out = []
    for i, blob in enumerate(blobs):
        ref = blob.get("ref") if isinstance(blob, Mapping) else None
        link = ref.get("$link") if isinstance(ref, Mapping) else None
        if not isinstance(link, str):
            raise CroissantError(f"{uri}: storage.blobs[{i}] has no CID")
        if pds:
            url = (
                f"{pds.rstrip('/')}/xrpc/com.atproto.sync.getBlob"
                f"?did={quote(did, safe='')}&cid={quote(link, safe='')}"
            )
        else:
            url = f"at://{did}/blob/{link}"
        out.append(ShardFacts(url, _count(blob.get("size")), _cid_sha256(link)))
    return out


def _cid_sha256(cid: str) -> str | None:
    """The SHA-256 (hex) of a blob from its CID: CIDv1, raw codec, sha2-256 multihash."""
    try:
        parts = libipld.decode_cid(cid)
    except (ValueError, TypeError):
        return None
    mh = parts.get("hash", {})
    if parts.get("codec") != 0x55 or mh.get("code") != 0x12 or mh.get("size") != 32:
        return None
    return bytes(mh["digest"]).hex()


def _record_metadata(raw: Any, uri: str) -> dict[str, Any]:
    if raw is None:
        return {}
    try:
        text = raw["$bytes"] if not isinstance(raw, bytes) else ""
        data = raw if isinstance(raw, bytes) else base64.b64decode(text + "=" * (-len(text) % 4))
        if len(data) > _MAX_METADATA:
            raise ValueError("too large")
        value = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (KeyError, TypeError, ValueError, msgpack.UnpackException) as exc:
        raise CroissantError(f"{uri}: metadata is not msgpack bytes ({exc})") from None
    if not isinstance(value, dict):
        raise CroissantError(f"{uri}: metadata is not a msgpack map")
    return value


def _record_splits(raw: Any, shards: int, uri: str) -> list[tuple[str, list[int]]]:
    if not isinstance(raw, list):
        return []
    out = []
    for i, split in enumerate(raw):
        name = split.get("name") if isinstance(split, Mapping) else None
        idx = split.get("shards") if isinstance(split, Mapping) else None
        if not nonempty_text(name) or not isinstance(idx, list):
            raise CroissantError(f"{uri}: splits[{i}] needs a name and shard indices")
        if not all(_count(j) is not None and j < shards for j in idx):
            raise CroissantError(f"{uri}: split {name!r} names a shard index out of range")
        out.append((name, list(idx)))
    return out


def read_entry(entry: Any, uri: str | None, pds: str | None) -> DatasetFacts:
    """The facts of a team-index entry, a federation entry or a dataset record (any form
    :func:`atdata.croissant.to_croissant` accepts); ``pds`` serves blob shards over HTTP."""
    record = getattr(entry, "record", None)
    if isinstance(record, Mapping) and isinstance(getattr(entry, "uri", None), str):
        return _from_record(record, entry.uri, getattr(entry, "cid", None), pds)
    if isinstance(entry, Mapping):
        if isinstance(entry.get("value"), Mapping) and isinstance(entry.get("uri"), str):
            return _from_record(entry["value"], entry["uri"], nonempty_text(entry.get("cid")), pds)
        where = uri or getattr(entry, "uri", None)
        if not isinstance(where, str):
            raise CroissantError("a dataset record needs its AT-URI (pass uri=...)")
        return _from_record(entry, where, getattr(entry, "cid", None), pds)
    if all(hasattr(entry, a) for a in ("name", "schema_ref", "data_urls", "metadata")):
        return _from_index_entry(entry)
    raise TypeError(f"cannot describe a {type(entry).__name__} as Croissant")
