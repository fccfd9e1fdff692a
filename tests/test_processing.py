"""map_dataset / Dataset.map_shards: local processes and a real Dask cluster give the same
dataset, one output shard per input shard, and a rerun skips the shards already done."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import atdata
from atdata.cache import ShardCache
from atdata.processing import map_dataset


@atdata.packable
class Reading:
    values: NDArray[np.float32]
    station: str


@atdata.packable
class Summary:
    mean: float
    station: str


def summarize(r: Reading) -> Summary:
    return Summary(mean=float(r.values.mean()), station=r.station)


def keep_even(r: Reading) -> Reading | None:
    return r if int(r.station[1:]) % 2 == 0 else None


def fails_on_seven(r: Reading) -> Summary:
    if r.station == "s7":
        raise ZeroDivisionError("bad reading")
    return summarize(r)


to_summary = atdata.Lens(summarize)


def readings(n: int) -> Iterator[Reading]:
    for i in range(n):
        yield Reading(values=np.arange(i, i + 8, dtype=np.float32), station=f"s{i}")


@pytest.fixture
def source(tmp_path: Path) -> atdata.Dataset[Reading]:
    written = atdata.write_samples(readings(24), tmp_path / "in" / "data.tar", maxcount=4)
    return atdata.Dataset[Reading](written.list_shards())


def contents(ds: atdata.Dataset[Any]) -> list[tuple[str, float]]:
    return [(s.station, s.mean) for s in ds]


EXPECTED = [(f"s{i}", i + 3.5) for i in range(24)]


@pytest.mark.parametrize("workers", [0, 2])
def test_local_engine_maps_every_sample(
    source: atdata.Dataset[Reading], tmp_path: Path, workers: int
) -> None:
    out = map_dataset(source, summarize, str(tmp_path / "out" / "s-%03d.tar"), num_workers=workers)
    assert type(out) is atdata.Dataset[Summary]
    assert out.list_shards() == [str(tmp_path / "out" / f"s-{i:03d}.tar") for i in range(6)]
    assert contents(out) == EXPECTED
    assert not list((tmp_path / "out").glob("*.part*"))


def test_keys_are_kept_and_a_lens_works_like_a_function(
    source: atdata.Dataset[Reading], tmp_path: Path
) -> None:
    out = source.map_shards(to_summary, str(tmp_path / "lens-%d.tar"), num_workers=0)
    assert type(out) is atdata.Dataset[Summary]
    assert contents(out) == EXPECTED
    keys_in = [k for s in source.list_shards() for _, k, _ in source.reader.payloads(s)]
    keys_out = [k for s in out.list_shards() for _, k, _ in out.reader.payloads(s)]
    assert keys_in == keys_out


def test_dask_engine_gives_the_same_dataset_as_local_processes(
    source: atdata.Dataset[Reading], tmp_path: Path
) -> None:
    import distributed  # the dask extra, installed with dev

    local = map_dataset(source, summarize, str(tmp_path / "local" / "s-%03d.tar"), num_workers=2)
    with (
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        remote = source.map_shards(
            summarize, str(tmp_path / "dask" / "s-%03d.tar"), engine="dask", client=client
        )
        ran_on = client.run(os.getpid)
    assert len(set(ran_on.values()) - {os.getpid()}) == 2  # two worker processes
    assert type(remote) is type(local)
    assert contents(remote) == contents(local) == EXPECTED
    for a, b in zip(local.list_shards(), remote.list_shards(), strict=True):
        assert Path(a).read_bytes() == Path(b).read_bytes()  # byte for byte


def test_a_rerun_skips_finished_shards(source: atdata.Dataset[Reading], tmp_path: Path) -> None:
    pattern = str(tmp_path / "out" / "s-%03d.tar")
    map_dataset(source, summarize, pattern, num_workers=0)
    Path(pattern % 4).unlink()  # as if the first run stopped before shard 4 finished
    Path(pattern % 4 + ".deadbeef.part000").write_bytes(b"partial")  # and left a part behind
    mtimes = {i: os.stat(pattern % i).st_mtime_ns for i in range(6) if i != 4}
    seen: list[str] = []

    def counting(r: Reading) -> Summary:
        seen.append(r.station)
        return summarize(r)

    out = map_dataset(source, counting, pattern, num_workers=0)
    assert seen == ["s16", "s17", "s18", "s19"]  # only input shard 4 ran again
    assert {i: os.stat(pattern % i).st_mtime_ns for i in mtimes} == mtimes
    assert type(out) is atdata.Dataset[Summary]
    assert contents(out) == EXPECTED


def test_maxcount_splits_and_none_drops(source: atdata.Dataset[Reading], tmp_path: Path) -> None:
    pattern = str(tmp_path / "odd" / "s-%03d.tar")
    out = map_dataset(source, keep_even, pattern, maxcount=1, num_workers=0)
    names = [Path(p).name for p in out.list_shards()]
    assert names[:3] == ["s-000.tar", "s-000-001.tar", "s-001.tar"]
    assert [s.station for s in out] == [f"s{i}" for i in range(0, 24, 2)]
    again = map_dataset(source, keep_even, pattern, maxcount=1, num_workers=0)
    assert again.list_shards() == out.list_shards()  # the resumed run finds every piece


def test_an_empty_result_is_an_empty_shard(source: atdata.Dataset[Reading], tmp_path: Path) -> None:
    out = map_dataset(source, lambda r: None, str(tmp_path / "none-%d.tar"), num_workers=0)
    assert len(out.list_shards()) == 6 and list(out) == []


def test_an_error_names_the_sample_and_the_shard(
    source: atdata.Dataset[Reading], tmp_path: Path
) -> None:
    with pytest.raises(ZeroDivisionError) as info:
        map_dataset(source, fails_on_seven, str(tmp_path / "e-%d.tar"), num_workers=2)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "of shard" in notes and source.list_shards()[1] in notes
    assert not Path(tmp_path / "e-1.tar").exists()  # the failed shard is not marked done


def test_bad_arguments(source: atdata.Dataset[Reading], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="placeholder"):
        map_dataset(source, summarize, str(tmp_path / "out.tar"))
    with pytest.raises(ValueError, match="engine"):
        map_dataset(source, summarize, str(tmp_path / "o-%d.tar"), engine="ray")  # type: ignore[arg-type]


def test_remote_shards_are_read_through_the_cache_in_worker_processes(
    s3_client: Any, s3_bucket: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    written = atdata.write_samples(readings(12), tmp_path / "in" / "data.tar", maxcount=4)
    urls = []
    for shard in written.list_shards():
        s3_client.upload_file(shard, s3_bucket, Path(shard).name)
        urls.append(f"s3://{s3_bucket}/{Path(shard).name}")
    cache = ShardCache(tmp_path / "cache")
    ds = atdata.Dataset[Reading](urls, credentials=s3_env, cache=cache)
    out = ds.map_shards(summarize, str(tmp_path / "out" / "s-%d.tar"), num_workers=2)
    assert contents(out) == EXPECTED[:12]
    assert all(u in cache for u in urls)
