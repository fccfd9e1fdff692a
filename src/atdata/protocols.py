"""The protocols that connect the three layers: samples, sources, indexes and data stores.

The local layer implements :class:`DataSource`; the team layer (``atdata.local``)
and the federation layer (``atdata.atmosphere``) implement :class:`AbstractIndex`
and :class:`IndexEntry`, so code written against these protocols works on every
layer. Their data stores derive from :class:`AbstractDataStore`, the base class of
the storage contract (defined with it in ``atdata._storage``, named here too).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, Protocol, runtime_checkable

from atdata._storage import AbstractDataStore

if TYPE_CHECKING:
    from atdata.dataset import Dataset

__all__ = ["AbstractDataStore", "AbstractIndex", "DataSource", "IndexEntry", "Packable"]


@runtime_checkable
class Packable(Protocol):
    """A sample type: built from a dict or msgpack bytes, serialised to bytes."""

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Packable: ...

    @classmethod
    def from_bytes(cls, data: bytes) -> Packable: ...

    @property
    def packed(self) -> bytes: ...

    @property
    def as_wds(self) -> dict[str, Any]: ...


@runtime_checkable
class DataSource(Protocol):
    """Where a dataset's shards come from.

    ``list_shards()`` returns shard ids (paths or URLs) in dataset order;
    ``open_shard(id)`` returns a readable binary stream (``KeyError`` for an
    unknown id). A regular local file is memory-mapped by the reader.
    """

    def list_shards(self) -> list[str]: ...

    def open_shard(self, shard_id: str) -> IO[bytes]: ...


@runtime_checkable
class IndexEntry(Protocol):
    """One dataset in an index: its name, schema reference, shard URLs and metadata."""

    @property
    def name(self) -> str: ...

    @property
    def schema_ref(self) -> str: ...

    @property
    def data_urls(self) -> list[str]: ...

    @property
    def metadata(self) -> dict[str, Any] | None: ...


class AbstractIndex(Protocol):
    """A catalogue of datasets and sample schemas.

    Implementations accept further keyword arguments with defaults (``metadata``,
    ``description``, ...) and return their own entry and schema types; the
    protocol names what every index offers.
    """

    @property
    def data_store(self) -> AbstractDataStore | None: ...

    def insert_dataset(
        self, dataset: Dataset[Any], *, name: str, schema_ref: str | None = None
    ) -> IndexEntry: ...

    def get_dataset(self, ref: str) -> IndexEntry: ...

    @property
    def datasets(self) -> Iterator[IndexEntry]: ...

    def list_datasets(self) -> Sequence[IndexEntry]: ...

    def publish_schema(self, sample_type: type, *, version: str | None = None) -> str: ...

    def get_schema(self, ref: str) -> Mapping[str, Any]: ...

    @property
    def schemas(self) -> Iterator[Mapping[str, Any]]: ...

    def list_schemas(self) -> Sequence[Mapping[str, Any]]: ...

    def decode_schema(self, ref: str) -> type: ...
