"""``Dataset[T]``: every kind of source, ordered/shuffled/batched iteration, ``SampleBatch``."""

import collections
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import atdata
from atdata import DictSample, SampleBatch
from helpers import (
    BytesSource,
    FileSource,
    arrays_equal,
    private_atdata_home,  # noqa: F401 - autouse fixture
    same,
    serve_directory,
    write_wds,
)


@atdata.packable
class Feature:
    features: NDArray[np.float32]
    label: int
    name: str


@atdata.packable
class Base:
    image: NDArray
    caption: str


@atdata.packable
class Derived(Base):
    score: float
    mask: NDArray[np.bool_] | None = None


def feature(i: int) -> Feature:
    return Feature(features=np.arange(4, dtype=np.float32) + i, label=i % 10, name=f"s{i:03d}")


N_PER_SHARD = 10
N_SHARDS = 4
ALL = [feature(i) for i in range(N_PER_SHARD * N_SHARDS)]


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("shards")
    for k in range(N_SHARDS):
        chunk = ALL[k * N_PER_SHARD : (k + 1) * N_PER_SHARD]
        write_wds(
            d / f"data-{k:06d}.tar", [(f"{k}-{i:04d}", s.packed) for i, s in enumerate(chunk)]
        )
    return d


@pytest.fixture(scope="module")
def base_url(shard_dir: Path) -> Iterator[str]:
    with serve_directory(shard_dir) as url:
        yield url


def names(samples: Any) -> list[str]:
    return [s.name for s in samples]


def shard_paths(d: Path) -> list[str]:
    return [str(d / f"data-{k:06d}.tar") for k in range(N_SHARDS)]


# ---------------------------------------------------------------------------- sources


SOURCES = {
    "brace pattern": lambda d, url: str(d / "data-{000000..000003}.tar"),
    "list of paths": lambda d, url: shard_paths(d),
    "list of Path objects": lambda d, url: [Path(p) for p in shard_paths(d)],
    "file:// brace pattern": lambda d, url: f"file://{d}/data-{{000000..000003}}.tar",
    "file:// list": lambda d, url: [f"file://{p}" for p in shard_paths(d)],
    "http brace pattern": lambda d, url: f"{url}/data-{{000000..000003}}.tar",
    "http list": lambda d, url: [f"{url}/data-{k:06d}.tar" for k in range(N_SHARDS)],
    "DataSource over files": lambda d, url: FileSource(
        {f"shard-{k}": p for k, p in enumerate(shard_paths(d))}
    ),
    "DataSource over streams": lambda d, url: BytesSource(
        {f"mem-{k}": Path(p).read_bytes() for k, p in enumerate(shard_paths(d))}
    ),
    "URLSource": lambda d, url: atdata.URLSource(str(d / "data-{000000..000003}.tar")),
}


@pytest.mark.parametrize("kind", list(SOURCES))
def test_every_kind_of_source_reads_every_shard_in_order(
    kind: str, shard_dir: Path, base_url: str
) -> None:
    ds = atdata.Dataset[Feature](SOURCES[kind](shard_dir, base_url))
    assert len(ds.list_shards()) == N_SHARDS
    read = list(ds.ordered())
    assert len(read) == len(ALL)
    assert all(same(a, b) for a, b in zip(read, ALL, strict=True))


@pytest.mark.parametrize("kind", ["single path", "Path object", "file:// URL", "http URL"])
def test_single_shard_sources(kind: str, shard_dir: Path, base_url: str) -> None:
    path = shard_dir / "data-000002.tar"
    source = {
        "single path": str(path),
        "Path object": path,
        "file:// URL": f"file://{path}",
        "http URL": f"{base_url}/data-000002.tar",
    }[kind]
    ds = atdata.Dataset[Feature](source)
    assert names(ds) == names(ALL[20:30])


def test_a_custom_data_source_has_every_shard_opened(shard_dir: Path) -> None:
    src = BytesSource(
        {f"mem-{k}": Path(p).read_bytes() for k, p in enumerate(shard_paths(shard_dir))}
    )
    assert isinstance(src, atdata.DataSource)
    ds = atdata.Dataset[Feature](src)
    assert ds.list_shards() == ["mem-0", "mem-1", "mem-2", "mem-3"]
    assert names(ds) == names(ALL)
    assert src.opened == ["mem-0", "mem-1", "mem-2", "mem-3"]


def test_url_of_a_multi_shard_source_names_every_shard(shard_dir: Path) -> None:
    src = FileSource({f"id{k}": p for k, p in enumerate(shard_paths(shard_dir))})
    ds = atdata.Dataset[Feature](src)
    assert all(f"id{k}" in ds.url for k in range(N_SHARDS))


# ---------------------------------------------------------------------------- iteration


def test_ordered_iteration_for_loop_and_head_agree(shard_dir: Path) -> None:
    ds = atdata.Dataset[Feature](shard_paths(shard_dir))
    assert names(ds.ordered()) == names(ALL)
    assert names(ds.ordered(batch_size=None)) == names(ALL)
    assert names(s for s in ds) == names(ALL)
    assert names(ds.head(3)) == names(ALL[:3])
    assert names(ds.head(15)) == names(ALL[:15])
    assert names(ds.head(1000)) == names(ALL)
    assert ds.head(0) == []


