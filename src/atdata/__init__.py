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

from atdata.batch import SampleBatch
from atdata.dataset import Dataset
from atdata.dict_sample import DictSample
from atdata.errors import (
    AtdataError,
    LensNotFoundError,
    ResumeStateError,
    SampleError,
    SchemaError,
    ShardError,
)
from atdata.lens import Lens, LensNetwork, lens
from atdata.protocols import AbstractDataStore, AbstractIndex, DataSource, IndexEntry, Packable
from atdata.sample import PackableSample, packable
from atdata.sources import S3Source, URLSource
from atdata.writer import ShardWriter, write_samples

if TYPE_CHECKING:
    from atdata.atmosphere.blobs import BlobSource
    from atdata.load import DatasetDict, load_dataset
    from atdata.local import Index
    from atdata.promote import promote_to_atmosphere

# The team and federation layers load on first use, so ``import atdata`` stays light.
_LAZY = {
    "BlobSource": "atdata.atmosphere.blobs",
    "DatasetDict": "atdata.load",
    "Index": "atdata.local",
    "load_dataset": "atdata.load",
    "promote_to_atmosphere": "atdata.promote",
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
    "DataSource",
    "Dataset",
    "DatasetDict",
    "DictSample",
    "Index",
    "IndexEntry",
    "Lens",
    "LensNetwork",
    "LensNotFoundError",
    "Packable",
    "PackableSample",
    "ResumeStateError",
    "S3Source",
    "SampleBatch",
    "SampleError",
    "SchemaError",
    "ShardError",
    "ShardWriter",
    "URLSource",
    "__version__",
    "lens",
    "load_dataset",
    "packable",
    "promote_to_atmosphere",
    "write_samples",
]
