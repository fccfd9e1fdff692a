"""torchdata's StatefulDataLoader over ``to_torch()``: exact mid-epoch resume, across workers
and ranks; and worker items crossing to the main process intact."""

from __future__ import annotations

import collections
import logging
import pickle

import numpy as np
import pytest
import torch
from numpy.typing import NDArray
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader

import atdata

# torchdata 0.11 calls a torch function that torch 2.13 deprecates; nothing to act on here
pytestmark = pytest.mark.filterwarnings("ignore:'set_vital' is deprecated")


@atdata.packable
class Rec:
    x: NDArray[np.int64]
    i: int


@atdata.packable
class Mixed:
    image: NDArray[np.uint8]
    name: str
    score: float
    flag: bool
    note: str | None
    tags: list[str]


N = 103  # prime: never divides the world size
WORLD = 2


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> atdata.Dataset[Rec]:
    root = tmp_path_factory.mktemp("resume")
    return atdata.write_samples(
        (Rec(x=np.full(3, i, np.int64), i=i) for i in range(N)), root / "r.tar", maxcount=10
    )


def ids(batch: dict) -> list[int]:
    value = batch["i"]
    return [int(value)] if isinstance(value, int) else [int(v) for v in value]


def make(
    ds: atdata.Dataset[Rec], rank: int, workers: int, persistent: bool, batch_size: int | None
) -> tuple[atdata.torch_loader.TorchDataset, StatefulDataLoader]:
    tds = ds.to_torch(batch_size=batch_size, shuffle=True, seed=4, rank=rank, world_size=WORLD)
    loader = StatefulDataLoader(
        tds, batch_size=None, num_workers=workers, persistent_workers=persistent
    )
    return tds, loader


def epochs(tds, loader, first: int, count: int) -> list[list[int]]:
    out = []
    for epoch in range(first, first + count):
        tds.set_epoch(epoch)
        out.append([i for batch in loader for i in ids(batch)])
    return out


LAYOUTS = [(0, False), (1, False), (1, True), (2, False), (2, True)]


