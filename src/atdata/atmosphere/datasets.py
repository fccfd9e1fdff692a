"""Dataset records (``ac.foundation.dataset.record``): publish them, list them, open them.

A dataset record names the dataset, points at its sample schema (``schemaRef``,
pinned by ``schemaCid``) and says where every shard is:

- ``storageExternal``: shard URLs (brace patterns allowed; every shard, never
  just the first), optionally with the SHA-256 of each shard;
- ``storageBlobs``: blob refs in the same repository, which also keeps the PDS
  from garbage-collecting them.

``metadata`` is a msgpack-encoded dict (``{"$bytes": ...}`` in JSON), ``size``
counts samples, bytes and shards. Records are checked against the lexicon
before anything is sent, and again when read.

Example::

    uri = DatasetPublisher(client).publish_with_urls(
        urls=["https://example.com/data-{000000..000009}.tar"],
        schema_uri=str(schema_uri), name="Demo", tags=["demo"], license="MIT")
    ds = DatasetLoader(client).to_dataset(uri, DemoSample)
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, TypedDict, TypeGuard, Unpack, cast

import msgpack

from atdata._storage import ShardInfo, VerifiedSource
from atdata._urls import ReadPolicy, check_publishable, is_aws_endpoint
from atdata.atmosphere._lexicon import to_record_json
from atdata.atmosphere.blob_store import PDSBlobStore, StoredBlob
from atdata.atmosphere.blobs import BlobSource
from atdata.atmosphere.records import (
    DATASET_COLLECTION,
    InvalidRecordError,
    Record,
    RecordLoader,
    timestamp,
)
from atdata.atmosphere.schema import SchemaLoader, SchemaPublisher
from atdata.atmosphere.uri import AtUri, BlobUrl
from atdata.dataset import Dataset, SourceLike, write_samples
from atdata.dict_sample import DictSample
from atdata.sample import PackableSample
from atdata.sources import S3Source, URLSource, expand_urls

if TYPE_CHECKING:
    from atdata.atmosphere.client import AtmosphereClient

__all__ = [
    "BLOBS_STORAGE",
    "EXTERNAL_STORAGE",
    "DatasetFields",
    "DatasetLoader",
    "DatasetPublisher",
    "StorageType",
    "blob_shard_urls",
    "dataset_record",
    "decode_metadata",
    "open_record",
    "storage_type",
]

EXTERNAL_STORAGE = "ac.foundation.dataset.storageExternal"
BLOBS_STORAGE = "ac.foundation.dataset.storageBlobs"
StorageType = Literal["external", "blobs"]


def dataset_record(
    *,
    name: str,
    schema_ref: str | AtUri,
    storage: Mapping[str, Any],
    schema_cid: str | None = None,
    description: str | None = None,
    tags: Sequence[str] | None = None,
    license: str | None = None,
    metadata: Mapping[str, Any] | bytes | None = None,
    size: Mapping[str, int] | None = None,
    splits: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """An ``ac.foundation.dataset.record`` (not sent); ``metadata`` is msgpack-encoded.

    >>> rec = dataset_record(name="d", schema_ref="at://did:plc:a/ac.foundation.dataset.sampleSchema/3k",
    ...     storage={"$type": EXTERNAL_STORAGE, "urls": ["https://x.org/d.tar"]}, metadata={"n": 1})
    >>> rec["metadata"]
    b'\\x81\\xa1n\\x01'
    """
    record: dict[str, Any] = {
        "$type": DATASET_COLLECTION,
        "name": name,
        "schemaRef": str(schema_ref),
        "storage": dict(storage),
        "createdAt": timestamp(),
    }
    if schema_cid is not None:
        record["schemaCid"] = schema_cid
    if description is not None:
        record["description"] = description
    if tags is not None:
        if isinstance(tags, str):
            raise TypeError("tags must be a list of strings, not a string")
        record["tags"] = list(tags)
    if license is not None:
        record["license"] = license
    if metadata is not None:
        record["metadata"] = (
            bytes(metadata)
            if isinstance(metadata, bytes | bytearray)
            else msgpack.packb(dict(metadata), use_bin_type=True)
        )
    if size:
        record["size"] = dict(size)
    if splits:
        record["splits"] = [dict(s) for s in splits]
    return record


def decode_metadata(record: Mapping[str, Any], uri: str = "") -> dict[str, Any] | None:
    """The msgpack-decoded ``metadata`` of a dataset record, or None when it has none."""
    raw = record.get("metadata")
    if raw is None:
        return None
    try:
        data = raw if isinstance(raw, bytes) else base64.b64decode(_padded(raw["$bytes"]))
        value = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (KeyError, TypeError, ValueError, msgpack.UnpackException) as exc:
        raise InvalidRecordError(
            f"{uri}: metadata is not msgpack bytes ({exc})", target=uri
        ) from None
    if not isinstance(value, dict):
        raise InvalidRecordError(f"{uri}: metadata is not a msgpack map", target=uri)
    return value


def _padded(text: str) -> str:
    return text + "=" * (-len(text) % 4)


def storage_type(record: Mapping[str, Any], uri: str = "") -> StorageType:
    """``"external"`` or ``"blobs"``, from the exact ``$type`` of ``record["storage"]``."""
    kind = record.get("storage", {}).get("$type")
    if kind == EXTERNAL_STORAGE:
        return "external"
    if kind == BLOBS_STORAGE:
        return "blobs"
    raise InvalidRecordError(f"{uri}: unknown storage type {kind!r}", target=uri)


def blob_shard_urls(record: Mapping[str, Any], did: str) -> list[str]:
    """The ``at://{did}/blob/{cid}`` shard ids of a blob-stored dataset record of ``did``."""
    return [str(BlobUrl(did, b["ref"]["$link"])) for b in record["storage"]["blobs"]]