def test_iteration_can_be_repeated(shard_dir: Path) -> None:
    ds = atdata.Dataset[Feature](shard_paths(shard_dir))
    assert names(ds) == names(ds) == names(ALL)


def test_ordered_batches(shard_dir: Path) -> None:
    ds = atdata.Dataset[Feature](shard_paths(shard_dir))
    batches = list(ds.ordered(batch_size=16))
    assert [len(b) for b in batches] == [16, 16, 8]
    assert all(isinstance(b, SampleBatch) for b in batches)
    assert [n for b in batches for n in b.name] == names(ALL)
    assert batches[0].features.shape == (16, 4)
    assert batches[0].features.dtype == np.float32
    assert batches[2].label == [s.label for s in ALL[32:]]


def test_batched_array_values_equal_the_per_sample_values(shard_dir: Path) -> None:
    ds = atdata.Dataset[Feature](shard_paths(shard_dir))
    singles = list(ds.ordered())
    offset = 0
    for batch in ds.ordered(batch_size=7):
        for row, (s, one) in enumerate(
            zip(batch.samples, singles[offset : offset + len(batch)], strict=True)
        ):
            assert arrays_equal(batch.features[row], one.features)
            assert same(s, one)
        offset += len(batch)
    assert offset == len(ALL)


def test_batch_size_must_be_positive(shard_dir: Path) -> None:
    ds = atdata.Dataset[Feature](shard_paths(shard_dir))
    with pytest.raises(ValueError):
        list(ds.ordered(batch_size=0))


def test_shuffled_is_deterministic_for_a_seed_and_a_permutation(shard_dir: Path) -> None:
    ds = atdata.Dataset[Feature](shard_paths(shard_dir))
    first = names(ds.shuffled(seed=42))
    assert first == names(ds.shuffled(seed=42))
    assert sorted(first) == names(ALL)
    assert first != names(ALL)
    assert first != names(ds.shuffled(seed=43))


def test_shuffled_without_a_seed_is_still_a_permutation(shard_dir: Path) -> None:
    ds = atdata.Dataset[Feature](shard_paths(shard_dir))
    assert sorted(names(ds.shuffled())) == names(ALL)
    assert sorted(n for b in ds.shuffled(batch_size=9) for n in b.name) == names(ALL)


def test_shuffled_crosses_shard_boundaries(shard_dir: Path) -> None:
    ds = atdata.Dataset[Feature](shard_paths(shard_dir))
    order = [int(n[1:]) // N_PER_SHARD for n in names(ds.shuffled(seed=5))]
    first_shard_of_each_window = [len(set(order[i : i + N_PER_SHARD])) for i in (0, 10, 20, 30)]
    assert max(first_shard_of_each_window) > 1


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    buffer_shards=st.integers(1, 6),
    buffer_samples=st.integers(1, 60),
    batch_size=st.none() | st.integers(1, 50),
)
def test_property_shuffled_yields_each_sample_exactly_once(
    shard_dir: Path, seed: int, buffer_shards: int, buffer_samples: int, batch_size: int | None
) -> None:
    ds = atdata.Dataset[Feature](shard_paths(shard_dir))

    def run() -> list[str]:
        it = ds.shuffled(
            batch_size=batch_size,
            seed=seed,
            buffer_shards=buffer_shards,
            buffer_samples=buffer_samples,
        )
        if batch_size is None:
            return names(it)
        batches = list(it)
        assert all(len(b) == batch_size for b in batches[:-1])
        return [n for b in batches for n in b.name]

    order = run()
    assert collections.Counter(order) == collections.Counter(names(ALL))
    assert order == run()


def test_shuffled_batches_hold_matching_rows(shard_dir: Path) -> None:
    ds = atdata.Dataset[Feature](shard_paths(shard_dir))
    by_name = {s.name: s for s in ALL}
    for batch in ds.shuffled(batch_size=6, seed=1):
        for row, n in enumerate(batch.name):
            assert arrays_equal(batch.features[row], by_name[n].features)
            assert batch.label[row] == by_name[n].label


# ---------------------------------------------------------------------------- SampleBatch


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.one_of(
        hnp.boolean_dtypes(),
        hnp.integer_dtypes(),
        hnp.unsigned_integer_dtypes(),
        hnp.floating_dtypes(),
        hnp.complex_number_dtypes(),
        hnp.unicode_string_dtypes(max_len=3),
    ),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3),
    n=st.integers(1, 7),
    batch_size=st.integers(1, 8),
    data=st.data(),
)
def test_property_batched_arrays_equal_the_per_sample_arrays(
    dtype: np.dtype, shape: tuple[int, ...], n: int, batch_size: int, data: st.DataObject
) -> None:
    arrays = [data.draw(hnp.arrays(dtype, shape)) for _ in range(n)]
    with tempfile.TemporaryDirectory() as d:
        ds = atdata.write_samples(
            [Base(image=a, caption=str(i)) for i, a in enumerate(arrays)], Path(d) / "b.tar"
        )
        singles = list(ds.ordered())
        batches = list(ds.ordered(batch_size=batch_size))
        assert [len(b) for b in batches] == [
            min(batch_size, n - k) for k in range(0, n, batch_size)
        ]
        rows = [b.image[k, ...] for b in batches for k in range(len(b))]
        assert all(b.image.shape == (len(b), *shape) for b in batches)
        assert all(b.image.dtype == dtype for b in batches)
        assert [c for b in batches for c in b.caption] == [str(i) for i in range(n)]
        for row, single, original in zip(rows, singles, arrays, strict=True):
            assert arrays_equal(row, single.image) and arrays_equal(row, original)


