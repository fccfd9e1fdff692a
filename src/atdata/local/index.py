"""``Index``: a catalogue of typed datasets and their schemas, over SQLite, Redis or PostgreSQL.

Rules, the same on every provider:

- A dataset name is unique. Indexing a name that is taken raises
  :class:`EntryExistsError` unless ``overwrite=True``, which replaces the entry
  (its old shards are left in place); indexing identical content again is a
  no-op.
- ``name@version`` of a schema is immutable: publishing it again with the same
  fields is a no-op, with other fields a :class:`~atdata.SchemaError`.
- ``insert_dataset`` writes every shard, verifies it, and only then indexes:
  a failure leaves no entry, and removes the shards it wrote.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from atdata._storage import AbstractDataStore, VerifiedSource
from atdata._versions import FIRST_VERSION, latest_version, next_version
from atdata.cid import generate_cid
from atdata.dataset import Dataset, make_source
from atdata.dict_sample import DictSample
from atdata.errors import SchemaError
from atdata.local.entry import LocalDatasetEntry, check_name
from atdata.local.providers.base import EntryExistsError, IndexProvider
from atdata.local.providers.postgres import PostgresProvider
from atdata.local.providers.redis import RedisProvider
from atdata.local.providers.sqlite import SqliteProvider
from atdata.local.stores.base import DataStore
from atdata.local.stores.disk import LocalDiskStore
from atdata.schema import schema_record, schema_to_type
from atdata.sources import expand_urls

__all__ = ["Index", "LocalIndex", "atdata_home", "parse_schema_ref", "schema_ref"]

SCHEMA_REF_PREFIX = "atdata://local/sampleSchema/"
_LEGACY_PREFIX = "local://schemas/"
_PUBLISH_ATTEMPTS = 8
_VERSION_PARTS = re.compile(r"^(\d+)\.(\d+)\.(\d+)(-?)")


def atdata_home() -> Path:
    """``$ATDATA_HOME``, or ``~/.atdata``: where the default index and data store live."""
    return Path(os.environ.get("ATDATA_HOME") or Path.home() / ".atdata").expanduser()


def schema_ref(name: str, version: str) -> str:
    """``atdata://local/sampleSchema/{name}@{version}``."""
    return f"{SCHEMA_REF_PREFIX}{name}@{version}"


def parse_schema_ref(ref: str) -> tuple[str, str]:
    """``(name, version)`` of a local schema ref; the legacy ``local://schemas/mod.Class@v`` too.

    >>> parse_schema_ref("atdata://local/sampleSchema/Digit@1.0.0")
    ('Digit', '1.0.0')
    """
    for prefix in (SCHEMA_REF_PREFIX, _LEGACY_PREFIX):
        if isinstance(ref, str) and ref.startswith(prefix):
            name, sep, version = ref[len(prefix) :].rpartition("@")
            if sep and name and version:
                return name, version
    raise ValueError(
        f"{ref!r} is not a local schema reference like '{SCHEMA_REF_PREFIX}Name@1.0.0'"
    )


def _version_key(version: str) -> tuple[int, ...]:
    m = _VERSION_PARTS.match(version)
    if m is None:
        return (-1,)
    return (int(m[1]), int(m[2]), int(m[3]), 0 if m[4] else 1)


