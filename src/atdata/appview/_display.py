"""What the AppView's pages show of a record: schema rows, shard rows, sizes, the load snippet.

Records come from strangers: every value is type-checked before it is shown,
nested types are followed to a bounded depth, and long lists are cut (with the
count of what was left out). Nothing here is HTML: the templates escape it all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from atdata._croissant_entries import read_entry
from atdata.atmosphere.uri import AtUri

__all__ = [
    "FieldRow",
    "ShardRow",
    "dataset_path",
    "human_bytes",
    "load_snippet",
    "record_path",
    "safe_link",
    "schema_rows",
    "shard_rows",
    "size_summary",
    "version_key",
]

_MAX_DEPTH = 8
_MAX_ROWS = 1000
_SEMVER = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(.*)$")


@dataclass(frozen=True)
class FieldRow:
    """One row of a schema table; ``ref`` is the AT-URI of a referenced schema, if any."""

    name: str
    type: str
    dtype: str
    shape: str
    optional: bool
    description: str
    ref: str | None = None

    @property
    def ref_path(self) -> str | None:
        """The page of the referenced schema."""
        return record_path("schema", self.ref) if self.ref else None


@dataclass(frozen=True)
class ShardRow:
    """One shard: a URL (``href`` when it is safe to link) or a blob CID, size, SHA-256."""

    label: str
    href: str | None
    blob_cid: str | None
    size: int | None
    sha256: str | None


def _text(value: Any, limit: int = 500) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _kind(ft: Mapping[str, Any]) -> str:
    return _text(ft.get("$type"), 200).rpartition("#")[2]


def _shape(value: Any) -> str:
    if not isinstance(value, list) or not all(isinstance(d, int) for d in value):
        return ""
    return "(" + ", ".join("*" if d < 0 else str(d) for d in value[:32]) + ")"


def _describe(ft: Any, depth: int) -> tuple[str, str, str, str | None]:
    """``(type, dtype, shape, ref)`` of a field type; arrays inside lists report their dtype."""
    if not isinstance(ft, Mapping) or depth > _MAX_DEPTH:
        return "?", "", "", None
    kind = _kind(ft)
    if kind == "primitive":
        return _text(ft.get("primitive"), 32) or "?", "", "", None
    if kind == "ndarray":
        return "ndarray", _text(ft.get("dtype"), 64) or "any", _shape(ft.get("shape")), None
    if kind in ("array", "map"):
        item = ft.get("items" if kind == "array" else "values")
        inner, dtype, shape, ref = _describe(item, depth + 1)
        if isinstance(item, Mapping) and item.get("optional") is True:
            inner += " | None"
        return (f"list[{inner}]" if kind == "array" else f"dict[str, {inner}]"), dtype, shape, ref
    if kind == "ref":
        ref = _text(ft.get("ref"), 500)
        return "ref", "", "", ref if record_path("schema", ref) else None
    if kind == "sample":
        return _text(ft.get("name"), 200) or "sample", "", "", None
    return kind or "?", "", "", None


def schema_rows(record: Mapping[str, Any]) -> list[FieldRow]:
    """The fields of a sampleSchema record, nested sample fields as ``outer.inner`` rows."""
    rows: list[FieldRow] = []

    def walk(fields: Any, prefix: str, depth: int) -> None:
        if not isinstance(fields, list) or depth > _MAX_DEPTH:
            return
        for f in fields:
            if len(rows) >= _MAX_ROWS:
                return
            if not isinstance(f, Mapping):
                continue
            name = prefix + (_text(f.get("name"), 128) or "?")
            ft = f.get("fieldType")
            type_, dtype, shape, ref = _describe(ft, 0)
            rows.append(
                FieldRow(
                    name,
                    type_,
                    dtype,
                    shape,
                    f.get("optional") is True,
                    _text(f.get("description"), 3000),
                    ref,
                )
            )
            inner = ft
            while isinstance(inner, Mapping) and _kind(inner) in ("array", "map"):
                inner = inner.get("items") if _kind(inner) == "array" else inner.get("values")
            if isinstance(inner, Mapping) and _kind(inner) == "sample":
                walk(inner.get("fields"), name + ".", depth + 1)

    walk(record.get("fields"), "", 0)
    return rows


def safe_link(url: str) -> str | None:
    """``url`` if it is an http(s) URL a page may link to, else None."""
    return url if re.match(r"^https?://[^\s<>\"']+$", url) and len(url) <= 2000 else None


def shard_rows(
    uri: str, record: Mapping[str, Any], pds: str | None
) -> tuple[list[ShardRow], int, list[tuple[str, list[int]]]]:
    """The first shards of a dataset record, how many it has, and its splits.

    Raises :class:`CroissantError` (naming ``uri``) for a malformed storage or split list.
    """
    facts = read_entry(record, uri, None)
    blobs = _blob_links(record)
    rows = []
    for i, shard in enumerate(facts.shards[:_MAX_ROWS]):
        cid = blobs[i] if i < len(blobs) else None
        href = None
        if cid is not None and pds:
            href = (
                f"{pds.rstrip('/')}/xrpc/com.atproto.sync.getBlob"
                f"?did={quote(facts.did or '', safe='')}&cid={quote(cid, safe='')}"
            )
        elif cid is None:
            href = safe_link(shard.url)
        rows.append(
            ShardRow(cid or shard.url, safe_link(href or ""), cid, shard.size, shard.sha256)
        )
    return rows, len(facts.shards), facts.splits


def _blob_links(record: Mapping[str, Any]) -> list[str]:
    storage = record.get("storage")
    blobs = storage.get("blobs") if isinstance(storage, Mapping) else None
    if not isinstance(blobs, list):
        return []
    out = []
    for blob in blobs:
        ref = blob.get("ref") if isinstance(blob, Mapping) else None
        link = ref.get("$link") if isinstance(ref, Mapping) else None
        out.append(_text(link, 200))
    return out


def human_bytes(n: int) -> str:
    """``1.5 MB`` style (powers of 1000)."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def size_summary(record: Mapping[str, Any]) -> str:
    """``1,000 samples · 2.1 MB · 3 shards`` from what the record says (nothing is expanded)."""
    size, storage = record.get("size"), record.get("storage")
    size = size if isinstance(size, Mapping) else {}
    storage = storage if isinstance(storage, Mapping) else {}
    samples, nbytes, shards = (_count(size.get(k)) for k in ("samples", "bytes", "shards"))
    blobs = storage.get("blobs")
    urls = storage.get("urls")
    if isinstance(blobs, list):
        sizes = [_count(b.get("size")) if isinstance(b, Mapping) else None for b in blobs]
        shards = shards if shards is not None else len(blobs)
        if nbytes is None and sizes and all(s is not None for s in sizes):
            nbytes = sum(s for s in sizes if s is not None)
    elif shards is None and isinstance(urls, list) and not any("{" in str(u) for u in urls):
        shards = len(urls)
    parts = []
    if samples is not None:
        parts.append(f"{samples:,} sample{'s' if samples != 1 else ''}")
    if nbytes is not None:
        parts.append(human_bytes(nbytes))
    if shards is not None:
        parts.append(f"{shards:,} shard{'s' if shards != 1 else ''}")
    return " · ".join(parts)