class DatasetFields(TypedDict, total=False):
    """The optional fields of a dataset record, as keyword arguments of the ``publish`` methods."""

    description: str | None
    tags: Sequence[str] | None
    license: str | None
    metadata: Mapping[str, Any] | None
    splits: Sequence[Mapping[str, Any]] | None
    rkey: str | None
    sha256: Sequence[str] | None
    samples: int | None
    endpoint: str | None
    require_public_urls: bool


Shards = (
    Dataset[Any]
    | SourceLike
    | Sequence[PackableSample]
    | Sequence[StoredBlob]
    | Sequence[bytes | str | os.PathLike[str] | IO[bytes]]
)
"""What :meth:`DatasetPublisher.publish_record` publishes; see there."""


class DatasetPublisher:
    """Publish dataset records, with shards at external URLs or as blobs in our PDS.

    :meth:`publish_record` is the one write path, the storage an argument;
    :meth:`publish` (blobs) and :meth:`publish_with_urls` (external URLs) return
    the new record's URI, and :meth:`publish_many` batches external-URL records.

    Example::

        publisher = DatasetPublisher(client)
        uri = publisher.publish_with_urls(
            urls=["s3://example-bucket/demo-data-{000000..000009}.tar"],
            schema_uri=str(schema_uri), name="Demo Image Dataset", license="MIT")
        uri = publisher.publish(atdata.Dataset[FeatureSample]("temp.tar"), name="features")
    """

    client: AtmosphereClient
    blob_store: PDSBlobStore
    """Where blob-stored shards are uploaded (by default a :class:`PDSBlobStore` of ``client``)."""

    def __init__(self, client: AtmosphereClient, *, blob_store: PDSBlobStore | None = None) -> None:
        self.client = client
        self.blob_store = blob_store if blob_store is not None else PDSBlobStore(client)
        self._pins: dict[str, tuple[str, str | None]] = {}

    def _pin_schema(self, schema_uri: str | AtUri) -> tuple[str, str | None]:
        """``(uri, cid)`` of an existing schema record, read once (so a typo fails early)."""
        key = str(schema_uri)
        pin = self._pins.get(key)
        if pin is None:
            if isinstance(schema_uri, AtUri) and schema_uri.cid and schema_uri.did:
                pin = (key, schema_uri.cid)  # returned by a write: no need to read it back
            else:
                record = SchemaLoader(self.client).get(schema_uri)
                pin = (record.uri, record.cid)
            self._pins[key] = pin
        return pin

    def publish_record(
        self,
        shards: Shards,
        *,
        name: str,
        storage: StorageType = "blobs",
        schema_uri: str | AtUri | None = None,
        schema_version: str = "1.0.0",
        **fields: Unpack[DatasetFields],
    ) -> Record:
        """Publish a dataset record; return it as written (with its URI and CID).

        With ``storage="external"``, ``shards`` are URLs (every shard; brace patterns
        allowed) that stay where they are: ``sha256`` lists the hex digest of each
        shard in brace-expanded order, ``samples`` the total number of samples,
        ``endpoint`` the S3 endpoint of ``s3://`` URLs outside AWS. A URL carrying a
        credential raises :class:`~atdata.errors.CredentialURLError`; URLs others
        likely cannot read give a :class:`~atdata.errors.PrivateURLWarning`, or with
        ``require_public_urls`` a :class:`~atdata.errors.PrivateURLError`.

        With ``storage="blobs"`` (the default) the shards are uploaded as blobs to
        :attr:`blob_store` (split to fit the server's blob limit) and the record keeps
        them: ``shards`` is a :class:`~atdata.Dataset` (its shards are byte-copied), a
        path, URL or list of them, tar shards as bytes or binary files, a list of
        samples held in memory (written to blob-sized shards first), or blobs already
        uploaded (:class:`~atdata.atmosphere.blob_store.StoredBlob`). No record is
        written unless every blob arrived.

        Without ``schema_uri`` the sample type of a typed dataset or of the samples is
        published as ``schema_version``, or our identical schema is reused.
        """
        extra: dict[str, Any] = dict(fields)
        rkey = extra.pop("rkey", None)
        if storage == "external":
            if schema_uri is None:
                raise ValueError("pass schema_uri=...: external URLs carry no sample type")
            if not _is_url_list(shards):
                raise TypeError("storage='external' publishes shard URLs (strings)")
            schema = self._pin_schema(schema_uri)
            return self._create(self._external_record(shards, schema, name=name, **extra), rkey)
        if storage != "blobs":
            raise ValueError(f"storage is 'blobs' or 'external', not {storage!r}")
        external = ("sha256", "samples", "endpoint", "require_public_urls")
        external_only = sorted(k for k in external if k in extra)
        if external_only:
            raise TypeError(f"{', '.join(external_only)}: only for storage='external'")
        if _is_sample_list(shards):
            if schema_uri is None:
                schema_uri = SchemaPublisher(self.client).find_or_publish(
                    type(shards[0]), version=schema_version
                )
            with tempfile.TemporaryDirectory(prefix="atdata-publish-") as tmp:
                written = write_samples(
                    shards,
                    Path(tmp) / "data.tar",
                    maxsize=self.blob_store.blob_limit,
                )
                return self.publish_record(
                    written,
                    name=name,
                    schema_uri=schema_uri,
                    schema_version=schema_version,
                    rkey=rkey,
                    **extra,
                )
        if schema_uri is None:
            sample_type = getattr(shards, "sample_type", DictSample)
            if sample_type is DictSample:
                raise ValueError("pass schema_uri=..., or a typed Dataset[T] to publish its schema")
            schema_uri = SchemaPublisher(self.client).find_or_publish(
                sample_type, version=schema_version
            )
        schema = self._pin_schema(schema_uri)  # fail before uploading anything
        if _is_stored_blobs(shards):
            return self._blob_record(shards, schema, rkey, name=name, **extra)
        if self.blob_store.client.did != self.client.did:
            raise ValueError(
                f"the blob store uploads to {self.blob_store.client.did}, but the record would go "
                f"to {self.client.did}: a record keeps only its own repository's blobs"
            )
        if _is_raw_blobs(shards):
            with tempfile.TemporaryDirectory(prefix="atdata-publish-") as tmp:
                paths = [_as_path(b, Path(tmp) / f"blob-{i:06d}.tar") for i, b in enumerate(shards)]
                stored = self.blob_store.upload_shards(paths)
        else:
            stored = self.blob_store.upload_shards(cast("Dataset[Any] | SourceLike", shards))
        return self._blob_record(stored, schema, rkey, name=name, **extra)

    def publish(
        self,
        shards: Shards,
        *,
        name: str,
        schema_uri: str | AtUri | None = None,
        schema_version: str = "1.0.0",
        **fields: Unpack[DatasetFields],
    ) -> AtUri:
        """Publish a dataset with its shards stored as blobs in our PDS; return its URI.

        ``shards`` and the keywords are those of :meth:`publish_record`.

        Example::

            uri = publisher.publish(atdata.Dataset[Point]("data-{000..009}.tar"), name="points")
        """
        return self.publish_record(
            shards, name=name, schema_uri=schema_uri, schema_version=schema_version, **fields
        ).at_uri

    def publish_with_urls(
        self,
        urls: str | Sequence[str],
        schema_uri: str | AtUri,
        *,
        name: str,
        **fields: Unpack[DatasetFields],
    ) -> AtUri:
        """Publish a dataset whose shards stay at ``urls``; return its URI.

        The keywords are those of :meth:`publish_record` with ``storage="external"``.
        """
        return self.publish_record(
            urls, name=name, storage="external", schema_uri=schema_uri, **fields
        ).at_uri

    def publish_many(self, datasets: Iterable[Mapping[str, Any]]) -> list[AtUri]:
        """Publish many external-URL datasets with few requests (``applyWrites`` batches).

        Each item holds the keyword arguments of :meth:`publish_with_urls`
        (``urls``, ``schema_uri``, ``name``...). Every record is built and checked
        before the first is sent.

        Example::

            uris = publisher.publish_many(
                {"urls": [f"https://x.org/part-{i}.tar"], "schema_uri": s, "name": f"part-{i}"}
                for i in range(500))
        """
        writes = []
        for item in datasets:
            spec = dict(item)
            urls, schema = spec.pop("urls"), self._pin_schema(spec.pop("schema_uri"))
            rkey = spec.pop("rkey", None)
            writes.append((DATASET_COLLECTION, self._external_record(urls, schema, **spec), rkey))
        return self.client.apply_writes(writes)

    def _create(self, record: Mapping[str, Any], rkey: str | None) -> Record:
        """Write a dataset record (checked before sending); return it as stored."""
        uri = self.client.create_record(DATASET_COLLECTION, record, rkey=rkey)
        return Record(to_record_json(dict(record)), uri=str(uri), cid=uri.cid)

    @staticmethod
    def _external_record(
        urls: str | Sequence[str],
        schema: tuple[str, str | None],
        *,
        sha256: Sequence[str] | None = None,
        samples: int | None = None,
        endpoint: str | None = None,
        require_public_urls: bool = False,
        **fields: Any,
    ) -> dict[str, Any]:
        url_list = [urls] if isinstance(urls, str) else [str(u) for u in urls]
        if not url_list:
            raise ValueError("a dataset needs at least one shard URL")
        if is_aws_endpoint(endpoint) or not any(u.startswith("s3://") for u in url_list):
            endpoint = None  # AWS is every reader's default; other schemes need none
        check_publishable(
            url_list,
            endpoint=endpoint,
            require_public=require_public_urls,
        )
        shards = expand_urls(url_list)
        storage: dict[str, Any] = {"$type": EXTERNAL_STORAGE, "urls": url_list}
        if endpoint is not None:
            storage["endpoint"] = endpoint.rstrip("/")
        if sha256 is not None:
            if len(sha256) != len(shards):
                raise ValueError(
                    f"{len(sha256)} SHA-256 digests for {len(shards)} shards "
                    "(brace patterns expanded)"
                )
            storage["sha256"] = [s.lower() for s in sha256]
        size = {"shards": len(shards)}
        if samples is not None:
            size["samples"] = samples
        return dataset_record(
            schema_ref=schema[0], schema_cid=schema[1], storage=storage, size=size, **fields
        )

    def _blob_record(
        self,
        blobs: Sequence[StoredBlob],
        schema: tuple[str, str | None],
        rkey: str | None,
        **fields: Any,
    ) -> Record:
        if not blobs:
            raise ValueError("a blob-stored dataset needs at least one blob")
        did = self.client.did
        foreign = [b.url for b in blobs if BlobUrl.parse(b.url).did != did]
        if foreign:
            raise ValueError(
                f"{foreign[0]} is not in the repository of {did}: a record keeps only its own "
                "repository's blobs (use a PDSBlobStore of the same client)"
            )
        record = dataset_record(
            schema_ref=schema[0],
            schema_cid=schema[1],
            storage={"$type": BLOBS_STORAGE, "blobs": [b.ref for b in blobs]},
            size={
                "samples": sum(b.samples for b in blobs),
                "bytes": sum(b.size for b in blobs),
                "shards": len(blobs),
            },
            **fields,
        )
        # Checked (lexicon, size) before it is sent; every blob has arrived by now.
        return self._create(record, rkey)


