"""``atdata croissant REF``: the Croissant JSON-LD document of any dataset ``load_dataset`` opens.

Index names (``@local/name``) and published records (``@handle/name``,
``at://`` URIs) are described from their entries; files, patterns and URLs from
the shards themselves (local files are hashed; remote ones are listed without
a checksum, see docs/croissant.md).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer

from atdata.cli._common import default_index, schema_ref
from atdata.cli.datasets import RefArg, TypeOpt

__all__ = ["croissant"]

UrlOpt = Annotated[
    str | None, typer.Option("--url", help="The dataset's web page (default: its AT-URI).")
]


@dataclass
class _ShardFacts:
    url: str
    size: int | None = None
    sha256: str | None = None


@dataclass
class _FilesEntry:
    """Shards named by a path, pattern or URL, as an index entry (see atdata.croissant)."""

    name: str
    schema_ref: str
    data_urls: list[str]
    shards: list[_ShardFacts]
    splits: dict[str, list[int]]
    metadata: dict[str, Any] = field(default_factory=dict)


def croissant(ref: RefArg, sample_type: TypeOpt = None, url: UrlOpt = None) -> None:
    """Print the Croissant 1.1 JSON-LD document of a dataset (one JSON document)."""
    doc = describe(ref, schema_ref(sample_type), url)
    typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))


def describe(ref: str, sample_type: str | None, url: str | None) -> dict[str, Any]:
    """The Croissant document of ``ref`` (any reference ``load_dataset`` accepts)."""
    from atdata.croissant import to_croissant

    if ref.startswith("@local/"):
        index = default_index()
        entry = index.get_dataset(ref[len("@local/") :])
        schema = index.decode_schema(sample_type or entry.schema_ref)
        return to_croissant(entry, schema=schema, url=url)
    if ref.startswith("@") or (ref.startswith("at://") and "/blob/" not in ref):
        return _published(ref, sample_type, url)
    entry, found = _files(ref, sample_type)
    return to_croissant(entry, schema=found, url=url)


def _published(ref: str, sample_type: str | None, url: str | None) -> dict[str, Any]:
    from atdata.atmosphere import AtmosphereIndex
    from atdata.atmosphere.lens import LensLoader
    from atdata.cli._atmosphere import reader
    from atdata.croissant import to_croissant

    client = reader()
    try:
        index = AtmosphereIndex(client)
        if ref.startswith("@"):
            authority, _, name = ref[1:].partition("/")
            if not authority or not name:
                raise ValueError(f"{ref!r} is not of the form @handle/name or @did/name")
            entry = index.find_dataset(name, repo=client.resolve_did(authority))
        else:
            entry = index.get_dataset(ref)
        did = entry.did
        schema = index.decode_schema(sample_type or entry.schema_ref)
        lenses = [
            r
            for r in LensLoader(client).iter_all(repo=did)
            if entry.schema_ref in (r.get("sourceSchema"), r.get("targetSchema"))
        ]
        pds = client.resolve_pds(did) if entry.storage_type == "blobs" else None
        creator = {"did": did, "handle": client.handle_of(did) or ""}
        return to_croissant(entry, schema=schema, lenses=lenses, creator=creator, url=url, pds=pds)
    finally:
        client.close()


def _files(ref: str, sample_type: str | None) -> tuple[_FilesEntry, type | None]:
    """Every shard of every split (hashed when it is a local file), and the sample type."""
    from atdata.dict_sample import DictSample
    from atdata.load import load_dataset
    from atdata.sources import local_path

    splits = load_dataset(ref, sample_type)
    urls: list[str] = []
    facts: list[_ShardFacts] = []
    members: dict[str, list[int]] = {}
    for split, ds in splits.items():
        for shard in ds.list_shards():
            members.setdefault(split, []).append(len(urls))
            urls.append(shard)
            path = local_path(shard)
            facts.append(_hash_file(shard, path) if path is not None else _ShardFacts(shard))
    entry = _FilesEntry(
        name=ref,
        schema_ref=sample_type or "",
        data_urls=urls,
        shards=facts,
        splits=members if len(members) > 1 else {},
    )
    found = splits.sample_type
    return entry, None if found is None or found is DictSample else found


def _hash_file(url: str, path: Any) -> _ShardFacts:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return _ShardFacts(url, size, digest.hexdigest())
