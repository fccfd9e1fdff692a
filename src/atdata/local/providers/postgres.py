"""A shared index in PostgreSQL (psycopg 3; ``pip install 'atdata[postgres]'``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from atdata.local.providers.base import IndexBackendError, SqlProvider

__all__ = ["PostgresProvider"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dataset_entries (
    cid TEXT COLLATE "C" PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL UNIQUE,
    schema_ref TEXT NOT NULL,
    data_urls BYTEA NOT NULL,
    metadata BYTEA,
    shards BYTEA,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS schemas (
    name TEXT COLLATE "C" NOT NULL,
    version TEXT COLLATE "C" NOT NULL,
    schema_json TEXT NOT NULL,
    PRIMARY KEY (name, version)
)
"""


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the PostgreSQL index needs psycopg: pip install 'atdata[postgres]'"
        ) from exc
    return psycopg


def _describe(dsn: str) -> str:
    """``postgresql://user@host:port/db`` for messages: no password, no options."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(dsn)
    except Exception:  # an unparsable DSN: show nothing of it
        return "postgresql://<invalid DSN>"
    user = f"{info['user']}@" if info.get("user") else ""
    host = info.get("host") or "localhost"
    port = f":{info['port']}" if info.get("port") else ""
    return f"postgresql://{user}{host}{port}/{info.get('dbname', '')}"


class PostgresProvider(SqlProvider):
    """Entries and schemas in two PostgreSQL tables, created if missing.

    The connection is opened at once, so a wrong DSN fails here with the
    server named; a dropped connection is reopened on the next call.

    Example (needs a server)::

        provider = PostgresProvider("postgresql://atdata@db.example:5432/atdata")
        index = Index(provider)
    """

    _placeholder = "%s"

    def __init__(self, dsn: str) -> None:
        psycopg = _psycopg()
        self._psycopg = psycopg
        self._integrity_error = psycopg.IntegrityError
        self.dsn: str = dsn
        self.location: str = f"PostgreSQL index {_describe(dsn)}"
        self._lock = threading.Lock()
        self._conn = self._connect()
        with self._transaction() as cur:
            cur.execute(_SCHEMA)

    def _connect(self) -> Any:
        try:
            return self._psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)
        except self._psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise IndexBackendError(f"{self.location}: cannot connect ({reason})") from None

    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Any]:
        psycopg = self._psycopg
        with self._lock:
            if self._conn.closed or self._conn.broken:
                self._conn = self._connect()
            try:
                if write:
                    with self._conn.transaction(), self._conn.cursor() as cur:
                        yield cur
                else:  # one autocommitted statement: no BEGIN and COMMIT round trips
                    with self._conn.cursor() as cur:
                        yield cur
            except psycopg.IntegrityError:
                raise
            except psycopg.Error as exc:
                reason = (
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                )
                raise IndexBackendError(f"{self.location}: {reason}") from None

    def close(self) -> None:
        with self._lock:
            self._conn.close()