def _is_url_list(value: Any) -> TypeGuard[str | Sequence[str]]:
    return isinstance(value, str) or (
        isinstance(value, Sequence) and all(isinstance(u, str) for u in value)
    )


def _is_stored_blobs(value: Any) -> TypeGuard[Sequence[StoredBlob]]:
    return (
        isinstance(value, Sequence)
        and len(value) > 0
        and all(isinstance(b, StoredBlob) for b in value)
    )


def _is_raw_blobs(value: Any) -> TypeGuard[Sequence[bytes | str | os.PathLike[str] | IO[bytes]]]:
    """Tar shards given as bytes or binary files (paths may be mixed in)."""
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and any(isinstance(b, bytes | bytearray | memoryview) or hasattr(b, "read") for b in value)
    )


def _is_sample_list(value: Any) -> TypeGuard[Sequence[PackableSample]]:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) > 0
        and all(isinstance(v, PackableSample) for v in value)
    )


def _as_path(blob: bytes | str | os.PathLike[str] | IO[bytes], spill: Path) -> str:
    """A file path holding ``blob``: a path as is, bytes or a file object copied to ``spill``."""
    if isinstance(blob, str | os.PathLike):
        return os.fspath(blob)
    with open(spill, "wb") as out:
        if isinstance(blob, bytes | bytearray | memoryview):
            out.write(blob)
        elif hasattr(blob, "read"):
            shutil.copyfileobj(blob, out, 1 << 20)
        else:
            raise TypeError(f"a blob is bytes, a path or a binary file, not {type(blob).__name__}")
    return str(spill)


