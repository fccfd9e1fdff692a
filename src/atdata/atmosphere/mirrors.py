"""Mirrors: copies of a published dataset that keep it readable when its publisher is offline.

A mirror record (``ac.foundation.dataset.mirror``) says "this account holds a copy
of dataset X": a strong reference (AT-URI and CID) to the exact version of the
original record copied, where the copy's shards are (PDS blobs or external URLs),
and the SHA-256 of every shard, equal to the original's. :func:`mirror_dataset`
makes one; :func:`open_mirrored` reads a dataset from the first location of each
shard that serves the original's bytes (the original first, then the mirrors),
through :class:`~atdata.MirroredSource`.

Example::

    rec = mirror_dataset("at://did:plc:alice/ac.foundation.dataset.record/3k...", client_b)
    ds = atdata.load_dataset("at://did:plc:alice/ac.foundation.dataset.record/3k...",
                             split="train", mirrors=[rec.uri])
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

from atdata._locations import MirroredSource, ShardLocations
from atdata._urls import ReadPolicy, checked_http_client
from atdata.atmosphere._retry import RetryPolicy
from atdata.atmosphere.blobs import BlobSource, blob_digest, open_blob
from atdata.atmosphere.datasets import BLOBS_STORAGE, EXTERNAL_STORAGE, storage_type
from atdata.atmosphere.records import (
    DATASET_COLLECTION,
    InvalidRecordError,
    Record,
    fetch_record,
    iter_records,
    timestamp,
)
from atdata.atmosphere.uri import AtUri, BlobUrl, is_blob_url
from atdata.dataset import Dataset
from atdata.errors import AtdataError
from atdata.sources import expand_urls, open_url, redact_url

if TYPE_CHECKING:
    from atdata.atmosphere.appview import AppViewClient
    from atdata.atmosphere.client import AtmosphereClient

__all__ = [
    "MIRROR_COLLECTION",
    "MirrorError",
    "find_mirror",
    "list_mirrors",
    "mirror_dataset",
    "mirror_record",
    "mirrored_source",
    "open_mirrored",
    "record_digests",
    "shard_locations",
    "valid_mirrors",
]

MIRROR_COLLECTION = "ac.foundation.dataset.mirror"
log: logging.Logger = logging.getLogger("atdata.mirrors")


class MirrorError(AtdataError):
    """A mirror cannot be made, or a mirror record does not match its original.

    ``orphans`` lists copied objects that could not be removed after a failure.
    """

    def __init__(self, message: str, *, orphans: Sequence[str] = ()) -> None:
        if orphans:
            message += "; these copies could not be removed: " + ", ".join(orphans)
        super().__init__(message)
        self.orphans: list[str] = list(orphans)


# --------------------------------------------------------------------------- records


def record_digests(record: Mapping[str, Any], uri: str = "") -> list[str]:
    """The hex SHA-256 of every shard of a dataset (or mirror) record, in order.

    Blob shards commit to theirs through their CIDs; external shards need the
    record's ``sha256`` list. A record without digests cannot be mirrored or
    checked: :class:`MirrorError`.
    """
    storage = record.get("storage") or {}
    kind = storage.get("$type")
    if kind == BLOBS_STORAGE:
        try:
            return [blob_digest(b["ref"]["$link"]).hex() for b in storage["blobs"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise MirrorError(f"{uri}: a blob has no usable CID ({exc})") from None
    if kind == EXTERNAL_STORAGE:
        shards = expand_urls(storage.get("urls") or [])
        digests = storage.get("sha256") or []
        if len(digests) != len(shards):
            raise MirrorError(
                f"{uri}: the record gives {len(digests)} SHA-256 digests for {len(shards)} "
                "shards; without a digest per shard a copy cannot be verified"
            )
        return [str(d).lower() for d in digests]
    raise MirrorError(f"{uri}: unknown storage type {kind!r}")


def _locations(record: Mapping[str, Any], did: str) -> list[str]:
    """Where the shards of a record are: ``at://{did}/blob/{cid}`` ids or expanded URLs."""
    storage = record["storage"]
    if storage.get("$type") == BLOBS_STORAGE:
        return [str(BlobUrl(did, b["ref"]["$link"])) for b in storage["blobs"]]
    return expand_urls(storage["urls"])


