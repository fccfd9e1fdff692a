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

from importlib.metadata import PackageNotFoundError, version

from atdata.batch import SampleBatch
from atdata.dataset import Dataset
from atdata.dict_sample import DictSample
from atdata.errors import AtdataError, LensNotFoundError, SampleError, SchemaError, ShardError
from atdata.lens import Lens, LensNetwork, lens
from atdata.local import Index
from atdata.protocols import AbstractDataStore, AbstractIndex, DataSource, IndexEntry, Packable
from atdata.sample import PackableSample, packable
from atdata.sources import S3Source, URLSource
from atdata.writer import ShardWriter, write_samples

try:
    __version__ = version("atdata")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "AbstractDataStore",
    "AbstractIndex",
    "AtdataError",
    "DataSource",
    "Dataset",
    "DictSample",
    "Index",
    "IndexEntry",
    "Lens",
    "LensNetwork",
    "LensNotFoundError",
    "Packable",
    "PackableSample",
    "S3Source",
    "SampleBatch",
    "SampleError",
    "SchemaError",
    "ShardError",
    "ShardWriter",
    "URLSource",
    "__version__",
    "lens",
    "packable",
    "write_samples",
]