class DatasetLoader(RecordLoader):
    """Read dataset records (ours or any account's) and open them as typed datasets.

    Example::

        loader = DatasetLoader(client)
        for rec in loader.list_all(limit=10):
            print(rec.uri, rec["name"], loader.get_storage_type(rec.uri))
        ds = loader.to_dataset(rec.uri, FeatureSample)
    """

    collection = DATASET_COLLECTION

    def __init__(self, client: AtmosphereClient, *, allow_private_urls: bool | None = None) -> None:
        super().__init__(client)
        self.allow_private_urls = allow_private_urls

    def get_storage_type(self, uri: str | AtUri) -> StorageType:
        """``"external"`` (URLs) or ``"blobs"`` (PDS blobs)."""
        record = self.get(uri)
        return storage_type(record, record.uri)

    def get_urls(self, uri: str | AtUri) -> list[str]:
        """The shard URLs of an external-storage dataset, as recorded (brace patterns kept)."""
        record = self.get(uri)
        if storage_type(record, record.uri) != "external":
            raise ValueError(f"{record.uri}: shards are stored as blobs; use get_blob_urls")
        return list(record["storage"]["urls"])

    def get_blobs(self, uri: str | AtUri) -> list[dict[str, Any]]:
        """The blob refs of a blob-storage dataset."""
        record = self.get(uri)
        if storage_type(record, record.uri) != "blobs":
            raise ValueError(f"{record.uri}: shards are at external URLs; use get_urls")
        return [dict(b) for b in record["storage"]["blobs"]]

    def get_blob_urls(self, uri: str | AtUri) -> list[str]:
        """HTTP ``getBlob`` URLs of a blob-storage dataset's shards (on the owner's PDS)."""
        record = self.get(uri)
        did = AtUri.parse(record.uri).authority
        return [
            self.client.get_blob_url(did, b["ref"]["$link"]) for b in self.get_blobs(record.uri)
        ]

    def get_metadata(self, uri: str | AtUri) -> dict[str, Any] | None:
        """The dataset's metadata dict (msgpack-decoded), or None."""
        record = self.get(uri)
        return decode_metadata(record, record.uri)

    def to_dataset(
        self, uri: str | AtUri, sample_type: type | None = None, **options: Any
    ) -> Dataset[Any]:
        """A :class:`~atdata.Dataset` over every shard (blobs streamed and CID-checked).

        ``sample_type`` defaults to the type decoded from the record's schema;
        ``options`` go to :class:`~atdata.Dataset`. The record's URLs must name
        public hosts unless ``allow_private_urls`` (given to the loader, or
        ``$ATDATA_ALLOW_PRIVATE_URLS``).
        """
        record = self.get(uri)
        return open_record(
            self.client,
            record,
            sample_type,
            allow_private_urls=self.allow_private_urls,
            **options,
        )


