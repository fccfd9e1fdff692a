"""``AtmosphereIndex``: the federated index, the same :class:`~atdata.AbstractIndex` as the team one.

Schemas and datasets are records in the client's repository. With a
:class:`PDSBlobStore` as ``data_store``, ``insert_dataset`` uploads the shards as
blobs (every blob first, then one record that references them all); without one,
it publishes the dataset's own shard URLs (or those of its copies in an S3 or disk
store). URLs carrying a credential are refused; URLs others likely cannot read
(local paths, loopback or private hosts) are published with a
:class:`~atdata.errors.PrivateURLWarning`, or refused with
``require_public_urls=True``, before anything is copied.

Reading follows the reader's URL policy (see ``docs/reference/security.md``):
a record's URLs must name public hosts unless ``allow_private_urls=True`` or
``ATDATA_ALLOW_PRIVATE_URLS=1``.

Example::

    index = AtmosphereIndex(client, data_store=PDSBlobStore(client))
    schema_uri = index.publish_schema(FeatureSample, version="1.0.0")
    entry = index.insert_dataset(dataset, name="features", schema_ref=schema_uri)
    ds = index.dataset_for(entry)            # Dataset[FeatureSample] over the blobs
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from atdata._storage import AbstractDataStore, ShardInfo
from atdata._urls import check_publishable, is_aws_endpoint, private_urls_allowed
from atdata.atmosphere.blob_store import PDSBlobStore
from atdata.atmosphere.datasets import (
    DatasetLoader,
    DatasetPublisher,
    blob_shard_urls,
    decode_metadata,
    open_record,
    storage_type,
)
from atdata.atmosphere.records import (
    DATASET_COLLECTION,
    Record,
    iter_records,
    newest,
)
from atdata.atmosphere.schema import SchemaLoader, SchemaPublisher, record_to_type
from atdata.atmosphere.uri import AtUri
from atdata.dataset import Dataset
from atdata.dict_sample import DictSample
from atdata.sources import expand_urls, local_path

if TYPE_CHECKING:
    from atdata.atmosphere.client import AtmosphereClient

__all__ = ["AtmosphereIndex", "AtmosphereIndexEntry", "store_endpoint"]


def file_uri(url: str) -> str:
    """A local path as an absolute ``file://`` URL (records hold URIs); other URLs as they are."""
    path = local_path(url)
    if path is None or url.startswith("file://"):
        return url
    return "file://" + str(path.resolve())


def store_endpoint(store: Any, urls: Sequence[str]) -> str | None:
    """The S3 endpoint a record must carry for ``urls`` of ``store`` (None for AWS or non-S3)."""
    endpoint = getattr(store, "endpoint", None)
    if not isinstance(endpoint, str) or is_aws_endpoint(endpoint):
        return None
    owns = getattr(store, "owns", None)
    if not any(u.startswith("s3://") and (owns is None or owns(u)) for u in urls):
        return None
    return endpoint


