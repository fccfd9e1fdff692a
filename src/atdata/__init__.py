"""atdata: a loose federation of distributed, typed datasets.

Local layer (this package's top level): typed samples, tar shards, ``Dataset[T]``
and lenses. Team layer: :mod:`atdata.local`. Federation layer: :mod:`atdata.atmosphere`.

>>> import atdata
>>> @atdata.packable
... class Pair:
...     name: str
...     value: int
>>> Pair.from_bytes(Pair("a", 1).packed).value
1
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from atdata._locations import MirroredSource, NoValidLocationError, ShardLocations
from atdata._storage import HashingReader, ShardInfo, VerifiedSource
from atdata.arrays import UnsafeArrayError
from atdata.batch import SampleBatch
from atdata.dataset import Dataset, write_samples
from atdata.dict_sample import DictSample
from atdata.errors import (
    AtdataError,
    CredentialURLError,
    LensNotFoundError,
    OrphanedDataError,
    PrivateURLError,
    PrivateURLWarning,
    ResumeStateError,
    SampleError,
    SchemaError,
    ShardError,
    ShardListError,
    ShardUnavailableError,
)
from atdata.lens import Lens, LensNetwork, lens
from atdata.protocols import AbstractDataStore, AbstractIndex, DataSource, IndexEntry, Packable
from atdata.sample import PackableSample, Shape, packable
from atdata.sources import S3Source, URLSource
from atdata.writer import ShardWriter

if TYPE_CHECKING:
    from atdata._hf import from_hf
    from atdata.atmosphere.blobs import BlobSource
    from atdata.cid import generate_cid, verify_cid
    from atdata.load import DatasetDict, load_dataset
    from atdata.local import Index
    from atdata.promote import promote_to_atmosphere
    from atdata.schema import schema_to_type

# The team and federation layers load on first use, so ``import atdata`` stays light.
_LAZY = {
    "BlobSource": "atdata.atmosphere.blobs",
    "DatasetDict": "atdata.load",
    "from_hf": "atdata._hf",
    "generate_cid": "atdata.cid",
    "Index": "atdata.local",
    "load_dataset": "atdata.load",
    "promote_to_atmosphere": "atdata.promote",
    "schema_to_type": "atdata.schema",
    "verify_cid": "atdata.cid",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'atdata' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


try:
    __version__ = version("atdata")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "AbstractDataStore",
    "AbstractIndex",
    "AtdataError",
    "BlobSource",
    "CredentialURLError",
    "DataSource",
    "Dataset",
    "DatasetDict",
    "DictSample",
    "HashingReader",
    "Index",
    "IndexEntry",
    "Lens",
    "LensNetwork",
    "LensNotFoundError",
    "MirroredSource",
    "NoValidLocationError",
    "OrphanedDataError",
    "Packable",
    "PackableSample",
    "PrivateURLError",
    "PrivateURLWarning",
    "ResumeStateError",
    "S3Source",
    "SampleBatch",
    "SampleError",
    "SchemaError",
    "Shape",
    "ShardError",
    "ShardInfo",
    "ShardListError",
    "ShardLocations",
    "ShardUnavailableError",
    "ShardWriter",
    "URLSource",
    "UnsafeArrayError",
    "VerifiedSource",
    "__version__",
    "from_hf",
    "generate_cid",
    "lens",
    "load_dataset",
    "packable",
    "promote_to_atmosphere",
    "schema_to_type",
    "verify_cid",
    "write_samples",
]