def test_sample_batch_stacks_arrays_and_lists_other_fields() -> None:
    samples = [feature(i) for i in range(3)]
    batch = SampleBatch[Feature](samples)
    assert batch.features.shape == (3, 4) and batch.features.dtype == np.float32
    assert arrays_equal(batch.features, np.stack([s.features for s in samples]))
    assert batch.label == [0, 1, 2] and batch.name == ["s000", "s001", "s002"]
    assert batch.samples == samples and batch.sample_type is Feature
    with pytest.raises(AttributeError):
        batch.nope  # noqa: B018


def test_sample_batch_reaches_inherited_fields(tmp_path: Path) -> None:
    samples = [
        Derived(image=np.full((2, 2), i, np.uint8), caption=f"c{i}", score=i / 2) for i in range(5)
    ]
    ds = atdata.write_samples(samples, tmp_path / "derived.tar")
    (batch,) = list(ds.ordered(batch_size=5))
    assert batch.image.shape == (5, 2, 2)
    assert batch.caption == [f"c{i}" for i in range(5)]
    assert batch.score == [i / 2 for i in range(5)]
    assert batch.mask == [None] * 5


def test_optional_arrays_batch_as_stack_when_all_present(tmp_path: Path) -> None:
    samples = [
        Derived(np.zeros(2, np.uint8), "c", 1.0, mask=np.array([True, i % 2 == 0]))
        for i in range(4)
    ]
    ds = atdata.write_samples(samples, tmp_path / "masks.tar")
    (batch,) = list(ds.ordered(batch_size=4))
    assert batch.mask.shape == (4, 2) and batch.mask.dtype == np.bool_
    assert batch.mask[:, 1].tolist() == [True, False, True, False]


def test_dict_sample_batches_have_attribute_access(shard_dir: Path) -> None:
    ds = atdata.Dataset(shard_paths(shard_dir))
    batch = next(ds.ordered(batch_size=5))
    assert batch.features.shape == (5, 4) and batch.features.dtype == np.float32
    assert batch.label == [s.label for s in ALL[:5]]
    assert batch.name == names(ALL[:5])
    assert all(isinstance(s, DictSample) for s in batch.samples)


def test_arrays_kept_from_batches_survive_rewriting_the_shard(tmp_path: Path) -> None:
    """Arrays a user keeps from a batch must not depend on the shard file staying as it was.

    Run in a child process: a memory-mapped view of a file truncated underneath it
    kills the process with SIGBUS.
    """
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        from numpy.typing import NDArray
        import atdata

        @atdata.packable
        class Part:
            values: NDArray

        @atdata.packable
        class Item:
            x: NDArray
            boxes: list[NDArray]
            part: Part
            maybe: NDArray | None

        path = sys.argv[1]
        items = [
            Item(np.zeros(2), [np.full(5000, i, np.float64)], Part(np.full(5000, i)), None)
            for i in range(3)
        ]
        ds = atdata.write_samples(items, path)
        kept = next(ds.ordered(batch_size=3)).samples
        atdata.write_samples([Item(np.zeros(2), [], Part(np.zeros(1)), None)], path)
        print(kept[2].boxes[0].sum(), kept[2].part.values.sum())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "rewritten.tar")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"child exited with {result.returncode} (-7: SIGBUS)"
    assert result.stdout.split() == ["10000.0", "10000"]


# ---------------------------------------------------------------------------- untyped datasets


def test_untyped_dataset_yields_dict_samples(shard_dir: Path) -> None:
    ds = atdata.Dataset(str(shard_dir / "data-{000000..000003}.tar"))
    assert ds.sample_type is DictSample
    samples = ds.head(2)
    assert all(type(s) is DictSample for s in samples)
    assert samples[0].keys() == ["features", "label", "name"]
    assert arrays_equal(samples[0].features, ALL[0].features)
    assert samples[1]["name"] == "s001" and samples[1].label == 1
    assert samples[1].to_dict()["label"] == 1


def test_typed_dataset_knows_its_types(shard_dir: Path) -> None:
    ds = atdata.Dataset[Feature](shard_paths(shard_dir))
    assert ds.sample_type is Feature
    batch = next(ds.ordered(batch_size=2))
    assert batch.sample_type is Feature
    assert type(ds.head(1)[0]) is Feature


def test_dataset_of_a_non_sample_type_is_refused() -> None:
    with pytest.raises(TypeError):
        atdata.Dataset[int]
