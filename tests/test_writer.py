"""``atdata.write_samples`` and ``atdata.ShardWriter``, and shards from WebDataset's writers."""

import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from numpy.typing import NDArray

import atdata
from atdata import DictSample, SampleError
from helpers import (
    private_atdata_home,  # noqa: F401 - autouse fixture
    same,
    tar_members,
    tar_payloads,
)


@atdata.packable
class Feature:
    features: NDArray[np.float32]
    label: int


@atdata.packable
class Other:
    label: int


RECORD = 10240  # tar files are written in whole records of 20 blocks


def feature(i: int, n: int = 8) -> Feature:
    return Feature(features=np.full(n, i, np.float32), label=i)


def labels(ds: atdata.Dataset) -> list[int]:
    return [s.label for s in ds]


def test_write_samples_returns_a_typed_dataset_that_reads_them_back(tmp_path: Path) -> None:
    samples = [feature(i) for i in range(10)]
    ds = atdata.write_samples(samples, tmp_path / "one.tar")
    assert isinstance(ds, atdata.Dataset)
    assert ds.sample_type is Feature
    assert ds.list_shards() == [str(tmp_path / "one.tar")]
    back = list(ds)
    assert len(back) == 10 and all(same(a, b) for a, b in zip(back, samples))


def test_write_samples_accepts_any_iterable(tmp_path: Path) -> None:
    ds = atdata.write_samples((feature(i) for i in range(4)), str(tmp_path / "gen.tar"))
    assert labels(ds) == [0, 1, 2, 3]


def test_maxcount_splits_into_numbered_shards(tmp_path: Path) -> None:
    ds = atdata.write_samples([feature(i) for i in range(25)], tmp_path / "data.tar", maxcount=10)
    assert ds.list_shards() == [str(tmp_path / f"data-{k:06d}.tar") for k in range(3)]
    assert [len(tar_members(p)) for p in ds.list_shards()] == [10, 10, 5]
    assert labels(ds) == list(range(25))


def test_explicit_shard_pattern(tmp_path: Path) -> None:
    pattern = str(tmp_path / "out" / "part-%04d.tar")
    ds = atdata.write_samples([feature(i) for i in range(5)], pattern, maxcount=2)
    assert ds.list_shards() == [str(tmp_path / "out" / f"part-{k:04d}.tar") for k in range(3)]
    assert labels(ds) == list(range(5))


def test_maxsize_splits_into_several_shards_and_keeps_every_sample(tmp_path: Path) -> None:
    samples = [feature(i, n=500) for i in range(40)]
    ds = atdata.write_samples(samples, tmp_path / "sized.tar", maxsize=4 * RECORD)
    assert len(ds.list_shards()) > 1
    assert labels(ds) == list(range(40))


@pytest.mark.parametrize("seed", range(6))
def test_shards_never_exceed_maxsize(seed: int, tmp_path: Path) -> None:
    rng = np.random.default_rng(seed)
    samples = [feature(i, n=int(rng.integers(1, 1500))) for i in range(60)]
    maxsize = 2 * RECORD
    ds = atdata.write_samples(samples, tmp_path / "s.tar", maxsize=maxsize)
    sizes = [os.path.getsize(p) for p in ds.list_shards()]
    assert max(sizes) <= maxsize, sizes
    assert labels(ds) == list(range(60))


def test_a_sample_larger_than_maxsize_gets_a_shard_of_its_own(tmp_path: Path) -> None:
    samples = [feature(0, n=10), feature(1, n=20_000), feature(2, n=10)]
    ds = atdata.write_samples(samples, tmp_path / "big.tar", maxsize=RECORD)
    assert [len(tar_members(p)) for p in ds.list_shards()] == [1, 1, 1]
    assert labels(ds) == [0, 1, 2]


def test_write_samples_writes_dict_samples(tmp_path: Path) -> None:
    samples = [DictSample(x=np.arange(3) + i, name=f"n{i}") for i in range(3)]
    ds = atdata.write_samples(samples, tmp_path / "dicts.tar")
    back = list(ds)
    assert [d.name for d in back] == ["n0", "n1", "n2"]
    assert all(np.array_equal(d.x, np.arange(3) + i) for i, d in enumerate(back))


def test_write_samples_refuses_mixed_types(tmp_path: Path) -> None:
    with pytest.raises(SampleError):
        atdata.write_samples([feature(0), Other(label=1)], tmp_path / "mixed.tar")


