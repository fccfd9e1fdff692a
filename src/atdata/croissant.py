"""Croissant metadata (MLCommons JSON-LD, version 1.1) for any atdata dataset.

:func:`to_croissant` turns a dataset entry into one self-contained JSON-LD
document (its ``@context`` inline, so nothing is fetched to read it). It is a
pure function: everything it describes comes from its arguments, so a web
handler can call it on records it already holds. It accepts

- a team-index entry (:class:`~atdata.IndexEntry`: ``name``, ``schema_ref``,
  ``data_urls``, ``metadata``, and ``shards``, ``created_at``, ``cid`` and
  ``splits`` (split name to shard indices) when present), whose ``metadata``
  may hold ``description``, ``tags``, ``license``, ``version``, ``creator``
  and ``citation``;
- a federation entry (an object with ``uri`` and ``record``, like
  ``AtmosphereIndexEntry``), a checked record (a dict with a ``uri``
  attribute), or a record as ``com.atproto.repo.getRecord`` returns it
  (``{"uri": ..., "cid": ..., "value": {...}}``).

Every shard is one ``cr:FileObject`` (a tar file); the samples inside them are
a ``cr:FileSet`` of ``*.msgpack`` members, and the sample schema becomes a
``cr:RecordSet`` with one ``cr:Field`` per field. docs/croissant.md gives the
mapping field by field.

>>> entry = {"uri": "at://did:plc:abc/ac.foundation.dataset.record/3k", "value": {
...     "name": "demo", "schemaRef": "at://did:plc:abc/ac.foundation.dataset.sampleSchema/3j",
...     "storage": {"$type": "ac.foundation.dataset.storageExternal",
...                 "urls": ["https://example.org/demo-000.tar"], "sha256": ["ab" * 32]},
...     "license": "MIT", "createdAt": "2026-01-01T00:00:00Z"}}
>>> doc = to_croissant(entry, creator={"did": "did:plc:abc", "handle": "alice.example"})
>>> doc["license"], doc["distribution"][0]["sha256"][:4]
('https://spdx.org/licenses/MIT.html', 'abab')
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import libipld
import msgpack
from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression

from atdata.errors import AtdataError, SchemaError
from atdata.sample import FieldType, fields_of, is_packable
from atdata.schema import SCHEMA_FORMAT_VERSION, schema_to_type
from atdata.sources import expand_urls

__all__ = ["CONTEXT", "CROISSANT_VERSION", "CroissantError", "spdx_url", "to_croissant"]

CROISSANT_VERSION = "http://mlcommons.org/croissant/1.1"
"""The ``conformsTo`` of every document."""

CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "dct": "http://purl.org/dc/terms/",
    "arrayShape": "cr:arrayShape",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "containedIn": "cr:containedIn",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "description": {"@container": "@language"},
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileObject": "cr:fileObject",
    "fileProperty": "cr:fileProperty",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isArray": "cr:isArray",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "name": {"@container": "@language"},
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}
"""The Croissant 1.1 JSON-LD context, carried inline by every document."""

_DATASET = "ac.foundation.dataset.record"
_EXTERNAL = "ac.foundation.dataset.storageExternal"
_BLOBS = "ac.foundation.dataset.storageBlobs"
_SCHEMA = "ac.foundation.dataset.sampleSchema"
_TAR = "application/x-tar"
_MSGPACK = "https://msgpack.org"  # no registered MIME type: Croissant asks for a URL then
_SAMPLES = "samples"
_SPLITS = "splits"
_MAX_SHARDS = 100_000
_MAX_METADATA = 1_000_000
_MAX_DEPTH = 64
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_BRACE_GROUP = re.compile(r"\{([^{}]*)\}")
_BRACE_RANGE = re.compile(r"^(-?\d+|[A-Za-z])\.\.(-?\d+|[A-Za-z])(?:\.\.(-?\d+))?$")
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PRIMITIVES = {
    "str": "sc:Text",
    "int": "sc:Integer",
    "float": "sc:Float",
    "bool": "sc:Boolean",
    "bytes": "sc:Text",  # no byte-string type in Croissant; mlcroissant reads sc:Text as bytes
}
_DTYPES = {
    "b": "sc:Boolean",
    "i1": "cr:Int8",
    "i2": "cr:Int16",
    "i4": "cr:Int32",
    "i8": "cr:Int64",
    "u1": "cr:UInt8",
    "u2": "cr:UInt16",
    "u4": "cr:UInt32",
    "u8": "cr:UInt64",
    "f2": "cr:Float16",
    "f4": "cr:Float32",
    "f8": "cr:Float64",
}
_NPY_NOTE = "stored as .npy bytes; Croissant has no data type for its elements"


class CroissantError(AtdataError, ValueError):
    """An entry or record cannot be described as Croissant (the entry is named)."""


def spdx_url(license: str) -> str:
    """``https://spdx.org/licenses/{id}.html`` for an SPDX id; anything else unchanged.

    >>> spdx_url("apache-2.0"), spdx_url("MIT OR Apache-2.0")
    ('https://spdx.org/licenses/Apache-2.0.html', 'MIT OR Apache-2.0')
    """
    try:
        canonical = canonicalize_license_expression(license)
    except InvalidLicenseExpression:
        return license
    if " " in canonical or canonical.startswith("LicenseRef-"):
        return license
    return f"https://spdx.org/licenses/{canonical}.html"


# --------------------------------------------------------------------------- the entry


@dataclass
class _Shard:
    url: str
    size: int | None = None
    sha256: str | None = None


@dataclass
class _Entry:
    """What a document needs from an entry of either layer."""

    where: str
    name: str
    schema_ref: str
    shards: list[_Shard]
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


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _from_index_entry(entry: Any) -> _Entry:
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
        shards.append(_Shard(_file_url(url), size, digest))
    splits = getattr(entry, "splits", None)
    tags = meta.get("tags")
    return _Entry(
        where=f"dataset {name!r}",
        name=name,
        schema_ref=entry.schema_ref,
        shards=shards,
        metadata=dict(meta),
        description=_text(meta.get("description")),
        license=_text(meta.get("license")),
        tags=[t for t in tags if isinstance(t, str)] if isinstance(tags, list) else [],
        created=_text(getattr(entry, "created_at", None)),
        cid=_text(getattr(entry, "cid", None)),
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


def _from_record(value: Mapping[str, Any], uri: str, cid: str | None, pds: str | None) -> _Entry:
    if value.get("$type", _DATASET) != _DATASET:
        raise CroissantError(f"{uri}: not a dataset record ($type {value.get('$type')!r})")
    did = uri.removeprefix("at://").split("/", 1)[0]
    name, schema_ref = _text(value.get("name")), _text(value.get("schemaRef"))
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
    return _Entry(
        where=uri,
        name=name,
        schema_ref=schema_ref,
        shards=shards,
        metadata=_record_metadata(value.get("metadata"), uri),
        description=_text(value.get("description")),
        license=_text(value.get("license")),
        tags=[t for t in tags if isinstance(t, str)] if isinstance(tags, list) else [],
        created=_text(value.get("createdAt")),
        uri=uri,
        did=did,
        cid=cid,
        schema_cid=_text(value.get("schemaCid")),
        splits=_record_splits(value.get("splits"), len(shards), uri),
    )


def _external_shards(storage: Mapping[str, Any], uri: str) -> list[_Shard]:
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
    return [_Shard(u, None, _digest(d)) for u, d in zip(expanded, digests)]


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


def _blob_shards(storage: Mapping[str, Any], did: str, pds: str | None, uri: str) -> list[_Shard]:
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
        out.append(_Shard(url, _count(blob.get("size")), _cid_sha256(link)))
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
        if not _text(name) or not isinstance(idx, list):
            raise CroissantError(f"{uri}: splits[{i}] needs a name and shard indices")
        if not all(_count(j) is not None and j < shards for j in idx):
            raise CroissantError(f"{uri}: split {name!r} names a shard index out of range")
        out.append((name, list(idx)))
    return out


def _normalise(entry: Any, uri: str | None, pds: str | None) -> _Entry:
    """Read any supported entry form (see the module docstring)."""
    record = getattr(entry, "record", None)
    if isinstance(record, Mapping) and isinstance(getattr(entry, "uri", None), str):
        return _from_record(record, entry.uri, getattr(entry, "cid", None), pds)
    if isinstance(entry, Mapping):
        if isinstance(entry.get("value"), Mapping) and isinstance(entry.get("uri"), str):
            return _from_record(entry["value"], entry["uri"], _text(entry.get("cid")), pds)
        where = uri or getattr(entry, "uri", None)
        if not isinstance(where, str):
            raise CroissantError("a dataset record needs its AT-URI (pass uri=...)")
        return _from_record(entry, where, getattr(entry, "cid", None), pds)
    if all(hasattr(entry, a) for a in ("name", "schema_ref", "data_urls", "metadata")):
        return _from_index_entry(entry)
    raise TypeError(f"cannot describe a {type(entry).__name__} as Croissant")


# --------------------------------------------------------------------------- fields


def _json_path(parent: str, name: str) -> str:
    return f"{parent}.{name}" if _PLAIN_NAME.match(name) else f"{parent}.'{name}'"


@dataclass
class _Shape:
    """A field's Croissant form: a data type or sub-fields, and its array dimensions."""

    data_type: str | None
    dims: tuple[int, ...] | None  # () for a scalar, None for an array of unknown rank
    sub: list[dict[str, Any]] | None = None
    note: str | None = None


