"""Names of the existing atdata (0.2 to 0.7) that switching users call, each against its documented meaning.

``load_dataset(..., streaming=True)``, ``DatasetDict(sample_type=, streaming=)``,
``Dataset(url, metadata_url)`` with ``.metadata``, ``.shard_list`` and the
top-level ``atdata.schema_to_type``; remote reads go to a loopback HTTP server
and the suite's SeaweedFS.
"""

from __future__ import annotations

import os
import sys
import types
import warnings
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from numpy.typing import NDArray

import atdata
from atdata.load import DatasetDict, load_dataset
from helpers import private_atdata_home, serve_directory  # noqa: F401 - autouse fixture


@atdata.packable
class Reading:
    """One numbered reading."""

    values: NDArray[np.float32]
    label: int


@atdata.packable
class Label:
    """Only the label."""

    label: int


@atdata.lens
def to_label(r: Reading) -> Label:
    return Label(label=r.label)


def readings(n: int, start: int = 0) -> list[Reading]:
    return [Reading(values=np.full(3, i, np.float32), label=i) for i in range(start, start + n)]


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    """``train-{000..003}.tar`` (4 samples each) and ``test-000.tar`` under ``tmp_path/d``."""
    root = tmp_path / "d"
    for i in range(4):
        atdata.write_samples(readings(4, 4 * i), root / f"train-{i:03d}.tar")
    atdata.write_samples(readings(2, 100), root / "test-000.tar")
    return root


