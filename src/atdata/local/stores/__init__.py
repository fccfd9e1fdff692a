"""Data stores: where a local index keeps shard bytes (local disk, S3-compatible buckets).

Both derive from :class:`DataStore` (and so from :class:`~atdata.AbstractDataStore`);
boto3 is imported only when an S3 store first talks to its bucket.
"""

from atdata._storage import HashingReader, VerifiedSource
from atdata.local.stores.base import DataStore
from atdata.local.stores.disk import LocalDiskStore
from atdata.local.stores.s3 import S3DataStore, load_credentials

__all__ = [
    "DataStore",
    "HashingReader",
    "LocalDiskStore",
    "S3DataStore",
    "VerifiedSource",
    "load_credentials",
]