def _sizes(record: Mapping[str, Any], count: int) -> list[int | None]:
    storage = record["storage"]
    if storage.get("$type") == BLOBS_STORAGE:
        return [b.get("size") if isinstance(b.get("size"), int) else None for b in storage["blobs"]]
    return [None] * count


def mirror_record(
    original: Record, storage: Mapping[str, Any], sha256: Sequence[str]
) -> dict[str, Any]:
    """An ``ac.foundation.dataset.mirror`` record of ``original`` (its URI and CID pinned)."""
    if not original.cid:
        raise MirrorError(f"{original.uri}: the CID of the original is unknown; cannot pin it")
    record: dict[str, Any] = {
        "$type": MIRROR_COLLECTION,
        "subject": {"uri": original.uri, "cid": original.cid},
        "storage": dict(storage),
        "sha256": list(sha256),
        "createdAt": timestamp(),
    }
    for key in ("name", "schemaRef", "schemaCid"):
        if isinstance(original.get(key), str):
            record[key] = original[key]
    return record


def check_mirror(original: Record, mirror: Mapping[str, Any], uri: str = "") -> list[str]:
    """The mirror's shard locations if it is a valid copy of this version of ``original``.

    Valid: it names ``original``'s URI and CID, its ``sha256`` equals the original's
    digests, and blob copies' CIDs commit to the same digests. Else :class:`MirrorError`.
    """
    subject = mirror.get("subject") or {}
    if subject.get("uri") != original.uri:
        raise MirrorError(f"{uri}: mirrors {subject.get('uri')}, not {original.uri}")
    if original.cid and subject.get("cid") != original.cid:
        raise MirrorError(
            f"{uri}: copies version {subject.get('cid')} of {original.uri}, "
            f"not the version read ({original.cid})"
        )
    expected = record_digests(original, original.uri)
    if [str(d).lower() for d in mirror.get("sha256") or []] != expected:
        raise MirrorError(f"{uri}: its SHA-256 digests differ from the original's")
    if (mirror.get("storage") or {}).get("$type") == BLOBS_STORAGE:
        if record_digests(mirror, uri) != expected:
            raise MirrorError(f"{uri}: its blobs' CIDs differ from the original's digests")
    did = AtUri.parse(uri).authority if uri else ""
    locations = _locations(mirror, did)
    if len(locations) != len(expected):
        raise MirrorError(f"{uri}: {len(locations)} shards, the original has {len(expected)}")
    return locations


# --------------------------------------------------------------------------- finding mirrors


def find_mirror(client: AtmosphereClient, original: Record) -> Record | None:
    """Our mirror record of this version of ``original``, if we made one."""
    for record in iter_records(client, MIRROR_COLLECTION):
        subject = record.get("subject") or {}
        if subject.get("uri") == original.uri and subject.get("cid") == original.cid:
            return record
    return None


def list_mirrors(view: AppViewClient, uri: str) -> list[Record]:
    """The mirror records an AppView knows for the dataset at ``uri`` (``listMirrors``).

    Each record carries the AppView's ``original`` flag (``current``, ``changed``,
    ``deleted``) under ``"originalStatus"``.
    """
    data = view.query("listMirrors", {"uri": str(uri), "limit": 100})
    out = []
    for row in data.get("mirrors") or []:
        value = {k: v for k, v in row.items() if k not in ("uri", "cid", "did", "handle")}
        out.append(Record(value, uri=str(row["uri"]), cid=row.get("cid")))
    return out


def valid_mirrors(original: Record, mirrors: Sequence[Record]) -> list[tuple[Record, list[str]]]:
    """The mirrors that are valid copies of ``original``, with their locations; others logged."""
    out = []
    seen: set[str] = set()
    for mirror in mirrors:
        if mirror.uri in seen:
            continue
        seen.add(mirror.uri)
        try:
            out.append((mirror, check_mirror(original, mirror, mirror.uri)))
        except (MirrorError, AttributeError, KeyError, TypeError, ValueError) as exc:
            log.warning("mirror %s ignored: %s", mirror.uri, exc)
    return out


# --------------------------------------------------------------------------- reading