def _shape_of(ft: FieldType, fid: str, path: str) -> _Shape:
    kind = ft.kind
    if kind in _PRIMITIVES:
        return _Shape(_PRIMITIVES[kind], (), note="raw bytes" if kind == "bytes" else None)
    if kind == "ndarray":
        dtype = ft.dtype
        data_type = None
        if dtype is not None:
            data_type = _DTYPES.get(f"{dtype.kind}{dtype.itemsize}" if dtype.kind != "b" else "b")
            if dtype.kind == "U":
                data_type = "sc:Text"
        if data_type is None:
            return _Shape("sc:Text", (), note=_NPY_NOTE)
        return _Shape(data_type, ft.shape)
    if kind == "list":
        assert ft.item is not None
        inner = _shape_of(ft.item, fid, f"{path}[*]")
        dims = (-1, *inner.dims) if inner.dims is not None else None
        return _Shape(inner.data_type, dims, inner.sub, inner.note)
    if kind == "dict":
        assert ft.item is not None
        key = {
            "@type": "cr:Field",
            "@id": f"{fid}/key",
            "name": "key",
            "description": "the map's key",
            "dataType": "sc:Text",
        }
        value = _field(ft.item, f"{fid}/value", "value", f"{path}.*")
        return _Shape(None, (-1,), [key, value], note="a map, as a list of key/value pairs")
    if kind == "sample":
        assert ft.sample_type is not None
        return _Shape(None, (), _fields(ft.sample_type, fid, path))
    raise SchemaError(f"{fid}: unknown field kind {kind!r}")  # pragma: no cover - fixed kinds


