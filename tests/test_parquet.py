"""``Dataset.to_parquet``: one row per sample, arrays as Arrow fixed-shape tensors, bounded memory.

Read back with pyarrow itself, the reference reader.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from numpy.typing import NDArray

import atdata
from atdata import SampleError
from helpers import private_atdata_home  # noqa: F401 - autouse fixture


@atdata.packable
class Box:
    x: float
    y: float


@atdata.packable
class Frame:
    image: NDArray[np.uint8]
    depth: NDArray[np.float32] | None
    label: str
    score: float
    tags: list[str]
    counts: dict[str, int]
    box: Box
    raw: bytes
    ok: bool


def frames(n: int) -> list[Frame]:
    rng = np.random.default_rng(0)
    return [
        Frame(
            image=rng.integers(0, 255, (4, 5, 3), dtype=np.uint8),
            depth=None if i % 3 == 1 else rng.random((2, 2), dtype=np.float32),
            label=f"f{i}",
            score=i / 2,
            tags=["a"] * (i % 3),
            counts={"n": i},
            box=Box(float(i), -float(i)),
            raw=bytes([i]),
            ok=i % 2 == 0,
        )
        for i in range(n)
    ]


def test_rows_columns_and_tensors(tmp_path: Path) -> None:
    samples = frames(25)
    ds = atdata.write_samples(samples, tmp_path / "f.tar", maxcount=10)
    out = ds.to_parquet(tmp_path / "f.parquet", row_group_size=7)
    assert out == [str(tmp_path / "f.parquet")]
    meta = pq.ParquetFile(out[0]).metadata
    assert meta.num_rows == 25
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [7, 7, 7, 4]
    table = pq.read_table(out[0])
    assert table.column_names == [
        "image",
        "depth",
        "label",
        "score",
        "tags",
        "counts",
        "box",
        "raw",
        "ok",
    ]
    image_type = table.schema.field("image").type
    assert isinstance(image_type, pa.FixedShapeTensorType)
    assert image_type.shape == [4, 5, 3] and image_type.value_type == pa.uint8()
    images = table["image"].combine_chunks().to_numpy_ndarray()
    np.testing.assert_array_equal(images, np.stack([s.image for s in samples]))
    depth = table["depth"].combine_chunks()
    assert depth.type.shape == [2, 2] and depth.null_count == 8
    for i, s in enumerate(samples):
        if s.depth is None:
            assert not depth[i].is_valid
        else:
            np.testing.assert_array_equal(depth[i].to_numpy(), s.depth)
    rows = table.drop_columns(["image", "depth"]).to_pylist()
    assert rows[4] == {
        "label": "f4",
        "score": 2.0,
        "tags": ["a"],
        "counts": [("n", 4)],  # a Parquet map reads back as pairs
        "box": {"x": 4.0, "y": -4.0},
        "raw": b"\x04",
        "ok": True,
    }
    assert table.schema.field("score").type == pa.float64()
    assert table.schema.field("counts").type == pa.map_(pa.string(), pa.int64())


def test_maxcount_files_sample_map_and_writer_options(tmp_path: Path) -> None:
    ds = atdata.write_samples(frames(25), tmp_path / "f.tar")
    out = ds.to_parquet(tmp_path / "out" / "f.parquet", maxcount=10, compression="zstd")
    assert [Path(p).name for p in out] == [
        "f-000000.parquet",
        "f-000001.parquet",
        "f-000002.parquet",
    ]
    assert [pq.ParquetFile(p).metadata.num_rows for p in out] == [10, 10, 5]
    assert pq.ParquetFile(out[0]).metadata.row_group(0).column(0).compression == "ZSTD"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [Path(p).name for p in out]

    mapped = ds.to_parquet(
        tmp_path / "m.parquet", sample_map=lambda s: {"label": s.label, "n": len(s.tags)}
    )
    assert pq.read_table(mapped[0]).to_pylist()[:3] == [
        {"label": "f0", "n": 0},
        {"label": "f1", "n": 1},
        {"label": "f2", "n": 2},
    ]


def test_dict_samples(tmp_path: Path) -> None:
    atdata.write_samples(frames(6), tmp_path / "f.tar")
    ds = atdata.Dataset(str(tmp_path / "f.tar"))  # DictSample: columns inferred
    out = ds.to_parquet(tmp_path / "d.parquet", row_group_size=2)
    table = pq.read_table(out[0])
    assert isinstance(table.schema.field("image").type, pa.FixedShapeTensorType)
    assert table["label"].to_pylist() == [f"f{i}" for i in range(6)]
    assert table["depth"].null_count == 2


def test_bounded_memory(tmp_path: Path) -> None:
    @atdata.packable
    class Big:
        data: NDArray[np.float32]

    n, per = 40, 256 * 1024  # 40 samples of 256 KiB: 10 MiB of arrays
    ds = atdata.write_samples(
        (Big(np.full(per // 4, i, np.float32)) for i in range(n)), tmp_path / "b.tar"
    )
    tracemalloc.start()
    try:
        out = ds.to_parquet(tmp_path / "b.parquet", row_group_bytes=1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    meta = pq.ParquetFile(out[0]).metadata
    assert meta.num_row_groups == 10 and meta.num_rows == n  # 4 samples (1 MiB) per group
    assert peak < 4 << 20, f"peak {peak} bytes: more than a few row groups held at once"
    col = pq.read_table(out[0])["data"].combine_chunks().to_numpy_ndarray()
    assert col.shape == (n, per // 4) and col[7, 0] == 7


def test_shape_or_dtype_change_is_an_error_and_nothing_is_left(tmp_path: Path) -> None:
    @atdata.packable
    class Ragged:
        a: NDArray

    samples = [Ragged(np.zeros(3)) for _ in range(5)] + [Ragged(np.zeros(4))]
    ds = atdata.write_samples(samples, tmp_path / "r.tar")
    with pytest.raises(SampleError, match=r"sample '#5', field 'a'.*shape \(4,\)"):
        ds.to_parquet(tmp_path / "r.parquet", row_group_size=2)
    with pytest.raises(SampleError, match="is a int32 array"):
        atdata.write_samples(
            [Ragged(np.zeros(3)), Ragged(np.zeros(3, np.int32))], tmp_path / "d.tar"
        ).to_parquet(tmp_path / "d.parquet")
    with pytest.raises(SampleError):
        ds.to_parquet(tmp_path / "m.parquet", maxcount=2)  # two files were complete
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.tar", "r.tar"]


@pytest.mark.parametrize(
    "array",
    [np.array([True, False]), np.array(["ab", "c"]), np.zeros((2, 0)), np.array([1 + 2j])],
    ids=["bool", "str", "empty", "complex"],
)
def test_arrays_arrow_tensors_cannot_hold(tmp_path: Path, array: np.ndarray) -> None:
    @atdata.packable
    class One:
        a: NDArray

    ds = atdata.write_samples([One(array)], tmp_path / "o.tar")
    with pytest.raises(SampleError, match=r"sample '#0', field 'a'.*sample_map"):
        ds.to_parquet(tmp_path / "o.parquet")
    out = ds.to_parquet(
        tmp_path / "m.parquet", sample_map=lambda s: {"a": s.a.astype(str).tolist()}
    )
    assert pq.read_table(out[0])["a"].to_pylist() == [array.astype(str).tolist()]