class _Opener:
    """Opens a location: ``at://`` blobs on their owner's PDS, anything else with ``open_url``.

    Picklable (DataLoader workers): connections are made in each process.
    """

    def __init__(
        self, blob_ids: Sequence[str], plc_url: str | None, timeout: float, policy: ReadPolicy
    ) -> None:
        self.blobs = BlobSource(list(blob_ids), plc_url=plc_url, verify=False, timeout=timeout)
        self.timeout = timeout
        self.policy = policy
        self._local = threading.local()

    def __getstate__(self) -> dict[str, Any]:
        return {"blobs": self.blobs, "timeout": self.timeout, "policy": self.policy}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def __call__(self, location: str) -> IO[bytes]:
        if not is_blob_url(location):
            return open_url(location, policy=self.policy)  # a location from someone's record
        blob = BlobUrl.parse(location)
        try:
            pds = self.blobs.pds_for(blob.did)
        except LookupError as exc:
            raise AtdataError(f"cannot find the PDS of {blob.did}: {exc}") from None
        http = getattr(self._local, "http", None)
        if http is None or getattr(self._local, "pid", None) != os.getpid():
            http = self._local.http = checked_http_client(self.policy, timeout=self.timeout)
            self._local.pid = os.getpid()
        self.policy.check(pds)  # the PDS a DID document names is someone else's address too
        # One retry: the next location is the better retry when a host is down.
        return open_blob(http, pds, blob.did, blob.cid, verify=False, policy=RetryPolicy(1))


def shard_locations(original: Record, mirrors: Sequence[Record] = ()) -> list[ShardLocations]:
    """Every shard of ``original`` with its locations: the original's, then each valid mirror's."""
    did = AtUri.parse(original.uri).authority
    digests = record_digests(original, original.uri)
    own = _locations(original, did)
    sizes = _sizes(original, len(own))
    copies = [locs for _, locs in valid_mirrors(original, mirrors)]
    return [
        ShardLocations(own[i], digests[i], (own[i], *(c[i] for c in copies)), sizes[i])
        for i in range(len(own))
    ]


def mirrored_source(
    original: Record,
    mirrors: Sequence[Record] = (),
    *,
    plc_url: str | None = None,
    timeout: float = 60.0,
    policy: ReadPolicy | None = None,
) -> MirroredSource:
    """A :class:`~atdata.MirroredSource` over ``original``'s shards and its valid mirrors.

    Every location is opened under ``policy`` (default: the reader's URL policy,
    see ``docs/reference/security.md``): mirror records are strangers' data.
    """
    shards = shard_locations(original, mirrors)
    blob_ids = sorted({loc for s in shards for loc in s.locations if is_blob_url(loc)})
    plc = plc_url or os.environ.get("ATDATA_PLC_URL") or None
    opener = _Opener(blob_ids, plc, timeout, policy or ReadPolicy.make())
    return MirroredSource(shards, opener=opener)


def _read_original(uri: str, index: Any, view: AppViewClient | None) -> tuple[Record, Any]:
    """The original record from its PDS, or from the AppView when the PDS cannot answer."""
    from atdata.atmosphere.client import RecordNotFoundError
    from atdata.atmosphere.resolve import reader_index

    idx = reader_index(index)
    try:
        return fetch_record(idx.client, uri, DATASET_COLLECTION), idx
    except (RecordNotFoundError, InvalidRecordError):
        raise
    except AtdataError as exc:
        if view is None:
            raise
        log.warning("%s: the publisher's PDS cannot answer (%s); asking the AppView", uri, exc)
    entry = view.get_dataset(uri)
    return Record(dict(entry.record), uri=entry.uri, cid=entry.cid), idx


def _mirror_records(client: AtmosphereClient, refs: Sequence[str | Record]) -> list[Record]:
    out = []
    for ref in refs:
        out.append(ref if isinstance(ref, Record) else fetch_record(client, ref, MIRROR_COLLECTION))
    return out


