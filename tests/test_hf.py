"""Hugging Face ``datasets`` both ways, with the real package, on small data made here (offline).

``atdata.from_hf`` from a ``datasets.Dataset`` and an ``IterableDataset`` (a type
generated from the features, or given), and ``Dataset.to_hf`` back to a
``datasets.IterableDataset`` sharded like the atdata shards.
"""

from __future__ import annotations

import datetime
import os
import pickle

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pytest
from datasets import Array2D, ClassLabel, Features, Image, List, Value
from numpy.typing import NDArray
from PIL import Image as PILImage

import atdata
from atdata import SampleError, SchemaError
from atdata.sample import fields_of
from helpers import private_atdata_home  # noqa: F401 - autouse fixture

N = 12


@pytest.fixture(autouse=True)
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the Hugging Face cache in the test's directory."""
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))


def pixels(i: int) -> np.ndarray:
    return np.full((4 + i % 2, 5, 3), i * 10, np.uint8)  # two image sizes


@pytest.fixture
def hf_ds() -> datasets.Dataset:
    features = Features(
        {
            "text": Value("string"),
            "label": ClassLabel(names=["cat", "dog", "fish"]),
            "image": Image(),
            "grid": Array2D(shape=(2, 3), dtype="float32"),
            "embedding": List(Value("float32")),
            "words": List(Value("string")),
            "meta": {"score": Value("float64"), "ok": Value("bool")},
            "note": Value("string"),
            "raw": Value("binary"),
        }
    )
    return datasets.Dataset.from_dict(
        {
            "text": [f"row {i}" for i in range(N)],
            "label": [i % 3 for i in range(N)],
            "image": [PILImage.fromarray(pixels(i)) for i in range(N)],
            "grid": [np.full((2, 3), i, np.float32) for i in range(N)],
            "embedding": [[i, i + 0.5] for i in range(N)],
            "words": [["w"] * (i % 3) for i in range(N)],
            "meta": [{"score": i / 4, "ok": i % 2 == 0} for i in range(N)],
            "note": [None if i % 4 == 0 else f"n{i}" for i in range(N)],
            "raw": [bytes([i]) for i in range(N)],
        },
        features=features,
    )


def check_rows(ds: atdata.Dataset[Any]) -> None:
    rows = list(ds)
    assert len(rows) == N
    for i, r in enumerate(rows):
        assert r.text == f"row {i}" and r.label == i % 3
        assert isinstance(r.image, np.ndarray)
        np.testing.assert_array_equal(r.image, pixels(i))
        assert r.grid.dtype == np.float32 and r.grid.shape == (2, 3) and r.grid[1, 2] == i
        assert r.embedding.dtype == np.float32
        np.testing.assert_array_equal(r.embedding, np.array([i, i + 0.5], np.float32))
        assert r.words == ["w"] * (i % 3)
        assert (r.meta.score, r.meta.ok) == (i / 4, i % 2 == 0)
        assert r.note == (None if i % 4 == 0 else f"n{i}")
        assert r.raw == bytes([i])


def test_from_hf_dataset_generates_the_type(hf_ds: datasets.Dataset, tmp_path: Path) -> None:
    ds = atdata.from_hf(hf_ds, tmp_path / "out", maxcount=5)
    assert [Path(s).name for s in ds.list_shards()] == [
        "data-000000.tar",
        "data-000001.tar",
        "data-000002.tar",
    ]
    T = ds.sample_type
    kinds = {s.name: (s.type.describe()) for s in fields_of(T)}
    assert kinds == {
        "text": "str",
        "label": "int",
        "image": "ndarray",
        "grid": "ndarray[float32]",
        "embedding": "ndarray[float32]",
        "words": "list[str]",
        "meta": kinds["meta"],
        "note": "str | None",  # the only column with nulls
        "raw": "bytes",
    }
    assert kinds["meta"].startswith("HfSampleMeta")
    check_rows(ds)
    # the shards are ordinary atdata shards: a plain reader with the schema gets the same
    index = atdata.Index(path=tmp_path / "i.db", data_store=atdata.local.LocalDiskStore(tmp_path))
    ref = index.publish_schema(T)
    check_rows(atdata.Dataset[index.decode_schema(ref)](ds.list_shards()))


def test_from_hf_iterable_dataset_and_patterns(hf_ds: datasets.Dataset, tmp_path: Path) -> None:
    iterable = hf_ds.to_iterable_dataset(num_shards=3)
    ds = atdata.from_hf(iterable, str(tmp_path / "it" / "train-%03d.tar"), maxcount=7)
    assert [Path(s).name for s in ds.list_shards()] == ["train-000.tar", "train-001.tar"]
    check_rows(ds)
    # every column of an IterableDataset may hold None: nothing was counted
    assert all(s.type.optional for s in fields_of(ds.sample_type))
    one = atdata.from_hf(hf_ds, tmp_path / "one.tar", maxcount=None)
    assert one.list_shards() == [str(tmp_path / "one.tar")]
    # nothing is overwritten: shards of an earlier run would mix with the new ones
    for out in (tmp_path / "one.tar", tmp_path / "it" / "train-%03d.tar"):
        with pytest.raises(FileExistsError, match="already exists"):
            atdata.from_hf(hf_ds, out, maxcount=None)
    atdata.from_hf(hf_ds, tmp_path / "dir", maxcount=5)
    with pytest.raises(FileExistsError, match=r"data-000000\.tar"):
        atdata.from_hf(hf_ds, tmp_path / "dir")


