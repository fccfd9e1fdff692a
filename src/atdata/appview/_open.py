"""Pick the AppView's store from a database URL: SQLite or PostgreSQL."""

from __future__ import annotations

from atdata.appview._postgres import PostgresStore
from atdata.appview._sqlite import SqliteStore
from atdata.appview._store import AppViewStore, StoreError

__all__ = ["open_store"]


def open_store(url: str) -> AppViewStore:
    """A store for ``sqlite:////absolute/path.db`` or ``postgresql://...``.

    >>> open_store("mysql://db.example/appview")
    Traceback (most recent call last):
    ...
    atdata.appview._store.StoreError: unsupported --db 'mysql': use sqlite:////absolute/path.db or postgresql://...
    """
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url)
    if url.startswith("sqlite:///"):
        return SqliteStore(url[len("sqlite:///") :])
    raise StoreError(
        f"unsupported --db {url.split('://')[0]!r}: use sqlite:////absolute/path.db or postgresql://..."
    )
