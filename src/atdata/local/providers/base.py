"""The index provider contract, its errors, and the SQL logic SQLite and PostgreSQL share.

A provider stores dataset entries (unique by name, addressed by CID) and
schema records (unique by name and version). Every lookup a hot path makes is
a keyed read: by CID, by name, or a page of names in order.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from atdata.errors import AtdataError, SchemaError
from atdata.local.entry import LocalDatasetEntry

__all__ = ["EntryExistsError", "IndexBackendError", "IndexProvider", "SqlProvider"]

PAGE = 1000
"""Entries fetched per round trip when listing."""


class IndexBackendError(AtdataError):
    """The index back end cannot be reached, or holds data that cannot be read."""


class EntryExistsError(AtdataError, ValueError):
    """A dataset name is already indexed with other content; pass ``overwrite=True`` to replace it."""

    def __init__(self, name: str, cid: str | None, where: str) -> None:
        held = f" (entry {cid})" if cid else ""
        super().__init__(
            f"{where}: a dataset named {name!r} already exists{held}; choose another name "
            "or pass overwrite=True to replace it"
        )
        self.name = name
        self.cid = cid


class IndexProvider(ABC):
    """Where an index keeps its entries and schemas (SQLite, Redis, PostgreSQL, ...).

    ``location`` names the back end in error messages (no passwords).
    """

    location: str

    @abstractmethod
    def put_entries(self, entries: Iterable[LocalDatasetEntry], *, overwrite: bool = False) -> None:
        """Store entries. An entry whose name is held by another CID raises
        :class:`EntryExistsError` unless ``overwrite``, which replaces it; storing
        an identical entry again does nothing."""

    def put_entry(self, entry: LocalDatasetEntry, *, overwrite: bool = False) -> None:
        """Store one entry (see :meth:`put_entries`)."""
        self.put_entries([entry], overwrite=overwrite)

    @abstractmethod
    def get_entry(self, cid: str) -> LocalDatasetEntry:
        """The entry with this CID (``KeyError`` if none)."""

    @abstractmethod
    def get_entry_by_name(self, name: str) -> LocalDatasetEntry:
        """The entry with this name (``KeyError`` if none)."""

    @abstractmethod
    def iter_entries(self) -> Iterator[LocalDatasetEntry]:
        """Every entry, by name, fetched a page at a time."""

    @abstractmethod
    def put_schema(self, name: str, version: str, record: dict[str, Any]) -> dict[str, Any] | None:
        """Store a schema record unless ``name@version`` exists; return the existing record if so."""

    @abstractmethod
    def get_schema(self, name: str, version: str) -> dict[str, Any]:
        """The schema record ``name@version`` (``KeyError`` if none)."""

    @abstractmethod
    def iter_schemas(self) -> Iterator[dict[str, Any]]:
        """Every schema record, by name and version."""

    @abstractmethod
    def schema_versions(self, name: str) -> list[str]:
        """The published versions of schema ``name``."""

    def close(self) -> None:  # noqa: B027 - providers without resources keep this no-op
        """Release connections."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"


def parse_schema_json(text: str | bytes, where: str) -> dict[str, Any]:
    """Parse a stored schema record, naming ``where`` when it is not a JSON object."""
    try:
        record = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{where}: the stored schema record is not JSON ({exc})") from None
    if not isinstance(record, dict):
        raise SchemaError(f"{where}: the stored schema record is not a JSON object")
    return record


# --------------------------------------------------------------------------- shared SQL

_COLUMNS = ("cid", "name", "schema_ref", "data_urls", "metadata", "shards", "created_at")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM dataset_entries"
_INSERT = (
    f"INSERT INTO dataset_entries ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
)


