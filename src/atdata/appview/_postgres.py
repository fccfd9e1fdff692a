"""The production store: PostgreSQL (psycopg 3), full-text search on a GIN-indexed tsvector."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from atdata.appview._mirrors import MIGRATION as MIRRORS_MIGRATION
from atdata.appview._query import SearchParams
from atdata.appview._store import SqlStore, StoreError

__all__ = ["PostgresStore"]

# The 'simple' configuration lowercases and splits like SQLite's unicode61 (no stemming),
# so both stores match the same words.
_V1 = """
CREATE TABLE hosts (
    host TEXT PRIMARY KEY, cursor BIGINT, backfilled INTEGER NOT NULL DEFAULT 0,
    updated_at DOUBLE PRECISION
);
CREATE TABLE accounts (
    did TEXT COLLATE "C" PRIMARY KEY, handle TEXT COLLATE "C", active INTEGER NOT NULL DEFAULT 1,
    status TEXT, rev TEXT COLLATE "C", host TEXT
);
CREATE INDEX accounts_handle ON accounts (handle);
CREATE TABLE records (
    uri TEXT COLLATE "C" PRIMARY KEY, did TEXT COLLATE "C" NOT NULL,
    collection TEXT COLLATE "C" NOT NULL, rkey TEXT COLLATE "C" NOT NULL, cid TEXT NOT NULL,
    record TEXT NOT NULL, name TEXT, version TEXT, schema_ref TEXT COLLATE "C",
    source_schema TEXT COLLATE "C", target_schema TEXT COLLATE "C", license TEXT,
    created_at TEXT COLLATE "C" NOT NULL, indexed_at DOUBLE PRECISION NOT NULL, search_text TEXT,
    search tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('simple', coalesce(name, '')), 'A')
        || setweight(to_tsvector('simple', coalesce(search_text, '')), 'B')
    ) STORED
);
CREATE INDEX records_recent ON records (collection, created_at DESC, uri);
CREATE INDEX records_did ON records (did, collection);
CREATE INDEX records_schema ON records (schema_ref);
CREATE INDEX records_name ON records (did, collection, name);
CREATE INDEX records_source ON records (source_schema);
CREATE INDEX records_target ON records (target_schema);
CREATE INDEX records_search ON records USING GIN (search);
CREATE TABLE record_tags (
    uri TEXT COLLATE "C" NOT NULL, tag TEXT COLLATE "C" NOT NULL, PRIMARY KEY (tag, uri)
);
CREATE INDEX record_tags_uri ON record_tags (uri)
"""

# v2: tags carry their record's date, so browsing a tag walks one index, newest first.
_TAGS_BY_DATE = """
ALTER TABLE record_tags ADD COLUMN created_at TEXT COLLATE "C";
UPDATE record_tags SET created_at = (SELECT r.created_at FROM records r WHERE r.uri = record_tags.uri);
CREATE INDEX record_tags_recent ON record_tags (tag, created_at DESC, uri)
"""


# v4: listings filtered by schema or publisher, newest first, walk an index instead of
# scanning every dataset in date order (the web pages' schema and publisher lists).
_PAGE_INDEXES = """
CREATE INDEX records_schema_recent ON records (collection, schema_ref, created_at DESC, uri);
CREATE INDEX records_did_recent ON records (collection, did, created_at DESC, uri)
"""


def _describe(dsn: str) -> str:
    """``postgresql://user@host:port/db`` for messages: never the password."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(dsn)
    except Exception:  # an unparsable DSN: show nothing of it
        return "postgresql://<invalid DSN>"
    user = f"{info['user']}@" if info.get("user") else ""
    port = f":{info['port']}" if info.get("port") else ""
    return f"postgresql://{user}{info.get('host') or 'localhost'}{port}/{info.get('dbname', '')}"


class PostgresStore(SqlStore):
    """Records, accounts and cursors in PostgreSQL; one connection per thread."""

    _placeholder = "%s"
    # 1: records, 2: tags by date, 3: mirrors, 4: page indexes
    _migrations = (_V1, _TAGS_BY_DATE, MIRRORS_MIGRATION, _PAGE_INDEXES)

    def __init__(self, dsn: str) -> None:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "the PostgreSQL store needs psycopg: pip install 'atdata[postgres]'"
            ) from exc
        self._psycopg = psycopg
        self.dsn = dsn
        self.location = f"PostgreSQL AppView store {_describe(dsn)}"
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._all: list[Any] = []
        self._all_lock = threading.Lock()
        self._write = threading.Lock()
        self._migrate()

    def _acquire(self) -> Any:
        """An idle connection (the most recently used: warm), or a new one."""
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                break
            if not conn.closed:
                return conn
        try:
            conn = self._psycopg.connect(self.dsn, connect_timeout=10)
        except self._psycopg.Error as exc:
            raise StoreError(f"{self.location}: cannot connect ({type(exc).__name__})") from None
        with self._all_lock:
            self._all.append(conn)
        return conn

    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Any]:
        conn = self._acquire()
        try:
            if write:
                # One writer at a time keeps the rev checks of concurrent followers exact.
                with self._write, conn.transaction(), conn.cursor() as cur:
                    yield cur
            else:
                with conn.transaction(), conn.cursor() as cur:
                    yield cur
        except self._psycopg.Error as exc:
            raise StoreError(
                f"{self.location}: {type(exc).__name__}: {exc}".splitlines()[0]
            ) from None
        finally:
            self._idle.put(conn)

    def maintain(self) -> None:
        """Refresh the planner's statistics (after a backfill or a bulk load)."""
        with self._transaction() as cur:
            cur.execute("ANALYZE records, record_tags, accounts, hosts")

    def _ranked_sql(self, params: SearchParams) -> tuple[str, list[Any]]:
        assert params.text is not None
        where, args = self._filters(params)
        sql = (
            "SELECT r.uri AS uri, r.created_at AS created_at, "
            "-ts_rank(r.search, to_tsquery('simple', ?))::float8 AS rank "
            "FROM records r JOIN accounts a ON a.did = r.did AND a.active = 1 "
            f"WHERE r.search @@ to_tsquery('simple', ?) AND {where}"
        )
        tsquery = params.text.tsquery()
        return sql, [tsquery, tsquery, *args]

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
