"""Promotion: publish a dataset of a team index to the AT Protocol federation.

>>> # from atdata.promote import promote_to_atmosphere
>>> # at_uri = promote_to_atmosphere(local_index.get_entry_by_name("features"), local_index, client)

What happens, in order:

1. The entry's schema is read from the local index (``KeyError`` if it is not
   there) and rebuilt as a type; the account's schema records are searched,
   every page, for the same ``{module}.{class}`` identity, version and fields.
   A match is reused; otherwise the schema is published once.
2. Data: by default the entry's URLs are published as they are, with the
   per-shard SHA-256 recorded when the index copied the data. URLs that only
   the owner can read (local paths, loopback or private hosts, ``s3://``
   buckets) are refused with :class:`~atdata.atmosphere.PrivateURLError`
   pointing to ``data_store=``, unless ``allow_private_urls=True`` (or the
   environment variable ``ATDATA_ALLOW_PRIVATE_URLS=1``, handy for a local
   trial stack); local paths allowed this way are published as ``file://``
   URIs. With ``data_store=`` (an ``S3DataStore``/``LocalDiskStore`` or a
   ``PDSBlobStore``) every shard is copied byte for byte first, the SHA-256 of
   each copy is compared with the one the index recorded, and the record
   points at the copies.
3. Metadata carries over: the entry's metadata, with ``description``, ``tags``
   and ``license`` taken from it unless given as arguments.

Promoting the same entry twice: the dataset record keeps the local entry's CID
(``metadata["atdata:sourceCid"]``); when our account already holds a dataset
record with that CID and the same name, its AT-URI is returned and nothing is
published. A changed entry has another CID, so it is published as a new record.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from atdata.atmosphere import (
    AtmosphereClient,
    AtmosphereIndexEntry,
    DatasetPublisher,
    PDSBlobStore,
    SchemaPublisher,
)
from atdata.atmosphere.index import check_public_urls, file_uri
from atdata.atmosphere.records import DATASET_COLLECTION, iter_records
from atdata.local.stores.base import DataStore
from atdata.protocols import AbstractDataStore, IndexEntry
from atdata.schema import schema_to_type

__all__ = ["SOURCE_CID_KEY", "promote_to_atmosphere"]

SOURCE_CID_KEY = "atdata:sourceCid"


def _allow_private(explicit: bool | None) -> bool:
    if explicit is not None:
        return explicit
    return os.environ.get("ATDATA_ALLOW_PRIVATE_URLS", "").lower() in ("1", "true", "yes")


def _already_promoted(client: AtmosphereClient, name: str, cid: str) -> str | None:
    for record in iter_records(client, DATASET_COLLECTION):
        entry = AtmosphereIndexEntry.from_record(record)
        if entry.name == name and (entry.metadata or {}).get(SOURCE_CID_KEY) == cid:
            return entry.uri
    return None


def promote_to_atmosphere(
    entry: IndexEntry,
    local_index: Any,
    client: AtmosphereClient,
    *,
    name: str | None = None,
    description: str | None = None,
    tags: Sequence[str] | None = None,
    license: str | None = None,
    data_store: AbstractDataStore | None = None,
    allow_private_urls: bool | None = None,
) -> str:
    """Publish ``entry`` of ``local_index`` as a dataset record in ``client``'s account.

    Returns the AT-URI of the dataset record. Raises ``KeyError`` when the
    entry's schema is not in the local index, ``ValueError`` when the entry has
    no data URLs, and :class:`~atdata.atmosphere.PrivateURLError` (a
    ``ValueError``) for URLs others could not read (see the module docs).

    >>> # at_uri = promote_to_atmosphere(entry, local_index, client, license="MIT")
    """
    urls = list(entry.data_urls)
    if not urls:
        raise ValueError(f"entry {entry.name!r} has no data URLs to promote")
    target = name or entry.name
    cid = getattr(entry, "cid", None)

    meta: dict[str, Any] = dict(entry.metadata or {})
    description = description if description is not None else meta.pop("description", None)
    tags = list(tags) if tags is not None else meta.pop("tags", None)
    license = license if license is not None else meta.pop("license", None)
    for key in ("description", "tags", "license"):
        meta.pop(key, None)

    schema = local_index.get_schema(entry.schema_ref)  # KeyError when not published locally
    if cid is not None:
        existing = _already_promoted(client, target, cid)
        if existing is not None:
            return existing
        meta[SOURCE_CID_KEY] = cid
    sample_type = schema_to_type(schema)
    schema_uri = SchemaPublisher(client).find_or_publish(
        sample_type, version=schema["version"], description=schema.get("description")
    )

    publisher = DatasetPublisher(client)
    fields: dict[str, Any] = {
        "name": target,
        "description": description,
        "tags": tags,
        "license": license,
        "metadata": meta or None,
    }
    if data_store is None:
        if not _allow_private(allow_private_urls):
            try:
                check_public_urls(urls)
            except ValueError as exc:
                raise type(exc)(
                    f"{exc}; or copy the shards to public storage with "
                    "promote_to_atmosphere(..., data_store=S3DataStore(...) or PDSBlobStore(client))"
                ) from None
        urls = [file_uri(u) for u in urls]  # a local path goes into a record as a file:// URI
        return str(publisher.publish_with_urls(urls, schema_uri, sha256=_digests(entry), **fields))

    dataset = local_index.dataset_for(entry, sample_type)  # read with the index's credentials
    if isinstance(data_store, PDSBlobStore):
        stored = data_store.upload_shards(dataset)
        _check_copies(entry, [b.sha256 for b in stored])
        return str(publisher.publish_blobs(stored, schema_uri, **fields))
    if isinstance(data_store, DataStore):
        copied = data_store.copy_shards(dataset, prefix=f"promoted/{target}")
        digests = [s.sha256 for s in copied]
        try:
            _check_copies(entry, digests)
            return str(
                publisher.publish_with_urls(
                    [s.url for s in copied],
                    schema_uri,
                    sha256=digests if all(digests) else None,
                    **fields,
                )
            )
        except BaseException as exc:  # nothing published: remove the copies made for it
            data_store.remove_after(exc, [s.url for s in copied])
            raise
    copied_urls = data_store.write_shards(dataset, prefix=f"promoted/{target}")
    return str(publisher.publish_with_urls(copied_urls, schema_uri, **fields))


def _check_copies(entry: IndexEntry, copied: Sequence[str | None]) -> None:
    """Compare the SHA-256 of each copy with the one the index recorded (when both are known).

    Nothing is published when a copy differs: the record would point at other bytes.
    """
    recorded = _digests(entry)
    if recorded is None or len(recorded) != len(copied):
        return  # not recorded (add_entry), or split into blob-sized pieces
    for url, want, got in zip(entry.data_urls, recorded, copied):
        if got is not None and got != want:
            raise ValueError(
                f"the copy of {url} has SHA-256 {got}, the index recorded {want}; nothing was published"
            )


def _digests(entry: IndexEntry) -> list[str] | None:
    shards: Sequence[Any] = getattr(entry, "shards", ())
    digests = [getattr(s, "sha256", None) for s in shards]
    if shards and len(digests) == len(entry.data_urls) and all(digests):
        return [str(d) for d in digests]
    return None
