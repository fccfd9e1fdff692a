"""Team storage: an index of typed datasets and schemas, and stores for their shards.

The index runs on SQLite (the default, nothing to set up), Redis or
PostgreSQL; shards live on local disk or in any S3-compatible bucket.

>>> from atdata.local import LocalIndex, S3DataStore
>>> # store = S3DataStore(credentials="team.env", bucket="datasets-bucket")
>>> # index = LocalIndex(data_store=store)
>>> # index.publish_schema(FeatureSample, version="1.0.0")
>>> # entry = index.insert_dataset(dataset, name="feature-vectors-v1", prefix="features")
"""

from atdata.local.entry import LocalDatasetEntry, ShardInfo
from atdata.local.index import Index, LocalIndex, atdata_home, parse_schema_ref, schema_ref
from atdata.local.providers import (
    EntryExistsError,
    IndexBackendError,
    IndexProvider,
    PostgresProvider,
    RedisProvider,
    SqliteProvider,
)
from atdata.local.stores import DataStore, LocalDiskStore, S3DataStore, VerifiedSource

__all__ = [
    "DataStore",
    "EntryExistsError",
    "Index",
    "IndexBackendError",
    "IndexProvider",
    "LocalDatasetEntry",
    "LocalDiskStore",
    "LocalIndex",
    "PostgresProvider",
    "RedisProvider",
    "S3DataStore",
    "ShardInfo",
    "SqliteProvider",
    "VerifiedSource",
    "atdata_home",
    "parse_schema_ref",
    "schema_ref",
]
