"""Promotion: publish a dataset of a team index to the AT Protocol federation.

Example (needs an account on a PDS)::

    from atdata.promote import promote_to_atmosphere
    at_uri = promote_to_atmosphere(local_index.get_dataset("features"), local_index, client)

What happens, in order:

1. The entry's schema is read from the local index (``KeyError`` if it is not
   there) and rebuilt as a type; the account's schema records are searched,
   every page, for the same ``{module}.{class}`` identity, version and fields.
   A match is reused; otherwise the schema is published once.
2. Data: by default the entry's URLs are published as they are (the seed's
   "keep existing URLs"), with the per-shard SHA-256 recorded when the index
   copied the data, and the S3 endpoint when the index's store is not AWS (so
   others can read a public bucket there). URLs others likely cannot read
   (local paths, published as ``file://`` URIs; loopback or private hosts and
   endpoints) give a :class:`~atdata.errors.PrivateURLWarning` naming each
   URL and why; with ``require_public_urls=True`` they raise
   :class:`~atdata.errors.PrivateURLError` instead. A URL carrying a
   credential (user-info, a presigned signature or token) is always refused
   (:class:`~atdata.errors.CredentialURLError`). With ``data_store=`` (an
   ``S3DataStore``/``LocalDiskStore`` or a ``PDSBlobStore``) every shard is
   copied byte for byte first, the SHA-256 of each copy is compared with the
   one the index recorded, and the record points at the copies. Every refusal
   happens before anything is copied or published.
3. Metadata carries over: the entry's metadata, with ``description``, ``tags``
   and ``license`` taken from it unless given as arguments.

Promoting the same entry twice: the dataset record keeps the local entry's CID
(``metadata["atdata:sourceCid"]``); when our account already holds a dataset
record with that CID and the same name, its AT-URI is returned and nothing is
published. A changed entry has another CID, so it is published as a new record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from atdata._urls import check_publishable
from atdata.atmosphere import (
    AtmosphereClient,
    AtmosphereIndexEntry,
    DatasetPublisher,
    PDSBlobStore,
    SchemaPublisher,
)
from atdata.atmosphere.index import file_uri, store_endpoint
from atdata.atmosphere.records import DATASET_COLLECTION, iter_records
from atdata.protocols import AbstractDataStore, IndexEntry
from atdata.schema import schema_to_type

__all__ = ["SOURCE_CID_KEY", "already_promoted", "promote_to_atmosphere"]

SOURCE_CID_KEY = "atdata:sourceCid"


def already_promoted(client: AtmosphereClient, name: str, cid: str) -> str | None:
    """The AT-URI of our dataset record named ``name`` promoted from the entry with CID ``cid``, if any."""
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
    require_public_urls: bool = False,
) -> str:
    """Publish ``entry`` of ``local_index`` as a dataset record in ``client``'s account.

    Returns the AT-URI of the dataset record. Raises ``KeyError`` when the
    entry's schema is not in the local index, ``ValueError`` when the entry has
    no data URLs, :class:`~atdata.errors.CredentialURLError` for a URL carrying
    a credential and, with ``require_public_urls``,
    :class:`~atdata.errors.PrivateURLError` (a ``ValueError``) for URLs others
    likely cannot read; without it they are published with a
    :class:`~atdata.errors.PrivateURLWarning` (see the module docs).

    Example (needs an account on a PDS)::

        at_uri = promote_to_atmosphere(entry, local_index, client, license="MIT")
    """
    urls = list(entry.data_urls)
    if not urls:
        raise ValueError(f"entry {entry.name!r} has no data URLs to promote")
    target = name or entry.name
    cid = getattr(entry, "cid", None)
    prefix = f"promoted/{target}"

    # Every refusal before anything is copied or published.
    planned: list[str] | None = None
    endpoint: str | None = None
    if data_store is None:
        urls = [file_uri(u) for u in urls]  # a local path goes into a record as a file:// URI
        planned = urls
        endpoint = store_endpoint(getattr(local_index, "data_store", None), urls)
    else:
        planned_url = data_store.planned_url(prefix)
        if planned_url is not None:
            planned = [file_uri(planned_url)]
            endpoint = store_endpoint(data_store, planned)
    if planned is not None:
        check_publishable(
            planned, endpoint=endpoint, require_public=require_public_urls, warn=False
        )

    meta: dict[str, Any] = dict(entry.metadata or {})
    description = description if description is not None else meta.pop("description", None)
    tags = list(tags) if tags is not None else meta.pop("tags", None)
    license = license if license is not None else meta.pop("license", None)
    for key in ("description", "tags", "license"):
        meta.pop(key, None)

    schema = local_index.get_schema(entry.schema_ref)  # KeyError when not published locally
    if cid is not None:
        existing = already_promoted(client, target, cid)
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
        "require_public_urls": require_public_urls,
    }
    if data_store is None:
        return str(
            publisher.publish_with_urls(
                urls, schema_uri, sha256=_digests(entry), endpoint=endpoint, **fields
            )
        )

    dataset = local_index.dataset_for(entry, sample_type)  # read with the index's credentials
    if isinstance(data_store, PDSBlobStore):
        fields.pop("require_public_urls")
        stored = data_store.upload_shards(dataset)
        _check_copies(entry, [b.sha256 for b in stored])
        return str(publisher.publish(stored, schema_uri=schema_uri, **fields))
    copied = data_store.copy_shards(dataset, prefix=prefix)
    digests = [s.sha256 for s in copied]
    recorded = [d for d in digests if d]
    try:
        _check_copies(entry, digests)
        copied_urls = [file_uri(s.url) for s in copied]
        return str(
            publisher.publish_with_urls(
                copied_urls,
                schema_uri,
                sha256=recorded if len(recorded) == len(digests) else None,
                endpoint=store_endpoint(data_store, copied_urls),
                **fields,
            )
        )
    except BaseException as exc:  # nothing published: remove the copies made for it
        data_store.remove_after(exc, [s.url for s in copied])
        raise


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
