"""The embedded store: one SQLite file in WAL mode, FTS5 for text search."""

from __future__ import annotations

import os
import queue
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from atdata.appview._mirrors import MIGRATION as MIRRORS_MIGRATION
from atdata.appview._query import SearchParams
from atdata.appview._store import SqlStore, StoreError

__all__ = ["SqliteStore"]

_V1 = """
CREATE TABLE hosts (
    host TEXT PRIMARY KEY, cursor INTEGER, backfilled INTEGER NOT NULL DEFAULT 0, updated_at REAL
);
CREATE TABLE accounts (
    did TEXT PRIMARY KEY, handle TEXT, active INTEGER NOT NULL DEFAULT 1,
    status TEXT, rev TEXT, host TEXT
);
CREATE INDEX accounts_handle ON accounts (handle);
CREATE TABLE records (
    id INTEGER PRIMARY KEY,
    uri TEXT NOT NULL UNIQUE, did TEXT NOT NULL, collection TEXT NOT NULL, rkey TEXT NOT NULL,
    cid TEXT NOT NULL, record TEXT NOT NULL, name TEXT, version TEXT, schema_ref TEXT,
    source_schema TEXT, target_schema TEXT, license TEXT, created_at TEXT NOT NULL,
    indexed_at REAL NOT NULL, search_text TEXT
);
CREATE INDEX records_recent ON records (collection, created_at DESC, uri);
CREATE INDEX records_did ON records (did, collection);
CREATE INDEX records_schema ON records (schema_ref);
CREATE INDEX records_name ON records (did, collection, name);
CREATE INDEX records_source ON records (source_schema);
CREATE INDEX records_target ON records (target_schema);
CREATE TABLE record_tags (uri TEXT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (tag, uri));
CREATE INDEX record_tags_uri ON record_tags (uri);
CREATE VIRTUAL TABLE records_fts USING fts5(name, search_text, tokenize = 'unicode61')
"""

# v2: tags carry their record's date, so browsing a tag walks one index, newest first.
_TAGS_BY_DATE = """
ALTER TABLE record_tags ADD COLUMN created_at TEXT;
UPDATE record_tags SET created_at = (SELECT r.created_at FROM records r WHERE r.uri = record_tags.uri);
CREATE INDEX record_tags_recent ON record_tags (tag, created_at DESC, uri)
"""


# v4: listings filtered by schema or publisher, newest first, walk an index instead of
# scanning every dataset in date order (the web pages' schema and publisher lists).
_PAGE_INDEXES = """
CREATE INDEX records_schema_recent ON records (collection, schema_ref, created_at DESC, uri);
CREATE INDEX records_did_recent ON records (collection, did, created_at DESC, uri)
"""


class SqliteStore(SqlStore):
    """Records, accounts and cursors in one SQLite file; readers never block the writer."""

    # 1: records, 2: tags by date, 3: mirrors, 4: page indexes
    _migrations = (_V1, _TAGS_BY_DATE, MIRRORS_MIGRATION, _PAGE_INDEXES)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        self.location = f"SQLite AppView store {self.path}"
        self._lock = threading.Lock()
        self._idle: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = self._connect()
            self._writer.execute("PRAGMA journal_mode=WAL")
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{self.location}: cannot open ({exc})") from None
        self._migrate()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _reader(self) -> sqlite3.Connection:
        """An idle reader (the most recently used, so its page cache is warm), or a new one."""
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return self._connect()

    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Any]:
        try:
            if write:
                with self._lock:
                    cur = self._writer.cursor()
                    cur.execute("BEGIN IMMEDIATE")
                    try:
                        yield cur
                    except BaseException:
                        cur.execute("ROLLBACK")
                        raise
                    cur.execute("COMMIT")
            else:
                conn = self._reader()
                cur = conn.cursor()
                cur.execute("BEGIN")
                try:
                    yield cur
                finally:
                    cur.execute("COMMIT")
                    self._idle.put(conn)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.location}: {exc}") from None

    def _fts_delete(self, cur: Any, uris: list[str]) -> None:
        cur.executemany(
            "DELETE FROM records_fts WHERE rowid = (SELECT id FROM records WHERE uri = ?)",
            [(u,) for u in uris],
        )

    def _fts_insert(self, cur: Any, uris: list[str]) -> None:
        cur.executemany(
            "INSERT INTO records_fts (rowid, name, search_text) "
            "SELECT id, coalesce(name, ''), coalesce(search_text, '') FROM records WHERE uri = ?",
            [(u,) for u in uris],
        )

    def _ranked_sql(self, params: SearchParams) -> tuple[str, list[Any]]:
        assert params.text is not None
        where, args = self._filters(params)
        sql = (
            "SELECT r.uri AS uri, r.created_at AS created_at, "
            "bm25(records_fts, 10.0, 1.0) AS rank FROM records_fts "
            "JOIN records r ON r.id = records_fts.rowid "
            "JOIN accounts a ON a.did = r.did AND a.active = 1 "
            f"WHERE records_fts MATCH ? AND {where}"
        )
        return sql, [params.text.fts5(), *args]

    def maintain(self) -> None:
        """Refresh the query planner's statistics and merge the full-text index segments."""
        with self._transaction() as cur:
            cur.execute("INSERT INTO records_fts (records_fts) VALUES ('optimize')")
            cur.execute("ANALYZE")

    def close(self) -> None:
        """Close every connection."""
        self._writer.close()
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