def load_snippet(handle: str | None, did: str, name: str, splits: list[str]) -> str:
    """Python that loads the dataset by publisher and name (a valid string literal for any name)."""
    ref = json.dumps(f"@{handle or did}/{name}", ensure_ascii=False)
    names = ", ".join(json.dumps(s, ensure_ascii=False) for s in splits or ["train"])
    return (
        f"import atdata\n\nds = atdata.load_dataset({ref})\n"
        f"# a DatasetDict: one typed Dataset per split ({names})"
    )


def record_path(kind: str, uri: str) -> str | None:
    """``/{kind}/{did}/{rkey}`` for a record's AT-URI; None if it is not one."""
    try:
        parsed = AtUri.parse(uri)
    except ValueError:
        return None
    if not parsed.rkey:
        return None
    return f"/{kind}/{quote(parsed.authority, safe=':')}/{quote(parsed.rkey, safe='')}"


def dataset_path(uri: str) -> str | None:
    """The page of a dataset record."""
    return record_path("dataset", uri)


def version_key(version: str) -> tuple[Any, ...]:
    """Order versions numerically where they look like semver, else as text."""
    m = _SEMVER.match(version)
    if not m:
        return (0, version)
    nums = tuple(int(g) if g else 0 for g in m.groups()[:3])
    return (1, nums, m.group(4) == "", m.group(4))