def _own_s3_endpoint() -> str | None:
    """The S3 endpoint this reader configured (``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT``)."""
    found = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT")
    return found.rstrip("/").lower() if found else None


def _external_source(record: Record, urls: list[str], policy: ReadPolicy) -> Any:
    """The source over a record's external URLs, under the reader's ``policy``.

    ``s3://`` URLs are read with the reader's own S3 settings; when the record
    names another endpoint, anonymously over HTTP from that (checked) endpoint.
    """
    endpoint = record["storage"].get("endpoint")
    if isinstance(endpoint, str) and endpoint.rstrip("/").lower() != _own_s3_endpoint():
        return URLSource(urls, policy=policy, s3_endpoint=endpoint)
    if all(u.startswith("s3://") for u in urls):
        return S3Source.from_urls(urls)
    return URLSource(urls, policy=policy)


def open_record(
    client: AtmosphereClient,
    record: Record,
    sample_type: type | None = None,
    *,
    allow_private_urls: bool | None = None,
    **options: Any,
) -> Dataset[Any]:
    """A typed :class:`~atdata.Dataset` over every shard of a checked dataset record.

    External shards with recorded SHA-256 are verified as they are read; blobs
    are verified against their CIDs. The record's URLs, and the PDS of its
    blobs, must name public hosts unless ``allow_private_urls`` (default:
    ``$ATDATA_ALLOW_PRIVATE_URLS``); the client's own PDS is trusted.
    """
    if sample_type is None:
        sample_type = SchemaLoader(client).decode(record["schemaRef"])
    policy = ReadPolicy.make(allow_private_urls, trusted=client.own_pds_urls)
    source: Any
    if storage_type(record, record.uri) == "blobs":
        did = AtUri.parse(record.uri).authority
        source = BlobSource(
            blob_shard_urls(record, client.resolve_did(did)), client=client, policy=policy
        )
    else:
        urls = expand_urls(record["storage"]["urls"])
        source = _external_source(record, urls, policy)
        digests = record["storage"].get("sha256")
        if digests and len(digests) == len(urls):
            source = VerifiedSource(
                source, {u: ShardInfo(u, None, d) for u, d in zip(urls, digests)}
            )
    return Dataset[sample_type](source, **options)  # type: ignore[valid-type]
