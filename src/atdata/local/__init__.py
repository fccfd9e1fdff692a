"""Team storage: an index of typed datasets and schemas, and stores for their shards.

The index runs on SQLite (the default, nothing to set up), Redis or
PostgreSQL; shards live on local disk or in any S3-compatible bucket.

>>> import os, tempfile, atdata
>>> from atdata.local import LocalDiskStore, LocalIndex
>>> @atdata.packable
... class Feature:
...     label: str
...     score: float
>>> root = tempfile.mkdtemp()
>>> dataset = atdata.write_samples([Feature("a", 0.5), Feature("b", 1.5)], f"{root}/f.tar")
>>> index = LocalIndex(path=f"{root}/index.db", data_store=LocalDiskStore(f"{root}/shards"))
>>> entry = index.insert_dataset(dataset, name="feature-vectors-v1", prefix="features")
>>> entry.shards[0].size == os.path.getsize(dataset.list_shards()[0])
True
>>> [f.label for f in index.dataset_for("feature-vectors-v1").ordered()]
['a', 'b']

A bucket instead of a folder: ``LocalIndex(data_store=S3DataStore(credentials="team.env",
bucket="datasets-bucket"))``.
"""

from atdata._storage import ShardInfo, VerifiedSource
from atdata.local.entry import LocalDatasetEntry
from atdata.local.index import Index, LocalIndex, atdata_home, parse_schema_ref, schema_ref
from atdata.local.providers import (
    EntryExistsError,
    IndexBackendError,
    IndexProvider,
    PostgresProvider,
    RedisProvider,
    SqliteProvider,
)
from atdata.local.stores import DataStore, LocalDiskStore, S3DataStore

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
