"""Index providers: where a local index keeps its entries and schemas.

All of them implement :class:`IndexProvider`; the client libraries of Redis and
PostgreSQL are imported only when their provider is created.
"""

from atdata.local.providers.base import (
    EntryExistsError,
    IndexBackendError,
    IndexProvider,
    SqlProvider,
)
from atdata.local.providers.postgres import PostgresProvider
from atdata.local.providers.redis import RedisProvider
from atdata.local.providers.sqlite import SqliteProvider

__all__ = [
    "EntryExistsError",
    "IndexBackendError",
    "IndexProvider",
    "PostgresProvider",
    "RedisProvider",
    "SqlProvider",
    "SqliteProvider",
]