@dataclass(frozen=True)
class AtmosphereIndexEntry:
    """A dataset record, as an :class:`~atdata.IndexEntry`.

    ``data_urls`` lists every shard: the recorded URLs (brace patterns kept) for
    external storage, ``at://{did}/blob/{cid}`` shard ids for blob storage.

    Example::

        entry = index.get_dataset("at://did:plc:abc/ac.foundation.dataset.record/3k...")
        print(entry.name, entry.schema_ref, entry.data_urls, entry.metadata)
    """

    uri: str
    cid: str | None
    record: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_record(cls, record: Record) -> AtmosphereIndexEntry:
        """From a checked dataset :class:`~atdata.atmosphere.records.Record`."""
        storage_type(record, record.uri)  # an unknown storage kind fails here, naming the URI
        return cls(record.uri, record.cid, record)

    @property
    def name(self) -> str:
        """The dataset's name."""
        return str(self.record["name"])

    @property
    def schema_ref(self) -> str:
        """AT-URI of the sample schema."""
        return str(self.record["schemaRef"])

    @property
    def did(self) -> str:
        """The DID of the repository holding the record."""
        return AtUri.parse(self.uri).authority

    @property
    def storage_type(self) -> str:
        """``"external"`` or ``"blobs"``."""
        return storage_type(self.record, self.uri)

    @property
    def data_urls(self) -> list[str]:
        """Every shard: URLs as recorded, or ``at://{did}/blob/{cid}`` ids."""
        if self.storage_type == "blobs":
            return blob_shard_urls(self.record, self.did)
        return list(self.record["storage"]["urls"])

    @property
    def shards(self) -> tuple[ShardInfo, ...]:
        """Per-shard URL, size and SHA-256 where recorded (brace patterns expanded)."""
        storage = self.record["storage"]
        if self.storage_type == "blobs":
            return tuple(
                ShardInfo(url, int(blob["size"]), None)
                for url, blob in zip(self.data_urls, storage["blobs"])
            )
        urls = expand_urls(storage["urls"])
        digests = storage.get("sha256") or [None] * len(urls)
        return tuple(ShardInfo(u, None, d) for u, d in zip(urls, digests))

    @property
    def metadata(self) -> dict[str, Any] | None:
        """The msgpack-decoded metadata dict, or None (decoded once)."""
        return self._metadata

    @cached_property
    def _metadata(self) -> dict[str, Any] | None:
        # a property in front: type checkers match a cached_property to no protocol property
        return decode_metadata(self.record, self.uri)

    @property
    def description(self) -> str | None:
        """The description, if any."""
        return self.record.get("description")

    @property
    def tags(self) -> list[str]:
        """The tags (empty if none)."""
        return list(self.record.get("tags", []))

    @property
    def license(self) -> str | None:
        """SPDX id or URL of the license, if any."""
        return self.record.get("license")

    @property
    def size(self) -> dict[str, int]:
        """``{"samples", "bytes", "shards"}`` as far as recorded."""
        return dict(self.record.get("size", {}))

    @property
    def created_at(self) -> str:
        """``createdAt`` of the record."""
        return str(self.record.get("createdAt", ""))


