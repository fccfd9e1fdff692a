"""An embedded index: one SQLite file in WAL mode (the default index is ``$ATDATA_HOME/index.db``)."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from atdata.local.providers.base import IndexBackendError, SqlProvider

__all__ = ["SqliteProvider"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dataset_entries (
    cid TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    schema_ref TEXT NOT NULL,
    data_urls BLOB NOT NULL,
    metadata BLOB,
    shards BLOB,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS schemas (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    schema_json TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
"""


class SqliteProvider(SqlProvider):
    """Entries and schemas in a SQLite file; safe to share between threads and processes.

    >>> import tempfile, os
    >>> provider = SqliteProvider(os.path.join(tempfile.mkdtemp(), "index.db"))
    >>> provider.schema_versions("Missing")
    []
    """

    _integrity_error = sqlite3.IntegrityError

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path: Path = Path(path).expanduser()
        self.location: str = f"SQLite index {self.path}"
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=30
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise IndexBackendError(f"{self.location}: cannot open ({exc})") from None

    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            cur = self._conn.cursor()
            try:
                if write:
                    cur.execute("BEGIN IMMEDIATE")
                yield cur
                if write:
                    cur.execute("COMMIT")
            except BaseException as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error) and not isinstance(exc, sqlite3.IntegrityError):
                    raise IndexBackendError(f"{self.location}: {exc}") from None
                raise
            finally:
                cur.close()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