def open_mirrored(
    uri: str,
    sample_type: type | None = None,
    *,
    mirrors: Sequence[str | Record] = (),
    index: Any = None,
    appview: AppViewClient | str | None = None,
    allow_private_urls: bool | None = None,
    **options: Any,
) -> Dataset[Any]:
    """A typed dataset over the record at ``uri``, each shard read from its first valid location.

    Locations: the original's, then ``mirrors`` (mirror record AT-URIs or records),
    then the mirrors the AppView (``appview``, default ``$ATDATA_APPVIEW_URL``) knows.
    When the publisher's PDS is down the record and schema come from the AppView.
    Locations follow the reader's URL policy (``allow_private_urls``, default
    ``$ATDATA_ALLOW_PRIVATE_URLS``), as for any record.
    ``uri`` may also name a mirror record: its copy is read alone, as the version it pins.
    """
    from atdata.atmosphere.appview import AppViewClient, AppViewError, default_appview_url

    view: AppViewClient | None
    if isinstance(appview, str) or (appview is None and default_appview_url()):
        view = AppViewClient(appview if isinstance(appview, str) else None)
    else:
        view = appview
    if AtUri.parse(uri).collection == MIRROR_COLLECTION:
        return _open_copy(uri, sample_type, index, view, allow_private_urls, **options)
    original, idx = _read_original(uri, index, view)
    storage_type(original, original.uri)
    known = _mirror_records(idx.client, mirrors)
    if view is not None:
        try:
            known += list_mirrors(view, original.uri)
        except AppViewError as exc:
            log.warning("%s: cannot list mirrors at the AppView (%s)", original.uri, exc)
    if sample_type is None:
        sample_type = _sample_type(original, idx, view)
    try:
        record_digests(original, original.uri)
    except MirrorError:
        if known:
            raise
        from atdata.atmosphere.datasets import open_record

        return open_record(  # nothing to check
            idx.client, original, sample_type, allow_private_urls=allow_private_urls, **options
        )
    policy = ReadPolicy.make(allow_private_urls, trusted=idx.client.own_pds_urls)
    source = mirrored_source(
        original, known, plc_url=getattr(idx.client, "plc_url", None), policy=policy
    )
    return Dataset[sample_type](source, **options)  # type: ignore[valid-type]


def _open_copy(
    uri: str,
    sample_type: type | None,
    index: Any,
    view: AppViewClient | None,
    allow_private_urls: bool | None,
    **options: Any,
) -> Dataset[Any]:
    """The shards of one mirror record alone, checked against its digests (the version it pins).

    Readers of a version the original no longer has read it this way.
    """
    from atdata.atmosphere.resolve import reader_index

    idx = reader_index(index)
    copy = fetch_record(idx.client, uri, MIRROR_COLLECTION)
    digests = [str(d).lower() for d in copy["sha256"]]
    if copy["storage"].get("$type") == BLOBS_STORAGE and record_digests(copy, uri) != digests:
        raise MirrorError(f"{uri}: its blobs' CIDs differ from its SHA-256 digests")
    locations = _locations(copy, AtUri.parse(uri).authority)
    if len(locations) != len(digests):
        raise MirrorError(f"{uri}: {len(locations)} shards for {len(digests)} digests")
    if sample_type is None:
        if not isinstance(copy.get("schemaRef"), str):
            raise MirrorError(f"{uri}: the mirror names no schemaRef; pass sample_type")
        sample_type = _sample_type(copy, idx, view)
    sizes = _sizes(copy, len(locations))
    shards = [
        ShardLocations(loc, digest, (loc,), size)
        for loc, digest, size in zip(locations, digests, sizes)
    ]
    blob_ids = [loc for loc in locations if is_blob_url(loc)]
    plc = getattr(idx.client, "plc_url", None) or os.environ.get("ATDATA_PLC_URL") or None
    policy = ReadPolicy.make(allow_private_urls, trusted=idx.client.own_pds_urls)
    source = MirroredSource(shards, opener=_Opener(blob_ids, plc, 60.0, policy))
    return Dataset[sample_type](source, **options)  # type: ignore[valid-type]


def _sample_type(original: Record, idx: Any, view: AppViewClient | None) -> type:
    from atdata.atmosphere.schema import record_to_type

    ref = original["schemaRef"]
    try:
        return idx.decode_schema(ref)  # type: ignore[no-any-return]
    except AtdataError as exc:
        if view is None:
            raise
        log.warning("%s: schema not readable from its PDS (%s); asking the AppView", ref, exc)
    return record_to_type(view.get_schema(ref), uri=ref)


# --------------------------------------------------------------------------- making mirrors


def _resolve_ref(client: AtmosphereClient, ref: str | Record) -> Record:
    if isinstance(ref, Record):
        return ref
    if ref.startswith("@"):
        from atdata.atmosphere.datasets import DatasetLoader
        from atdata.atmosphere.records import newest

        authority, _, name = ref[1:].partition("/")
        did = client.resolve_did(authority)
        found = newest(r for r in DatasetLoader(client).iter_all(repo=did) if r.get("name") == name)
        if found is None:
            raise MirrorError(f"{ref}: no dataset of that name")
        return found
    return fetch_record(client, ref, DATASET_COLLECTION)