@atdata.packable
class Picked:
    """Only some columns, typed by the caller."""

    image: NDArray[np.uint8]
    label: int
    grid: NDArray[np.float64]


def test_from_hf_with_a_sample_type(hf_ds: datasets.Dataset, tmp_path: Path) -> None:
    ds = atdata.from_hf(hf_ds, tmp_path / "p", sample_type=Picked)
    assert ds.sample_type is Picked
    got = list(ds)
    assert [g.label for g in got] == [i % 3 for i in range(N)]
    assert got[3].grid.dtype == np.float64 and got[3].grid[0, 0] == 3.0
    np.testing.assert_array_equal(got[5].image, pixels(5))
    # undecoded images ({"bytes", "path"}) are decoded the same way
    raw = hf_ds.cast_column("image", Image(decode=False))
    again = list(atdata.from_hf(raw, tmp_path / "q", sample_type=Picked))
    np.testing.assert_array_equal(again[5].image, pixels(5))


def test_from_hf_errors(hf_ds: datasets.Dataset, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="pick one split"):
        atdata.from_hf(datasets.DatasetDict({"train": hf_ds}), tmp_path / "s")
    bad_name = hf_ds.rename_column("text", "the text")
    with pytest.raises(SchemaError, match=r"column 'the text'.*identifiers"):
        atdata.from_hf(bad_name, tmp_path / "a")
    with pytest.raises(SchemaError, match=r"column 'when'.*Value\('date32'\)"):
        atdata.from_hf(
            datasets.Dataset.from_dict(
                {"when": [datetime.date(2026, 1, 1)]}, features=Features({"when": Value("date32")})
            ),
            tmp_path / "b",
        )

    @atdata.packable
    class Strict:
        note: str  # but the column holds a null in row 4

    late_null = datasets.Dataset.from_dict({"note": ["a", "b", "c", "d", None, "f"]})
    with pytest.raises(SampleError, match=r"row 4.*field 'note'.*not optional"):
        atdata.from_hf(late_null, tmp_path / "c", sample_type=Strict, maxcount=2)
    assert list((tmp_path / "c").iterdir()) == []  # the two complete shards were removed


def test_to_hf_round_trip_and_sharding(hf_ds: datasets.Dataset, tmp_path: Path) -> None:
    plain = hf_ds.remove_columns(["image", "grid", "embedding", "raw"])
    ds = atdata.from_hf(plain, tmp_path / "r", maxcount=3)  # 4 shards
    hf = ds.to_hf()
    assert isinstance(hf, datasets.IterableDataset)
    assert hf.n_shards == 4
    assert hf.features is not None and hf.features["words"] == List(Value("string"))
    rows = list(hf)
    expected = [dict(r) for r in plain]
    assert rows == expected

    # split by node: every sample exactly once over two ranks, by shard
    from datasets.distributed import split_dataset_by_node

    parts = [list(split_dataset_by_node(hf, rank=r, world_size=2)) for r in (0, 1)]
    assert len(parts[0]) == len(parts[1]) == 6
    assert sorted(r["text"] for p in parts for r in p) == sorted(r["text"] for r in expected)

    # DataLoader workers each read whole shards
    import torch.utils.data

    loader = torch.utils.data.DataLoader(hf, batch_size=None, num_workers=2)
    assert sorted(r["text"] for r in loader) == sorted(r["text"] for r in expected)


def test_to_hf_arrays_pass_through(hf_ds: datasets.Dataset, tmp_path: Path) -> None:
    ds = atdata.from_hf(hf_ds, tmp_path / "a", maxcount=5)
    hf = ds.to_hf()
    assert hf.features is None  # array shapes are not fixed: no Hugging Face feature for them
    first = next(iter(hf))
    np.testing.assert_array_equal(first["image"], pixels(0))
    assert first["meta"] == {"score": 0.0, "ok": True}
    torch_rows = list(hf.with_format("torch"))
    assert torch_rows[1]["grid"].shape == (2, 3)
    assert len(torch_rows) == N
    # it pickles (as spawned DataLoader workers need), though its sample type was generated
    again = pickle.loads(pickle.dumps(hf))
    assert [r["text"] for r in again] == [f"row {i}" for i in range(N)]
    # a DictSample dataset too
    untyped = atdata.Dataset(ds.list_shards()).to_hf()
    assert next(iter(untyped))["text"] == "row 0"