class SqlProvider(IndexProvider):
    """Entries and schemas in two tables, for any DB-API driver with ``ON CONFLICT`` upserts.

    Subclasses open the connection, create the tables and supply
    :meth:`_transaction` (a cursor inside one transaction, driver errors
    turned into :class:`IndexBackendError` except ``_integrity_error``).
    """

    _placeholder = "?"
    _integrity_error: type[Exception] = Exception

    @abstractmethod
    def _transaction(self, write: bool = True) -> AbstractContextManager[Any]:
        """A cursor inside one transaction, committed on success and rolled back on error.

        ``write=False`` marks a read of a single statement, which needs no write lock.
        """

    def _sql(self, text: str) -> str:
        return text if self._placeholder == "?" else text.replace("?", self._placeholder)

    def _entry(self, row: Sequence[Any]) -> LocalDatasetEntry:
        return LocalDatasetEntry.from_fields(dict(zip(_COLUMNS, row)), self.location)

    def put_entries(self, entries: Iterable[LocalDatasetEntry], *, overwrite: bool = False) -> None:
        items = list(entries)
        rows = [tuple(e.to_fields().get(c) for c in _COLUMNS) for e in items]
        insert = self._sql(_INSERT)
        if not overwrite:
            try:  # the fast path: no name is taken
                with self._transaction() as cur:
                    cur.executemany(insert, rows)
                return
            except self._integrity_error:
                pass  # some name exists: redo entry by entry for the exact rule
        find = self._sql("SELECT cid FROM dataset_entries WHERE name = ?")
        delete = self._sql("DELETE FROM dataset_entries WHERE name = ?")
        with self._transaction() as cur:
            for entry, row in zip(items, rows):
                cur.execute(find, (entry.name,))
                found = cur.fetchone()
                if found is not None:
                    if found[0] == entry.cid:
                        continue
                    if not overwrite:
                        raise EntryExistsError(entry.name, found[0], self.location)
                    cur.execute(delete, (entry.name,))
                try:
                    cur.execute(insert, row)
                except self._integrity_error:  # another writer took the name meanwhile
                    raise EntryExistsError(entry.name, None, self.location) from None

    def _one(self, where: str, key: str, missing: str) -> LocalDatasetEntry:
        with self._transaction(write=False) as cur:
            cur.execute(self._sql(f"{_SELECT} WHERE {where} = ?"), (key,))
            row = cur.fetchone()
        if row is None:
            raise KeyError(f"{missing} in {self.location}")
        return self._entry(row)

    def get_entry(self, cid: str) -> LocalDatasetEntry:
        return self._one("cid", cid, f"no dataset entry with CID {cid!r}")

    def get_entry_by_name(self, name: str) -> LocalDatasetEntry:
        return self._one("name", name, f"no dataset named {name!r}")

    def iter_entries(self) -> Iterator[LocalDatasetEntry]:
        first = f"{_SELECT} ORDER BY name LIMIT {PAGE}"
        after = self._sql(f"{_SELECT} WHERE name > ? ORDER BY name LIMIT {PAGE}")
        last: str | None = None
        while True:
            with self._transaction(write=False) as cur:
                if last is None:
                    cur.execute(first)
                else:
                    cur.execute(after, (last,))
                rows = cur.fetchall()
            for row in rows:
                yield self._entry(row)
            if len(rows) < PAGE:
                return
            last = rows[-1][1]

    def put_schema(self, name: str, version: str, record: dict[str, Any]) -> dict[str, Any] | None:
        insert = self._sql(
            "INSERT INTO schemas (name, version, schema_json) VALUES (?, ?, ?) "
            "ON CONFLICT (name, version) DO NOTHING"
        )
        with self._transaction() as cur:
            cur.execute(insert, (name, version, json.dumps(record)))
            if cur.rowcount == 1:
                return None
        return self.get_schema(name, version)

    def get_schema(self, name: str, version: str) -> dict[str, Any]:
        query = self._sql("SELECT schema_json FROM schemas WHERE name = ? AND version = ?")
        with self._transaction(write=False) as cur:
            cur.execute(query, (name, version))
            row = cur.fetchone()
        if row is None:
            raise KeyError(f"no schema {name}@{version} in {self.location}")
        return parse_schema_json(row[0], f"{self.location}, schema {name}@{version}")

    def iter_schemas(self) -> Iterator[dict[str, Any]]:
        with self._transaction(write=False) as cur:
            cur.execute("SELECT name, version, schema_json FROM schemas ORDER BY name, version")
            rows = cur.fetchall()
        for name, version, text in rows:
            yield parse_schema_json(text, f"{self.location}, schema {name}@{version}")

    def schema_versions(self, name: str) -> list[str]:
        with self._transaction(write=False) as cur:
            cur.execute(self._sql("SELECT version FROM schemas WHERE name = ?"), (name,))
            return [row[0] for row in cur.fetchall()]