def _field(ft: FieldType, fid: str, name: str, path: str) -> dict[str, Any]:
    shape = _shape_of(ft, fid, path)
    text = f"atdata type: {ft.describe()}"
    if shape.note:
        text += f" ({shape.note})"
    out: dict[str, Any] = {"@type": "cr:Field", "@id": fid, "name": name, "description": text}
    if shape.sub is not None:
        out["subField"] = shape.sub
    else:
        out["dataType"] = shape.data_type
    if shape.dims != ():
        out["isArray"] = True
        if shape.dims is not None:
            out["arrayShape"] = ",".join(str(d) for d in shape.dims)
    out["source"] = {"fileSet": {"@id": _SAMPLES}, "extract": {"jsonPath": path}}
    return out


def _fields(sample_type: type, rs: str, path: str) -> list[dict[str, Any]]:
    return [
        _field(spec.type, f"{rs}/{spec.name}", spec.name, _json_path(path, spec.name))
        for spec in fields_of(sample_type)
    ]


def _sample_type(schema: Any) -> type:
    if is_packable(schema):
        return schema  # type: ignore[no-any-return]
    if not isinstance(schema, Mapping):
        raise TypeError(f"schema must be a schema record or a @packable type, not {schema!r}")
    inner = schema.get("value")
    value: Mapping[str, Any] = inner if isinstance(inner, Mapping) else schema
    if value.get("$type") == _SCHEMA:
        value = _codec_form(value)
    return schema_to_type(value)


def _codec_form(record: Mapping[str, Any]) -> dict[str, Any]:
    """A sampleSchema record in the schema codec's form, without defaults (not described)."""

    def strip(fields: Any, depth: int) -> Any:
        if not isinstance(fields, list) or depth > _MAX_DEPTH:
            return fields
        out = []
        for f in fields:
            if isinstance(f, Mapping):
                f = {k: v for k, v in f.items() if k != "default"}
                f["fieldType"] = strip_type(f.get("fieldType"), depth + 1)
            out.append(f)
        return out

    def strip_type(ft: Any, depth: int) -> Any:
        if not isinstance(ft, Mapping) or depth > _MAX_DEPTH:
            return ft
        ft = dict(ft)
        for key in ("items", "values"):
            if key in ft:
                ft[key] = strip_type(ft[key], depth + 1)
        if "fields" in ft:
            ft["fields"] = strip(ft["fields"], depth + 1)
        return ft

    codec = {k: record[k] for k in ("name", "version", "description") if k in record}
    codec["fields"] = strip(record.get("fields"), 0)
    module = record.get("module")
    if module is not None:  # written by this atdata: exact dtypes, named by its identity
        codec["sampleType"] = module
        codec["atdataSchemaVersion"] = SCHEMA_FORMAT_VERSION
        if isinstance(module, str):
            codec["name"] = module.rpartition(".")[2]
    return codec