class AtmosphereIndex:
    """Datasets and schemas published as records in ``client``'s repository.

    ``data_store``: a :class:`PDSBlobStore` stores shards as blobs; another
    :class:`~atdata.AbstractDataStore` (S3, disk) copies them there and publishes
    its URLs; None publishes the dataset's own URLs. URLs others likely cannot
    read are published with a :class:`~atdata.errors.PrivateURLWarning`, or
    refused before anything is copied when ``require_public_urls`` is set here
    or on the call. Reading (``get_*``, ``list_*`` with ``repo=``,
    ``dataset_for``) works for any account; a record's shard URLs must name
    public hosts unless ``allow_private_urls`` (default:
    ``$ATDATA_ALLOW_PRIVATE_URLS``).

    Example::

        index = AtmosphereIndex(client, data_store=PDSBlobStore(client))
        schema_uri = index.publish_schema(FeatureSample, version="1.0.0")
        entry = index.insert_dataset(dataset, name="features", schema_ref=schema_uri)
        ds = index.dataset_for(entry)
    """

    def __init__(
        self,
        client: AtmosphereClient,
        *,
        data_store: AbstractDataStore | None = None,
        allow_private_urls: bool | None = None,
        require_public_urls: bool = False,
    ) -> None:
        self.client = client
        self._data_store = data_store
        self.allow_private_urls: bool = private_urls_allowed(allow_private_urls)
        self.require_public_urls = require_public_urls
        self._schemas = SchemaLoader(client)
        self._datasets = DatasetLoader(client)
        self._publisher = DatasetPublisher(
            client, blob_store=data_store if isinstance(data_store, PDSBlobStore) else None
        )
        self._published: dict[str, AtUri] = {}  # schema URIs with CIDs, from publish_schema

    def __repr__(self) -> str:
        return f"AtmosphereIndex({self.client!r}, {self._data_store!r})"

    @property
    def data_store(self) -> AbstractDataStore | None:
        """Where :meth:`insert_dataset` puts shards (None: they stay where they are)."""
        return self._data_store

    # ---------------------------------------------------------------- schemas

    def publish_schema(
        self,
        sample_type: type,
        *,
        version: str | None = None,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        """Publish ``sample_type`` as a schema record; return its AT-URI.

        If our repository already holds a schema with this type's identity,
        version and fields, that one is returned instead of publishing a copy.
        Without ``version``: our latest schema of the type if its fields are the
        same, else the next patch version (``1.0.0`` first).
        """
        publisher = SchemaPublisher(self.client)
        if version is None:
            uri = publisher.publish(sample_type, description=description, metadata=metadata)
        else:
            uri = publisher.find_or_publish(
                sample_type, version=version, description=description, metadata=metadata
            )
        self._published[str(uri)] = uri
        return str(uri)

    def get_schema(self, ref: str) -> Record:
        """The schema record at AT-URI ``ref`` (any account's), lexicon-checked."""
        return self._schemas.get(ref)

    @property
    def schemas(self) -> Iterator[Record]:
        """Every schema record of our repository, newest first."""
        return self._schemas.iter_all()

    def list_schemas(self, repo: str | None = None) -> list[Record]:
        """Every schema record of ``repo`` (default: ours)."""
        return self._schemas.list_all(repo=repo)

    def decode_schema(self, ref: str) -> type:
        """The sample type described by the schema at ``ref``, rebuilt from the record alone."""
        record = self.get_schema(ref)
        return record_to_type(record, uri=record.uri)

    # ---------------------------------------------------------------- datasets

    def insert_dataset(
        self,
        dataset: Dataset[Any],
        *,
        name: str,
        schema_ref: str | AtUri | None = None,
        description: str | None = None,
        tags: Sequence[str] | None = None,
        license: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        prefix: str | None = None,
        require_public_urls: bool | None = None,
    ) -> AtmosphereIndexEntry:
        """Publish ``dataset`` (every shard) as a dataset record; return its entry.

        Without ``schema_ref`` the dataset's sample type is published (or our
        identical schema reused). ``prefix`` is the folder for a non-blob data store.
        URLs with credentials, and with ``require_public_urls`` URLs others likely
        cannot read, are refused before anything is copied or published.
        """
        require = self.require_public_urls if require_public_urls is None else require_public_urls
        fields: dict[str, Any] = {
            "name": name,
            "description": description,
            "tags": tags,
            "license": license,
            "metadata": metadata,
        }
        store = self._data_store
        folder = prefix or name
        self.check_urls(dataset, name=name, prefix=prefix, require_public_urls=require)
        if schema_ref is None:
            sample_type = getattr(dataset, "sample_type", DictSample)
            if sample_type is DictSample:
                raise ValueError("pass schema_ref=..., or a typed Dataset[T] to publish its schema")
            schema_ref = self.publish_schema(sample_type)
        schema = self._published.get(str(schema_ref), schema_ref)
        if isinstance(store, PDSBlobStore):
            record = self._publisher.publish_record(dataset, schema_uri=schema, **fields)
        else:
            urls, digests = self._store_urls(dataset, folder)
            try:
                urls = [file_uri(u) for u in urls]  # a local path goes into a record as file://
                record = self._publisher.publish_record(
                    urls,
                    storage="external",
                    schema_uri=schema,
                    sha256=digests,
                    endpoint=store_endpoint(store, urls),
                    require_public_urls=require,
                    **fields,
                )
            except BaseException as exc:  # no record: remove the copies made for it
                if store is not None:
                    store.remove_after(exc, urls)
                raise
        return AtmosphereIndexEntry.from_record(record)

    def check_urls(
        self,
        dataset: Dataset[Any],
        *,
        name: str,
        prefix: str | None = None,
        require_public_urls: bool | None = None,
    ) -> None:
        """Refuse now what :meth:`insert_dataset` would refuse about ``dataset``'s URLs.

        Call it before publishing anything else for the dataset (its schema, say),
        so a refusal leaves nothing behind. Blob stores publish no URLs: nothing to check.
        """
        require = self.require_public_urls if require_public_urls is None else require_public_urls
        store = self._data_store
        if isinstance(store, PDSBlobStore):
            return
        planned = self._planned_urls(dataset, prefix or name)
        if planned is not None:
            check_publishable(
                planned, endpoint=store_endpoint(store, planned), require_public=require, warn=False
            )

    def _planned_urls(self, dataset: Dataset[Any], prefix: str) -> list[str] | None:
        """The URLs a record will hold, known before copying (None: a store that cannot say)."""
        store = self._data_store
        if store is None:
            return [file_uri(u) for u in dataset.list_shards()]
        planned = store.planned_url(prefix)
        return [file_uri(planned)] if planned is not None else None

    def _store_urls(self, dataset: Dataset[Any], prefix: str) -> tuple[list[str], list[str] | None]:
        """The shard URLs to publish (copied to the data store, if any) and their SHA-256."""
        store = self._data_store
        if store is not None:
            copied = store.copy_shards(dataset, prefix=prefix)
            return [s.url for s in copied], [s.sha256 for s in copied if s.sha256] or None
        return dataset.list_shards(), None

    def get_dataset(self, ref: str | AtUri) -> AtmosphereIndexEntry:
        """The dataset at AT-URI ``ref`` (any account's), or our newest one named ``ref``."""
        text = str(ref)
        if text.startswith("at://"):
            return AtmosphereIndexEntry.from_record(self._datasets.get(text))
        return self.find_dataset(text)

    def find_dataset(self, name: str, *, repo: str | None = None) -> AtmosphereIndexEntry:
        """The newest dataset named ``name`` in ``repo`` (default: ours); ``KeyError`` if none."""
        found = newest(
            r for r in iter_records(self.client, DATASET_COLLECTION, repo=repo) if r["name"] == name
        )
        if found is None:
            where = repo if repo is not None else self.client.did
            raise KeyError(f"no dataset named {name!r} in {where}")
        return AtmosphereIndexEntry.from_record(found)

    @property
    def datasets(self) -> Iterator[AtmosphereIndexEntry]:
        """Every dataset record of our repository, newest first."""
        return self._iter_datasets(None)

    def _iter_datasets(self, repo: str | None) -> Iterator[AtmosphereIndexEntry]:
        for record in self._datasets.iter_all(repo=repo):
            yield AtmosphereIndexEntry.from_record(record)

    def list_datasets(self, repo: str | None = None) -> list[AtmosphereIndexEntry]:
        """Every dataset of ``repo`` (default: ours), with its URI."""
        return list(self._iter_datasets(repo))

    def dataset_for(
        self,
        ref: str | AtUri | AtmosphereIndexEntry,
        sample_type: type | None = None,
        *,
        allow_private_urls: bool | None = None,
        **options: Any,
    ) -> Dataset[Any]:
        """Open a dataset (entry, AT-URI or our dataset's name) as a typed ``Dataset``.

        Blob shards are streamed and checked against their CIDs; external shards
        with recorded SHA-256 are checked as they are read. The type is decoded
        from the schema record unless ``sample_type`` is given; ``options`` go
        to :class:`~atdata.Dataset` (``cache``, ``prefetch``, ``on_error``).
        The record's URLs must name public hosts unless ``allow_private_urls``
        (default: this index's setting).
        """
        entry = ref if isinstance(ref, AtmosphereIndexEntry) else self.get_dataset(ref)
        record = Record(entry.record, uri=entry.uri, cid=entry.cid)
        if sample_type is None:
            sample_type = self.decode_schema(entry.schema_ref)
        allow = self.allow_private_urls if allow_private_urls is None else allow_private_urls
        return open_record(self.client, record, sample_type, allow_private_urls=allow, **options)