def cached_files(home: Path) -> list[Path]:
    cache = home / "cache"
    return (
        [p for p in cache.rglob("*") if p.is_file() and p.suffix == ".tar"]
        if cache.exists()
        else []
    )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``ATDATA_HOME``, so the shard cache starts empty."""
    path = tmp_path / "home"
    monkeypatch.setenv("ATDATA_HOME", str(path))
    return path


# --------------------------------------------------------------------------- streaming


def test_streaming_http_reads_without_a_download_step(shards: Path, home: Path) -> None:
    with serve_directory(shards) as base:
        url = f"{base}/train-{{000..003}}.tar"
        streamed = load_dataset(url, Reading, split="train", streaming=True)
        first = next(iter(streamed))
        assert first.label == 0
        assert cached_files(home) == []  # nothing was downloaded to read the first sample
        assert [r.label for r in streamed] == list(range(16))
        assert cached_files(home) == []

        cached = load_dataset(url, Reading, split="train")  # the default downloads shards
        assert cached.head(1)[0].label == 0
        assert len(cached_files(home)) >= 1


def test_streaming_s3_and_splits(
    shards: Path, home: Path, s3_environ: dict[str, str], s3_client: Any, s3_bucket: str
) -> None:
    for path in sorted(shards.glob("*.tar")):
        s3_client.upload_file(str(path), s3_bucket, f"d/{path.name}")
    splits = load_dataset(f"s3://{s3_bucket}/d/*.tar", Reading, streaming=True)
    assert isinstance(splits, DatasetDict)
    assert splits.streaming is True
    assert splits.num_shards == {"train": 4, "test": 1}
    assert [r.label for r in splits["test"]] == [100, 101]
    assert sorted(r.label for r in splits["train"].shuffled(seed=1)) == list(range(16))
    assert cached_files(home) == []
    assert load_dataset(f"s3://{s3_bucket}/d/*.tar", Reading).streaming is False


def test_streaming_local_files_read_in_place(shards: Path, home: Path) -> None:
    ds = load_dataset(str(shards / "train-*.tar"), Reading, split="train", streaming=True)
    assert [r.label for r in ds] == list(range(16))
    assert cached_files(home) == []


# --------------------------------------------------------------------------- DatasetDict


def test_dataset_dict_sample_type_and_streaming(shards: Path) -> None:
    train = atdata.Dataset(str(shards / "train-{000..003}.tar"))  # DictSample
    test = atdata.Dataset[Reading](str(shards / "test-000.tar"))
    typed = DatasetDict({"train": train, "test": test}, sample_type=Reading, streaming=True)
    assert typed.sample_type is Reading
    assert typed.streaming is True
    assert all(ds.sample_type is Reading for ds in typed.values())
    assert typed["train"].head(1)[0] == readings(1)[0]
    # positional, as in the existing atdata; a lens view for another type
    labels = DatasetDict({"test": test}, Label)
    assert [s.label for s in labels["test"]] == [100, 101]
    assert labels.streaming is False
    # the sample type is inferred from the first split when not given
    assert DatasetDict({"test": test}).sample_type is Reading
    assert DatasetDict().sample_type is None


def test_dataset_dict_single_split_proxies(shards: Path) -> None:
    one = load_dataset(str(shards / "test-000.tar"), Reading)
    assert [r.label for r in one.ordered()] == [100, 101]
    assert one.list_shards() == [str(shards / "test-000.tar")]
    assert [s.label for s in one.as_type(Label).head(5)] == [100, 101]
    two = load_dataset(str(shards), Reading)
    with pytest.raises(AttributeError, match="2 splits"):
        two.ordered()
    with pytest.raises(AttributeError):
        _ = one.not_a_method


# --------------------------------------------------------------------------- shard_list


def test_shard_list_on_datasets_and_sources(shards: Path, s3_env: dict[str, str]) -> None:
    ds = atdata.Dataset[Reading](str(shards / "train-{000..003}.tar"))
    with pytest.warns(DeprecationWarning, match="list_shards"):
        assert ds.shard_list == ds.list_shards()
    assert len(ds.list_shards()) == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        src = atdata.URLSource(str(shards / "train-{000..001}.tar"))
        assert src.shard_list == [str(shards / "train-000.tar"), str(shards / "train-001.tar")]
        s3 = atdata.S3Source.from_urls("s3://b/x-{0..2}.tar")
        assert s3.shard_list == ["s3://b/x-0.tar", "s3://b/x-1.tar", "s3://b/x-2.tar"]


# --------------------------------------------------------------------------- metadata


def test_metadata_url_local_file(shards: Path, tmp_path: Path) -> None:
    meta = {"license": "CC-BY-4.0", "n": 16, "splits": ["train"], "raw": b"\x00\x01"}
    path = tmp_path / "meta.msgpack"
    path.write_bytes(msgpack.packb(meta, use_bin_type=True))  # as the existing atdata writes it
    ds = atdata.Dataset[Reading](str(shards / "train-000.tar"), str(path))  # positional
    assert ds.metadata_url == str(path)
    assert ds.metadata == meta
    path.unlink()
    assert ds.metadata == meta  # read once, then cached
    assert ds.as_type(Label).metadata_url == str(path)
    assert atdata.Dataset[Reading](str(shards / "train-000.tar")).metadata is None


def test_metadata_url_over_http_and_s3(
    shards: Path, s3_environ: dict[str, str], s3_client: Any, s3_bucket: str
) -> None:
    (shards / "meta.msgpack").write_bytes(msgpack.packb({"source": "http"}))
    with serve_directory(shards) as base:
        ds = atdata.Dataset[Reading](
            f"{base}/train-000.tar", metadata_url=f"{base}/meta.msgpack", cache=False
        )
        assert ds.metadata == {"source": "http"}
        assert [r.label for r in ds] == [0, 1, 2, 3]
        missing = atdata.Dataset[Reading](f"{base}/train-000.tar", f"{base}/nope.msgpack")
        with pytest.raises(atdata.AtdataError, match=r"nope\.msgpack"):
            _ = missing.metadata
    s3_client.put_object(Bucket=s3_bucket, Key="m.msgpack", Body=msgpack.packb({"source": "s3"}))
    ds = atdata.Dataset[Reading](str(shards / "train-000.tar"), f"s3://{s3_bucket}/m.msgpack")
    assert ds.metadata == {"source": "s3"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (msgpack.packb([1, 2, 3]), "must be a msgpack map"),
        (b"\xc1garbage", "not one msgpack value"),
        (msgpack.packb({"a": 1}) + b"trailing", "not one msgpack value"),
        (msgpack.packb({1: "int key"}), "not one msgpack value"),
    ],
)
def test_bad_metadata_is_an_atdata_error(
    shards: Path, tmp_path: Path, body: bytes, message: str
) -> None:
    path = tmp_path / "bad.msgpack"
    path.write_bytes(body)
    ds = atdata.Dataset[Reading](str(shards / "train-000.tar"), str(path))
    with pytest.raises(atdata.AtdataError, match=message) as info:
        _ = ds.metadata
    assert str(path) in str(info.value)


def test_oversized_metadata_is_refused(tmp_path: Path) -> None:
    from atdata._metadata import read_metadata

    path = tmp_path / "big.msgpack"
    path.write_bytes(msgpack.packb({"blob": os.urandom(4096)}))
    with pytest.raises(atdata.AtdataError, match="larger than 1000 bytes"):
        read_metadata(str(path), max_bytes=1000)
    assert len(read_metadata(str(path), max_bytes=8192)["blob"]) == 4096


# --------------------------------------------------------------------------- schema_to_type


def test_top_level_schema_to_type_reads_seed_era_records(shards: Path) -> None:
    # a local schema record as the existing atdata stored it in Redis (inventory 2.6)
    record = {
        "name": "Reading",
        "version": "1.0.0",
        "fields": [
            {
                "name": "values",
                "fieldType": {"$type": "local#ndarray", "dtype": "float32"},
                "optional": False,
            },
            {
                "name": "label",
                "fieldType": {"$type": "local#primitive", "primitive": "int"},
                "optional": False,
            },
        ],
        "description": "One numbered reading.",
        "createdAt": "2026-01-26T12:00:00+00:00",
    }
    assert "schema_to_type" in atdata.__all__
    Decoded = atdata.schema_to_type(record)
    assert [f for f in Decoded.__dataclass_fields__] == ["values", "label"]
    ds = atdata.Dataset[Decoded](str(shards / "test-000.tar"))
    got = list(ds)
    assert [s.label for s in got] == [100, 101]
    np.testing.assert_array_equal(got[0].values, np.full(3, 100, np.float32))


# --------------------------------------------------------------------------- the switching page


def test_switching_page_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    import re

    page = Path(__file__).resolve().parent.parent / "docs" / "switching.md"
    blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(), re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    (tmp_path / "switch").mkdir()
    module = types.ModuleType("switching_example")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the example uses no deprecated name
        exec(compile(blocks[0], str(page), "exec"), module.__dict__)
    assert [Path(f).name for f in module.files] == ["train.parquet"]


def test_top_level_cid_functions() -> None:
    from atdata import cid

    assert atdata.generate_cid is cid.generate_cid and atdata.verify_cid is cid.verify_cid
    made = atdata.generate_cid({"schema_ref": "s", "data_urls": ["a.tar"]})
    assert made.startswith("bafyrei")
    assert atdata.verify_cid(made, {"data_urls": ["a.tar"], "schema_ref": "s"})
    for name in atdata.__all__:  # every exported name resolves
        assert getattr(atdata, name) is not None