def _record_set(sample_type: type, schema_ref: str) -> dict[str, Any]:
    rs = sample_type.__name__
    if rs in (_SAMPLES, _SPLITS):  # the @ids of the file set and the split record set
        rs += "-records"
    key = {
        "@type": "cr:Field",
        "@id": f"{rs}/__key__",
        "name": "__key__",
        "description": "the sample's key: its tar member name without '.msgpack'",
        "dataType": "sc:Text",
        "source": {
            "fileSet": {"@id": _SAMPLES},
            "extract": {"fileProperty": "filename"},
            "transform": {"regex": r"^(.*)\.msgpack$"},
        },
    }
    return {
        "@type": "cr:RecordSet",
        "@id": rs,
        "name": rs,
        "description": f"One record per sample, of the atdata sample schema {schema_ref}",
        "key": {"@id": f"{rs}/__key__"},
        "field": [key, *_fields(sample_type, rs, "$")],
    }


# --------------------------------------------------------------------------- the document


def _creator(e: _Entry, given: Mapping[str, Any] | None) -> dict[str, Any] | None:
    did = (given or {}).get("did") or e.did
    handle = (given or {}).get("handle")
    name = (given or {}).get("name") or handle or _text(e.metadata.get("creator")) or did
    if not name:
        return None
    out: dict[str, Any] = {"@type": "sc:Person", "name": name}
    if did:
        out["identifier"] = did
        out["url"] = f"at://{did}"
    if handle:
        out["alternateName"] = handle
    return out


def _cite(e: _Entry, url: str, creator: dict[str, Any] | None) -> str:
    citation = _text(e.metadata.get("citation"))
    if citation:
        return citation

    def clean(text: str) -> str:
        return re.sub(r"[{}\\\n\r]", "", text)

    year = e.created[:4] if e.created and e.created[:4].isdigit() else None
    key = re.sub(r"[^A-Za-z0-9]+", "", e.name)[:40] or "dataset"
    lines = [f"@misc{{{key}{year or ''},", f"  title = {{{clean(e.name)}}},"]
    if creator is not None:
        lines.append(f"  author = {{{clean(creator['name'])}}},")
    if year:
        lines.append(f"  year = {{{year}}},")
    lines.append(f"  howpublished = {{\\url{{{clean(url)}}}}}")
    return "\n".join(lines) + "\n}"


def _distribution(e: _Entry) -> tuple[list[dict[str, Any]], list[str]]:
    files, ids = [], []
    for i, shard in enumerate(e.shards):
        fid = f"shard-{i:06d}"
        name = urlsplit(shard.url).path.rsplit("/", 1)[-1] or fid
        if shard.url.startswith("at://") or "com.atproto.sync.getBlob" in shard.url:
            name = f"{fid}.tar"
        fo: dict[str, Any] = {
            "@type": "cr:FileObject",
            "@id": fid,
            "name": name,
            "contentUrl": shard.url,
            "encodingFormat": _TAR,
        }
        if shard.size is not None:
            fo["contentSize"] = f"{shard.size} B"
        if shard.sha256 is not None:
            fo["sha256"] = shard.sha256
        else:
            fo["description"] = "SHA-256 not recorded by the publisher: the bytes are not pinned"
        files.append(fo)
        ids.append(fid)
    samples = {
        "@type": "cr:FileSet",
        "@id": _SAMPLES,
        "name": _SAMPLES,
        "description": "The samples: one msgpack map per sample (the atdata wire format), "
        "arrays as .npy bytes, inside the tar shards",
        "containedIn": [{"@id": i} for i in ids],
        "encodingFormat": _MSGPACK,
        "includes": "*.msgpack",
    }
    return [*files, samples], ids