@pytest.mark.parametrize(("workers", "persistent"), LAYOUTS)
@pytest.mark.parametrize("batch_size", [None, 4])
def test_stateful_dataloader_resumes_exactly(
    ds: atdata.Dataset[Rec],
    workers: int,
    persistent: bool,
    batch_size: int | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: collections.Counter[int] = collections.Counter()
    per_rank = []
    for rank in range(WORLD):
        reference = epochs(*make(ds, rank, workers, persistent, batch_size), 0, 2)
        per_rank.append(len(reference[0]))
        seen.update(reference[0])
        for cut in (1, 7, len(reference[0]) // (batch_size or 1)):
            tds, loader = make(ds, rank, workers, persistent, batch_size)
            tds.set_epoch(0)
            it = iter(loader)
            head = [i for _ in range(cut) for i in ids(next(it))]
            state = pickle.loads(pickle.dumps(loader.state_dict()))
            del it, loader
            tds2, resumed = make(ds, rank, workers, persistent, batch_size)
            resumed.load_state_dict(state)
            with caplog.at_level(logging.WARNING):
                rest = epochs(tds2, resumed, 0, 2)
            assert "fast-forward" not in caplog.text  # the dataset's state is used, no replay
            assert head + rest[0] == reference[0], (rank, cut)  # the last cut: rest[0] == []
            assert rest[1] == reference[1]
    # across ranks: every sample once, equal counts (the documented padding aside)
    assert len(set(per_rank)) == 1 and per_rank[0] == -(-N // WORLD)
    assert set(seen) == set(range(N)) and sum(seen.values()) - N < WORLD


def test_dataset_state_is_the_stateful_protocol(ds: atdata.Dataset[Rec]) -> None:
    from torchdata.stateful_dataloader import Stateful

    tds = ds.to_torch(batch_size=4, shuffle=True, seed=1)
    assert isinstance(tds, Stateful)
    it = iter(tds)
    first = [next(it) for _ in range(3)]
    state = tds.state_dict()
    assert (state["epoch"], state["start"], state["chunks"]) == (0, 0, 3)
    again = ds.to_torch(batch_size=4, shuffle=True, seed=1)
    again.load_state_dict(state)
    whole = [ids(b) for b in ds.to_torch(batch_size=4, shuffle=True, seed=1)]
    assert [ids(b) for b in first] + [ids(b) for b in again] == whole
    assert tds.state_dict()["epoch"] == 0
    list(it)
    assert (tds.state_dict()["epoch"], tds.state_dict()["chunks"]) == (1, 0)


@pytest.mark.parametrize("workers", [0, 2])
def test_state_from_another_dataset_or_world_is_an_atdata_error(
    ds: atdata.Dataset[Rec], tmp_path, workers: int
) -> None:
    _, loader = make(ds, 0, workers, False, 4)
    it = iter(loader)
    next(it)
    state = loader.state_dict()
    del it
    bigger = ds.to_torch(batch_size=4, shuffle=True, seed=4, rank=0, world_size=3)
    other_ds = atdata.write_samples(
        [Rec(x=np.zeros(3, np.int64), i=0)] * 5, tmp_path / "o.tar", maxcount=10
    )
    other = other_ds.to_torch(batch_size=4, shuffle=True, seed=4, rank=0, world_size=WORLD)
    rank1 = ds.to_torch(batch_size=4, shuffle=True, seed=4, rank=1, world_size=WORLD)
    for target, message in (
        (bigger, "world_size=2"),
        (other, "another dataset"),
        (rank1, "rank=0"),
    ):
        resumed = StatefulDataLoader(target, batch_size=None, num_workers=workers)
        resumed.load_state_dict(state)
        with pytest.raises(atdata.ResumeStateError, match=message):
            next(iter(resumed))


def test_direct_state_checks(ds: atdata.Dataset[Rec]) -> None:
    tds = ds.to_torch(batch_size=4)
    state = tds.state_dict()
    with pytest.raises(atdata.ResumeStateError, match="version"):
        tds.load_state_dict({**state, "version": 99})
    with pytest.raises(atdata.ResumeStateError, match="batch_size=4"):
        ds.to_torch(batch_size=5).load_state_dict(state)
    moved = ds.to_torch(batch_size=4)
    moved.load_state_dict({**state, "chunks": 2, "worker": 1, "num_workers": 2})
    with pytest.raises(atdata.ResumeStateError, match="worker 1 of 2"):
        next(iter(moved))


def test_loader_state_resumes_with_another_number_of_workers(ds: atdata.Dataset[Rec]) -> None:
    whole = [i for b in ds.to_torch(batch_size=4, seed=2, shuffle=True).loader() for i in ids(b)]
    first = ds.to_torch(batch_size=4, seed=2, shuffle=True).loader(num_workers=2)
    it = iter(first)
    head = [i for _ in range(5) for i in ids(next(it))]
    state = first.state_dict()
    del it
    resumed = ds.to_torch(batch_size=4, seed=2, shuffle=True).loader(num_workers=0)
    resumed.load_state_dict(state)
    assert head + [i for b in resumed for i in ids(b)] == whole


# --------------------------------------------------------------------------- worker transfer


def mixed(i: int) -> Mixed:
    return Mixed(
        image=np.full((4, 5), i, np.uint8),
        name=f"sample-{i}" if i % 3 else f"échantillon-{i}-✓",
        score=i / 4,
        flag=bool(i % 2),
        note=None if i % 2 else f"n{i}",
        tags=[f"t{i}"] * (i % 3),
    )


@pytest.mark.parametrize("batch_size", [None, 3])
def test_worker_items_equal_main_process_items(tmp_path, batch_size: int | None) -> None:
    ds = atdata.write_samples((mixed(i) for i in range(20)), tmp_path / "m.tar", maxcount=8)
    expected = list(DataLoader(ds.to_torch(batch_size=batch_size), batch_size=None))
    got = list(DataLoader(ds.to_torch(batch_size=batch_size), batch_size=None, num_workers=2))
    assert len(got) == len(expected) > 0
    for a, b in zip(got, expected):
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(b[key], torch.Tensor):
                assert isinstance(a[key], torch.Tensor) and a[key].dtype == b[key].dtype
                assert torch.equal(a[key], b[key]), key
            else:
                assert a[key] == b[key], key
    image = got[0]["image"]
    image += 1  # owned and writable in the main process
    assert got[0]["name"] == (
        ["échantillon-0-✓", "sample-1", "sample-2"] if batch_size else "échantillon-0-✓"
    )


def test_large_arrays_cross_from_the_mapped_shard(tmp_path) -> None:
    @atdata.packable
    class Big:
        a: NDArray[np.float32]
        k: int

    samples = [Big(a=np.full((64, 1024), i, np.float32), k=i) for i in range(12)]
    ds = atdata.write_samples(samples, tmp_path / "b.tar", maxcount=5)
    for batch_size in (None, 4):
        loader = DataLoader(ds.to_torch(batch_size=batch_size), batch_size=None, num_workers=2)
        got = list(loader)
        arrays = [got_a for b in got for got_a in (b["a"] if batch_size else [b["a"]])]
        assert [int(a[0, 0]) for a in arrays] == list(range(12))
        assert all(a.shape == (64, 1024) and bool((a == a[0, 0]).all()) for a in arrays)


def _with_size(item: object) -> tuple[object, int]:
    """A worker-side collate_fn: the item and the size of its pickled form."""
    return item, len(pickle.dumps(item))


def test_worker_batches_of_mapped_arrays_pickle_small(tmp_path) -> None:
    @atdata.packable
    class Big:
        a: NDArray[np.float32]
        name: str

    samples = [Big(a=np.full((64, 1024), i, np.float32), name=f"s{i}") for i in range(16)]
    ds = atdata.write_samples(samples, tmp_path / "b.tar", maxcount=5)
    loader = DataLoader(
        ds.to_torch(batch_size=8), batch_size=None, num_workers=2, collate_fn=_with_size
    )
    got = list(loader)
    assert [b["name"] for b, _ in got] == [[f"s{i}" for i in range(j, j + 8)] for j in (0, 8)]
    assert all(b["a"].shape == (8, 64, 1024) for b, _ in got)
    # 2 MiB of arrays per batch travel as their places in the shard files
    assert all(size < 4096 for _, size in got), [size for _, size in got]
