"""Every implementation the docs name satisfies its protocol: checked by pyright, never run.

``tests/test_typing.py`` runs pyright on this file and expects no error.
"""

from __future__ import annotations

from atdata import (
    AbstractDataStore,
    AbstractIndex,
    DataSource,
    IndexEntry,
    MirroredSource,
    S3Source,
    URLSource,
)
from atdata.atmosphere import (
    AtmosphereIndex,
    AtmosphereIndexEntry,
    BlobSource,
    PDSBlobStore,
)
from atdata.local import Index, LocalDatasetEntry, LocalDiskStore, S3DataStore


def indexes(local: Index, atmosphere: AtmosphereIndex) -> list[AbstractIndex]:
    return [local, atmosphere]


def entries(local: LocalDatasetEntry, atmosphere: AtmosphereIndexEntry) -> list[IndexEntry]:
    return [local, atmosphere]


def entries_of(index: AbstractIndex) -> list[IndexEntry]:
    return [*index.list_datasets(), *index.datasets]


def stores(disk: LocalDiskStore, s3: S3DataStore, blobs: PDSBlobStore) -> list[AbstractDataStore]:
    return [disk, s3, blobs]


def sources(
    url: URLSource, s3: S3Source, blobs: BlobSource, mirrored: MirroredSource
) -> list[DataSource]:
    return [url, s3, blobs, mirrored]


def index_stores(local: Index, atmosphere: AtmosphereIndex) -> None:
    index: AbstractIndex = local
    index = atmosphere
    store: AbstractDataStore | None = index.data_store
    del store