def _split_set(splits: list[tuple[str, list[int]]], ids: list[str]) -> dict[str, Any]:
    return {
        "@type": "cr:RecordSet",
        "@id": _SPLITS,
        "name": _SPLITS,
        "dataType": "cr:Split",
        "description": "The dataset's splits and the shards each one holds",
        "key": {"@id": f"{_SPLITS}/name"},
        "field": [
            {"@type": "cr:Field", "@id": f"{_SPLITS}/name", "name": "name", "dataType": "sc:Text"},
            {
                "@type": "cr:Field",
                "@id": f"{_SPLITS}/shards",
                "name": "shards",
                "description": "@id of each FileObject of the split",
                "dataType": "sc:Text",
                "isArray": True,
                "arrayShape": "-1",
            },
        ],
        "data": [
            {f"{_SPLITS}/name": name, f"{_SPLITS}/shards": [ids[i] for i in idx]}
            for name, idx in splits
        ],
    }


def _lens_links(lenses: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for lens in lenses:
        value = lens.get("value") if isinstance(lens.get("value"), Mapping) else lens
        uri = getattr(lens, "uri", None) or lens.get("uri")
        if not isinstance(uri, str):
            raise CroissantError("a lens record needs its AT-URI")
        link: dict[str, Any] = {
            "@type": "sc:SoftwareSourceCode",
            "name": _text(value.get("name")) or uri,
            "url": uri,
            "description": f"atdata lens from {value.get('sourceSchema')} "
            f"to {value.get('targetSchema')}",
        }
        code = value.get("getterCode")
        if isinstance(code, Mapping) and _text(code.get("repository")):
            link["codeRepository"] = code["repository"]
        out.append(link)
    return out


def to_croissant(
    entry: Any,
    *,
    schema: Mapping[str, Any] | type | None = None,
    index: Any = None,
    lenses: Sequence[Mapping[str, Any]] = (),
    creator: Mapping[str, str] | None = None,
    url: str | None = None,
    uri: str | None = None,
    pds: str | None = None,
) -> dict[str, Any]:
    """The Croissant 1.1 JSON-LD document of a dataset entry, as a JSON-serialisable dict.

    ``schema`` is the sample schema (a schema record, a getRecord-shaped dict, or
    a ``@packable`` type); without it, ``index.decode_schema(entry.schema_ref)``
    is used when ``index`` (any :class:`~atdata.AbstractIndex`) is given, and the
    document has no sample record set otherwise. ``lenses`` are lens records (dicts with ``uri`` and ``value``, or
    records with a ``uri`` attribute) to link. ``creator`` gives the publisher's
    ``did``, ``handle`` or ``name``; ``url`` the dataset's web page (default:
    its AT-URI, or ``atdata://local/dataset/{name}``); ``uri`` the AT-URI of a
    bare record dict; ``pds`` the PDS serving blob shards (their ``contentUrl``
    is then an HTTP ``getBlob`` URL, else ``at://{did}/blob/{cid}``).

    Raises :class:`CroissantError` (an :class:`~atdata.AtdataError`) naming
    the entry when a record is malformed or its schema cannot be described.
    """
    e = _normalise(entry, uri, pds)
    sample_type = None
    try:
        if schema is None and index is not None:
            schema = index.decode_schema(e.schema_ref)
        if schema is not None:
            sample_type = _sample_type(schema)
    except SchemaError as exc:
        raise CroissantError(f"{e.where}: its schema cannot be described: {exc}") from None
    page = url or e.uri or f"atdata://local/dataset/{quote(e.name, safe='')}"
    who = _creator(e, creator)
    distribution, ids = _distribution(e)
    doc: dict[str, Any] = {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": CROISSANT_VERSION,
        "name": e.name,
        "description": e.description or f"The atdata dataset {e.name}",
        "url": page,
    }
    if e.license:
        doc["license"] = spdx_url(e.license)
    if who is not None:
        doc["creator"] = who
    if e.created:
        doc["datePublished"] = e.created
    if e.tags:
        doc["keywords"] = e.tags
    version = _text(e.metadata.get("version"))
    if version:
        doc["version"] = version
    doc["citeAs"] = _cite(e, page, who)
    doc["identifier"] = e.uri or e.cid or e.name
    if any(s.sha256 is None for s in e.shards):
        doc["isLiveDataset"] = True
    if e.schema_ref:
        schema_link: dict[str, Any] = {
            "@type": "sc:CreativeWork",
            "name": "atdata sample schema",
            "url": e.schema_ref,
        }
        if e.schema_cid:
            schema_link["identifier"] = e.schema_cid
        doc["isBasedOn"] = [schema_link]
    if lenses:
        doc["subjectOf"] = _lens_links(lenses)
    doc["distribution"] = distribution
    record_sets = []
    if sample_type is not None:
        record_sets.append(_record_set(sample_type, e.schema_ref))
    if e.splits:
        record_sets.append(_split_set(e.splits, ids))
    if record_sets:
        doc["recordSet"] = record_sets
    return doc