def mirror_dataset(
    ref: str | Record,
    client: AtmosphereClient,
    *,
    data_store: Any = None,
    prefix: str | None = None,
    mirrors: Sequence[str | Record] = (),
    on_shard: Callable[[str], None] | None = None,
) -> Record:
    """Copy every shard of a published dataset and publish a mirror record for it.

    ``ref`` is the dataset's AT-URI (or ``@handle/name``, or its record). Shards go
    to ``client``'s PDS as blobs, or with ``data_store`` (an S3 data store) under
    ``prefix``. Every shard is streamed from its first valid location and checked
    against the original record's SHA-256 before anything is copied or published;
    a failure removes what was copied (:class:`MirrorError` lists what could not be
    removed). Idempotent: when we already mirror this version, that record is returned.
    ``on_shard(shard_id)`` is called after each shard is copied (progress bars).

    Example::

        rec = mirror_dataset("at://did:plc:alice/ac.foundation.dataset.record/3k...", client)
    """
    original = _resolve_ref(client, ref)
    storage_type(original, original.uri)
    existing = find_mirror(client, original)
    if existing is not None:
        log.info("%s: already mirrored as %s", original.uri, existing.uri)
        return existing
    digests = record_digests(original, original.uri)
    source = mirrored_source(
        original,
        _mirror_records(client, mirrors),
        plc_url=getattr(client, "plc_url", None),
        policy=ReadPolicy.make(trusted=client.own_pds_urls),
    )
    if data_store is None:
        storage = _copy_to_blobs(client, source, digests, on_shard)
        copied: list[str] = []
    else:
        storage, copied = _copy_to_store(data_store, source, digests, original, prefix, on_shard)
    record = mirror_record(original, storage, digests)
    try:
        uri = client.create_record(MIRROR_COLLECTION, record)
    except BaseException as exc:
        _remove(data_store, copied, f"{original.uri}: publishing the mirror record failed ({exc})")
        raise
    return Record(record, uri=str(uri), cid=uri.cid)


def _copy_to_blobs(
    client: AtmosphereClient,
    source: MirroredSource,
    digests: list[str],
    on_shard: Callable[[str], None] | None,
) -> dict[str, Any]:
    refs = []
    for shard_id, digest in zip(source.list_shards(), digests):
        with source.open_shard(shard_id) as spool:  # verified before it is uploaded
            ref = client.upload_blob(spool)
        if blob_digest(ref["ref"]["$link"]).hex() != digest:
            raise MirrorError(f"{redact_url(shard_id)}: the PDS stored other bytes")
        refs.append(ref)
        if on_shard is not None:
            on_shard(shard_id)
    # Unreferenced blobs are collected by the PDS: a failure before the record leaves nothing.
    return {"$type": BLOBS_STORAGE, "blobs": refs}


def _copy_to_store(
    store: Any,
    source: MirroredSource,
    digests: list[str],
    original: Record,
    prefix: str | None,
    on_shard: Callable[[str], None] | None,
) -> tuple[dict[str, Any], list[str]]:
    at = AtUri.parse(original.uri)
    where = prefix or f"mirrors/{at.authority.replace(':', '-')}/{at.rkey}"
    copied: list[str] = []
    try:
        for shard_id, digest in zip(source.list_shards(), digests):
            one = MirroredSource([source.shards[shard_id]], opener=source.opener)
            infos = store.copy_shards(Dataset(one, cache=False), prefix=where)
            copied.extend(i.url for i in infos)
            if [i.sha256 for i in infos] != [digest]:
                raise MirrorError(f"{redact_url(shard_id)}: the copy differs from the original")
            if on_shard is not None:
                on_shard(shard_id)
    except BaseException as exc:
        _remove(store, copied, f"{original.uri}: copying failed ({exc})")
        raise
    return {"$type": EXTERNAL_STORAGE, "urls": copied, "sha256": list(digests)}, copied


def _remove(store: Any, urls: list[str], why: str) -> None:
    """Delete copied objects after a failure; a :class:`MirrorError` naming them if that fails."""
    if not urls or store is None:
        return
    try:
        store.delete(urls)
    except Exception as exc:
        raise MirrorError(f"{why}; removing the copies failed ({exc})", orphans=urls) from None