def test_write_samples_refuses_an_empty_iterable(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        atdata.write_samples([], tmp_path / "none.tar")


def test_written_members_hold_exactly_the_packed_samples(tmp_path: Path) -> None:
    samples = [feature(i) for i in range(6)]
    ds = atdata.write_samples(samples, tmp_path / "m.tar", maxcount=4)
    payloads = [p for shard in ds.list_shards() for p in tar_payloads(shard)]
    assert [data for _, data in payloads] == [s.packed for s in samples]
    keys = [name[: -len(".msgpack")] for name, _ in payloads]
    assert all(name.endswith(".msgpack") for name, _ in payloads)
    assert len(set(keys)) == 6 and all(k and "." not in k for k in keys)


def test_shard_writer_with_explicit_keys(tmp_path: Path) -> None:
    with atdata.ShardWriter(str(tmp_path / "k-%06d.tar"), maxcount=2) as writer:
        for i in range(3):
            assert writer.write(feature(i), key=f"sample_{i:03d}") == f"sample_{i:03d}"
    assert writer.shards == [str(tmp_path / f"k-{k:06d}.tar") for k in range(2)]
    names = [n for s in writer.shards for n, _ in tar_payloads(s)]
    assert names == ["sample_000.msgpack", "sample_001.msgpack", "sample_002.msgpack"]


@pytest.mark.parametrize("key", ["a.b", "", "x.msgpack"])
def test_shard_writer_refuses_keys_with_dots_or_empty(key: str, tmp_path: Path) -> None:
    with atdata.ShardWriter(str(tmp_path / "bad.tar")) as writer, pytest.raises(SampleError):
        writer.write(feature(0), key=key)


def test_shards_from_webdataset_tarwriter_read_the_same(tmp_path: Path) -> None:
    samples = [feature(i) for i in range(12)]
    ours = atdata.write_samples(samples, tmp_path / "ours.tar")
    theirs = tmp_path / "theirs.tar"
    with wds.writer.TarWriter(str(theirs)) as sink:
        for s in samples:
            sink.write(s.as_wds)
    a = list(ours)
    b = list(atdata.Dataset[Feature](str(theirs)))
    assert len(a) == len(b) == 12 and all(same(x, y) for x, y in zip(a, b))


def test_shards_from_webdataset_shardwriter_read_the_same(tmp_path: Path) -> None:
    samples = [feature(i) for i in range(25)]
    ours = atdata.write_samples(samples, tmp_path / "ours.tar", maxcount=10)
    with wds.ShardWriter(str(tmp_path / "wds-%06d.tar"), maxcount=10, verbose=0) as sink:
        for s in samples:
            sink.write(s.as_wds)
    theirs = atdata.Dataset[Feature](str(tmp_path / "wds-{000000..000002}.tar"))
    a, b = list(ours), list(theirs)
    assert len(a) == len(b) == 25 and all(same(x, y) for x, y in zip(a, b))
    batches_a = [bt.features for bt in ours.ordered(batch_size=8)]
    batches_b = [bt.features for bt in theirs.ordered(batch_size=8)]
    assert all(np.array_equal(x, y) for x, y in zip(batches_a, batches_b, strict=True))


def _write_in_child(directory: str) -> list[str]:
    ds = atdata.write_samples([feature(i) for i in range(50)], os.path.join(directory, "p.tar"))
    return [name for name, _ in tar_payloads(ds.list_shards()[0])]


def test_writer_keys_are_unique_across_processes(tmp_path: Path) -> None:
    dirs = [str(tmp_path / f"proc{i}") for i in range(6)]
    for d in dirs:
        os.makedirs(d)
    with multiprocessing.get_context("fork").Pool(3) as pool:
        results = pool.map(_write_in_child, dirs)
    names = [n for r in results for n in r] + _write_in_child(str(tmp_path))
    assert len(names) == 7 * 50
    assert len(set(names)) == len(names)


_KILLED_WRITER = """
import sys, time
import numpy as np
from numpy.typing import NDArray
import atdata

@atdata.packable
class Big:
    x: NDArray[np.uint8]

def samples():
    for i in range(10_000):
        if i == 25:  # mid-way through the third shard, with bytes of it on disk
            print("writing", flush=True)
            time.sleep(3600)
        yield Big(x=np.full(64 * 1024, i % 251, np.uint8))

atdata.write_samples(samples(), sys.argv[1], maxcount=10)
"""


def test_a_killed_writer_leaves_no_truncated_shard_under_a_shard_name(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    out = tmp_path / "out"
    out.mkdir()
    (out / "data-000002.tar").write_bytes(b"the previous run's shard")
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(out / "data.tar")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "writing\n"
        partial = [p for p in out.iterdir() if p.name.startswith(".")]
        assert len(partial) == 1 and partial[0].stat().st_size > 0  # bytes of shard 3 on disk
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    complete = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert complete == ["data-000000.tar", "data-000001.tar", "data-000002.tar"]
    assert (out / "data-000002.tar").read_bytes() == b"the previous run's shard"
    ds = atdata.Dataset[atdata.DictSample](
        [str(out / "data-000000.tar"), str(out / "data-000001.tar")]
    )
    assert len(list(ds)) == 20  # the two completed shards are whole


def test_a_failed_write_samples_leaves_no_shard(tmp_path: Path) -> None:
    def samples():
        for i in range(25):
            yield feature(i)
        raise RuntimeError("the producer failed")

    with pytest.raises(RuntimeError, match="producer failed"):
        atdata.write_samples(samples(), tmp_path / "data.tar", maxcount=10)
    assert list(tmp_path.iterdir()) == []


def test_shard_writer_discards_the_shard_being_written_on_an_exception(tmp_path: Path) -> None:
    writer = atdata.ShardWriter(str(tmp_path / "s-%06d.tar"), maxcount=2)
    with pytest.raises(RuntimeError), writer:
        for i in range(3):
            writer.write(feature(i))
        raise RuntimeError("stop")
    assert writer.shards == [str(tmp_path / "s-000000.tar")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s-000000.tar"]
    assert labels(atdata.Dataset[Feature](writer.shards)) == [0, 1]