class Index:
    """Datasets and sample schemas, indexed in a provider; shards copied into a data store.

    - ``Index()``: SQLite at ``$ATDATA_HOME/index.db`` (default ``~/.atdata``);
    - ``Index(redis=Redis(...) or "redis://...", namespace="")``: Redis, seed-era keys;
    - ``Index(dsn="postgresql://...")``: PostgreSQL;
    - ``Index(provider)``: any :class:`IndexProvider`; ``Index(path=...)``: another SQLite file.

    ``data_store`` receives the shards of :meth:`insert_dataset`; by default a
    :class:`LocalDiskStore` at ``$ATDATA_HOME/data``.

    >>> import tempfile, atdata
    >>> @atdata.packable
    ... class Point:
    ...     x: int
    >>> root = tempfile.mkdtemp()
    >>> index = Index(path=f"{root}/index.db", data_store=LocalDiskStore(f"{root}/shards"))
    >>> index.publish_schema(Point, version="1.0.0")  # doctest: +ELLIPSIS
    'atdata://local/sampleSchema/...Point@1.0.0'
    >>> points = atdata.write_samples([Point(1), Point(2)], f"{root}/points.tar")
    >>> entry = index.insert_dataset(points, name="points-v1")
    >>> [p.x for p in index.dataset_for("points-v1").ordered()]  # typed, read with the store's credentials
    [1, 2]
    """

    def __init__(
        self,
        provider: IndexProvider | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        redis: Any = None,
        dsn: str | None = None,
        namespace: str = "",
        data_store: AbstractDataStore | None = None,
    ) -> None:
        given = [
            n
            for n, v in (("provider", provider), ("path", path), ("redis", redis), ("dsn", dsn))
            if v is not None
        ]
        if len(given) > 1:
            raise ValueError(f"pass one of provider, path, redis or dsn, not {' and '.join(given)}")
        if namespace and redis is None:
            raise ValueError("namespace applies to the Redis provider only")
        self.provider: IndexProvider
        if provider is not None:
            if not isinstance(provider, IndexProvider):
                raise TypeError(f"provider must be an IndexProvider, not {type(provider).__name__}")
            self.provider = provider
        elif redis is not None:
            self.provider = RedisProvider(redis, namespace=namespace)
        elif dsn is not None:
            self.provider = PostgresProvider(dsn)
        else:
            self.provider = SqliteProvider(path if path is not None else atdata_home() / "index.db")
        self._data_store = (
            data_store if data_store is not None else LocalDiskStore(atdata_home() / "data")
        )

    @property
    def data_store(self) -> AbstractDataStore:
        """Where :meth:`insert_dataset` copies shards."""
        return self._data_store

    def __repr__(self) -> str:
        return f"Index({self.provider.location}, {self._data_store!r})"

    def close(self) -> None:
        """Close the provider's connections."""
        self.provider.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- schemas

    def publish_schema(
        self, sample_type: type, *, version: str | None = None, description: str | None = None
    ) -> str:
        """Record ``sample_type`` as schema ``{Name}@{version}``; return its ``atdata://`` ref.

        Publishing the same fields again is a no-op; other fields under a
        published name and version raise :class:`~atdata.SchemaError`. Without
        ``version``, the latest published version is reused when its fields are
        the type's, else the next patch version is published (``1.0.0`` first).
        """
        if version is None:
            return self._publish_next(sample_type, description)
        record = schema_record(sample_type, version=version, description=description)
        name = record["name"]
        held = self.provider.put_schema(name, version, record)
        if held is not None and held.get("fields") != record["fields"]:
            raise SchemaError(
                f"{self.provider.location}: schema {name}@{version} is already published with "
                "other fields; publish the changed type under a new version"
            )
        return schema_ref(name, version)

    def _publish_next(self, sample_type: type, description: str | None) -> str:
        """The latest version if its fields are the type's, else the next one, published."""
        for _ in range(_PUBLISH_ATTEMPTS):  # another writer may take a version first
            record = schema_record(sample_type, version=FIRST_VERSION, description=description)
            name = record["name"]
            latest = latest_version(self.provider.schema_versions(name))
            if latest is not None:
                if self.provider.get_schema(name, latest).get("fields") == record["fields"]:
                    return schema_ref(name, latest)
            version = next_version(latest)
            record = schema_record(sample_type, version=version, description=description)
            held = self.provider.put_schema(name, version, record)
            if held is None or held.get("fields") == record["fields"]:
                return schema_ref(name, version)
        raise SchemaError(
            f"{self.provider.location}: no free version for schema {sample_type.__name__} after "
            f"{_PUBLISH_ATTEMPTS} attempts (other writers are publishing it); pass version=..."
        )

    def get_schema(self, ref: str) -> dict[str, Any]:
        """The schema record for ``ref``, with ``$ref`` added (``KeyError`` if unknown).

        ``atdata://local/sampleSchema/Name`` (no ``@version``) is the latest version.
        """
        if isinstance(ref, str) and ref.startswith(SCHEMA_REF_PREFIX) and "@" not in ref:
            name = ref[len(SCHEMA_REF_PREFIX) :]
            versions = self.provider.schema_versions(name)
            if not versions:
                raise KeyError(f"no schema named {name!r} in {self.provider.location}")
            ref = schema_ref(name, max(versions, key=_version_key))
        name, version = parse_schema_ref(ref)
        try:
            record = self.provider.get_schema(name, version)
        except KeyError:
            if "." not in name:
                raise
            # the seed-era legacy ref: try the class name, then the stored module.Class key
            short = name.rsplit(".", 1)[1]
            try:
                record = self.provider.get_schema(short, version)
            except KeyError:
                record = self.provider.get_schema(name, version)
            name = short
        return {**record, "$ref": schema_ref(name, version)}

    @property
    def schemas(self) -> Iterator[dict[str, Any]]:
        """Every schema record (with ``$ref``), by name and version."""
        for record in self.provider.iter_schemas():
            yield {
                **record,
                "$ref": schema_ref(record.get("name", "?"), record.get("version", "?")),
            }

    def list_schemas(self) -> list[dict[str, Any]]:
        """:attr:`schemas` as a list."""
        return list(self.schemas)

    def decode_schema(self, ref: str) -> type:
        """A working sample type built from the stored record alone (no original code needed)."""
        return schema_to_type(self.get_schema(ref))

    def _schema_for(self, dataset: Any, ref: str | None) -> str:
        if ref is not None:
            if ref.startswith((SCHEMA_REF_PREFIX, _LEGACY_PREFIX)):
                self.get_schema(ref)  # KeyError now rather than an entry nobody can decode
            return ref
        sample_type = getattr(dataset, "sample_type", DictSample)
        if sample_type is DictSample:
            raise ValueError(
                "pass schema_ref=..., or a typed Dataset[T] whose schema can be looked up"
            )
        fields = schema_record(sample_type, version="1.0.0")["fields"]
        name = sample_type.__name__
        for version in sorted(self.provider.schema_versions(name), key=_version_key, reverse=True):
            if self.provider.get_schema(name, version).get("fields") == fields:
                return schema_ref(name, version)
        return self.publish_schema(sample_type)

    # ---------------------------------------------------------------- datasets

    def insert_dataset(
        self,
        dataset: Dataset[Any],
        *,
        name: str,
        prefix: str | None = None,
        schema_ref: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        overwrite: bool = False,
        maxcount: int | None = None,
        maxsize: int | None = None,
    ) -> LocalDatasetEntry:
        """Copy the dataset's shards into the data store, verify them, then index them.

        ``prefix`` (default: ``name``) is the folder the shards go to.
        Without ``schema_ref``, the published schema of the dataset's type with
        the same fields is used, or the type is published (the next version).
        With ``maxcount`` (samples) or ``maxsize`` (bytes per shard), the
        samples are re-sharded while they are copied (keys and bytes kept);
        without, shards are copied byte for byte.
        """
        check_name(name)
        meta = _metadata(metadata)
        if not overwrite:
            self._check_free(name)
        ref = self._schema_for(dataset, schema_ref)
        store = self._data_store
        limits = {k: v for k, v in (("maxcount", maxcount), ("maxsize", maxsize)) if v is not None}
        folder, sample_type = prefix or name, self._type_of(ref)
        if not limits:
            copied = store.copy_shards(dataset, prefix=folder, sample_type=sample_type)
        elif isinstance(store, DataStore):
            copied = store.reshard(dataset, prefix=folder, sample_type=sample_type, **limits)
        else:
            raise TypeError(f"{type(store).__name__} cannot re-shard (maxcount, maxsize)")
        shards = tuple(copied)
        urls = [s.url for s in shards]
        try:
            entry = LocalDatasetEntry(name, ref, urls, meta, shards)
            self.provider.put_entry(entry, overwrite=overwrite)
        except BaseException as exc:
            store.remove_after(exc, urls)
            raise
        return entry

    def add_entry(
        self,
        dataset: Dataset[Any] | str | Sequence[str],
        *,
        name: str,
        schema_ref: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> LocalDatasetEntry:
        """Index the dataset's existing shard URLs (every shard), without copying anything."""
        urls = dataset.list_shards() if isinstance(dataset, Dataset) else expand_urls(dataset)
        ref = self._schema_for(dataset, schema_ref)
        entry = LocalDatasetEntry(name, ref, urls, _metadata(metadata))
        self.provider.put_entry(entry, overwrite=overwrite)
        return entry

    def _type_of(self, ref: str) -> type | None:
        """The type samples must decode as for schema ``ref`` (None: the dataset's own)."""
        if ref.startswith((SCHEMA_REF_PREFIX, _LEGACY_PREFIX)):
            return self.decode_schema(ref)
        return None

    def _check_free(self, name: str) -> None:
        try:
            held = self.provider.get_entry_by_name(name)
        except KeyError:
            return
        raise EntryExistsError(name, held.cid, self.provider.location)

    def get_entry(self, cid: str) -> LocalDatasetEntry:
        """The entry with this CID (``KeyError`` if none)."""
        return self.provider.get_entry(cid)

    def get_entry_by_name(self, name: str) -> LocalDatasetEntry:
        """The entry with this name (``KeyError`` if none)."""
        return self.provider.get_entry_by_name(name)

    def get_dataset(self, ref: str) -> LocalDatasetEntry:
        """The entry named ``ref``, or else with CID ``ref`` (``KeyError`` if neither)."""
        try:
            return self.provider.get_entry_by_name(ref)
        except KeyError:
            if not ref.startswith("bafy"):
                raise
        return self.provider.get_entry(ref)

    @property
    def entries(self) -> Iterator[LocalDatasetEntry]:
        """Every entry, by name (fetched a page at a time)."""
        return self.provider.iter_entries()

    def list_entries(self) -> list[LocalDatasetEntry]:
        """:attr:`entries` as a list."""
        return list(self.entries)

    @property
    def datasets(self) -> Iterator[LocalDatasetEntry]:
        """Same as :attr:`entries` (the :class:`~atdata.AbstractIndex` name)."""
        return self.entries

    def list_datasets(self) -> list[LocalDatasetEntry]:
        """:attr:`datasets` as a list."""
        return list(self.entries)

    def dataset_for(
        self,
        ref: str | LocalDatasetEntry,
        sample_type: type | None = None,
        *,
        verify: bool = True,
        **options: Any,
    ) -> Dataset[Any]:
        """Open an indexed dataset (by entry, name or CID) in one call.

        It is typed by the decoded schema unless ``sample_type`` is given.
        Shards in this index's data store are read with the store's
        credentials; with ``verify``, recorded sizes and SHA-256 are checked
        (a remote shard when downloaded, a local one when first opened).
        ``options`` go to :class:`~atdata.Dataset` (``cache``, ``prefetch``,
        ``on_error``). ``atdata.load_dataset("@local/name", index=index)``
        reads through this.
        """
        entry = ref if isinstance(ref, LocalDatasetEntry) else self.get_dataset(ref)
        read_type = sample_type if sample_type is not None else self.decode_schema(entry.schema_ref)
        store = self._data_store
        if all(store.owns(u) for u in entry.data_urls):
            source = store.create_source(entry.data_urls)
        else:
            source = make_source(entry.data_urls)
        if verify and entry.shards:
            source = VerifiedSource(source, {s.url: s for s in entry.shards})
        return Dataset[read_type](source, **options)  # type: ignore[valid-type]


def _metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``metadata`` as a dict, checked to be storable before any data is copied."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise ValueError(f"metadata must be a dict, not {type(metadata).__name__}")
    out = dict(metadata)
    try:
        generate_cid(out)
    except ValueError as exc:
        raise ValueError(f"metadata cannot be stored: {exc}") from None
    return out


LocalIndex = Index
"""The seed-era name of :class:`Index`."""
