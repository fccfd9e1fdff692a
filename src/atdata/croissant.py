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

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression

from atdata._croissant_entries import CroissantError, DatasetFacts, nonempty_text, read_entry
from atdata._croissant_fields import SAMPLES, SPLITS, record_set, sample_type_of
from atdata.errors import SchemaError

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

_TAR = "application/x-tar"
_MSGPACK = "https://msgpack.org"  # no registered MIME type: Croissant asks for a URL then


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


# --------------------------------------------------------------------------- the document


def _creator(e: DatasetFacts, given: Mapping[str, Any] | None) -> dict[str, Any] | None:
    did = (given or {}).get("did") or e.did
    handle = (given or {}).get("handle")
    name = (given or {}).get("name") or handle or nonempty_text(e.metadata.get("creator")) or did
    if not name:
        return None
    out: dict[str, Any] = {"@type": "sc:Person", "name": name}
    if did:
        out["identifier"] = did
        out["url"] = f"at://{did}"
    if handle:
        out["alternateName"] = handle
    return out


def _cite(e: DatasetFacts, url: str, creator: dict[str, Any] | None) -> str:
    citation = nonempty_text(e.metadata.get("citation"))
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


def _distribution(e: DatasetFacts) -> tuple[list[dict[str, Any]], list[str]]:
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
        "@id": SAMPLES,
        "name": SAMPLES,
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
        "@id": SPLITS,
        "name": SPLITS,
        "dataType": "cr:Split",
        "description": "The dataset's splits and the shards each one holds",
        "key": {"@id": f"{SPLITS}/name"},
        "field": [
            {"@type": "cr:Field", "@id": f"{SPLITS}/name", "name": "name", "dataType": "sc:Text"},
            {
                "@type": "cr:Field",
                "@id": f"{SPLITS}/shards",
                "name": "shards",
                "description": "@id of each FileObject of the split",
                "dataType": "sc:Text",
                "isArray": True,
                "arrayShape": "-1",
            },
        ],
        "data": [
            {f"{SPLITS}/name": name, f"{SPLITS}/shards": [ids[i] for i in idx]}
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
            "name": nonempty_text(value.get("name")) or uri,
            "url": uri,
            "description": f"atdata lens from {value.get('sourceSchema')} "
            f"to {value.get('targetSchema')}",
        }
        code = value.get("getterCode")
        if isinstance(code, Mapping) and nonempty_text(code.get("repository")):
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
    e = read_entry(entry, uri, pds)
    sample_type = None
    try:
        if schema is None and index is not None:
            schema = index.decode_schema(e.schema_ref)
        if schema is not None:
            sample_type = sample_type_of(schema)
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
    version = nonempty_text(e.metadata.get("version"))
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
        record_sets.append(record_set(sample_type, e.schema_ref))
    if e.splits:
        record_sets.append(_split_set(e.splits, ids))
    if record_sets:
        doc["recordSet"] = record_sets
    return doc
