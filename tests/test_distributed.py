"""Distributed iteration: exactly once per epoch, equal counts per rank, resume, random access."""

from __future__ import annotations

import collections
import pickle

import numpy as np
import pytest
from numpy.typing import NDArray

import atdata
from atdata.distributed import EpochPlan


@atdata.packable
class Rec:
    x: NDArray[np.int64]
    i: int


N = 103  # prime: never divides the world size


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> atdata.Dataset[Rec]:
    root = tmp_path_factory.mktemp("dist")
    return atdata.write_samples(
        (Rec(x=np.full(3, i, np.int64), i=i) for i in range(N)), root / "r.tar", maxcount=10
    )


def ids_of(loader) -> list[int]:
    return [int(v) for batch in loader for v in batch["i"]]


def test_random_access_and_len(ds: atdata.Dataset[Rec]) -> None:
    assert len(ds) == N
    assert [ds[k].i for k in (0, 9, 10, 57, N - 1, -1)] == [0, 9, 10, 57, N - 1, N - 1]
    assert np.array_equal(ds[57].x, np.full(3, 57))
    key = ds.shard_index(ds.list_shards()[4]).keys[3]
    assert ds.get(key).i == 43
    with pytest.raises(IndexError):
        ds[N]
    with pytest.raises(KeyError, match="no sample with key"):
        ds.get("nope")


def test_plan_is_a_permutation_and_deterministic() -> None:
    counts = (10, 7, 0, 13)
    a = EpochPlan(counts, seed=5, epoch=2, shuffle=True).global_order()
    b = EpochPlan(counts, seed=5, epoch=2, shuffle=True).global_order()
    c = EpochPlan(counts, seed=5, epoch=3, shuffle=True).global_order()
    assert sorted(a.tolist()) == list(range(30))
    assert a.tolist() == b.tolist()
    assert a.tolist() != c.tolist()


@pytest.mark.parametrize("world", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("drop_last", [False, True])
def test_every_sample_once_and_equal_counts(
    ds: atdata.Dataset[Rec], world: int, drop_last: bool
) -> None:
    seen: collections.Counter[int] = collections.Counter()
    per_rank = []
    for rank in range(world):
        tds = ds.to_torch(
            batch_size=4, shuffle=True, seed=11, drop_last=drop_last, rank=rank, world_size=world
        )
        got = ids_of(tds.loader(num_workers=0))
        per_rank.append(len(got))
        seen.update(got)
    assert len(set(per_rank)) == 1, per_rank
    if drop_last:
        assert per_rank[0] == N // world
        assert sum(seen.values()) == len(seen) == (N // world) * world  # nothing repeated
    else:
        assert per_rank[0] == -(-N // world)
        assert set(seen) == set(range(N))  # every sample at least once
        repeats = sum(seen.values()) - N
        assert repeats == per_rank[0] * world - N < world  # only the documented padding


@pytest.mark.parametrize("batch_size", [None, 5])
def test_order_same_for_any_number_of_workers(
    ds: atdata.Dataset[Rec], batch_size: int | None
) -> None:
    orders = []
    for workers in (0, 1, 2):
        tds = ds.to_torch(batch_size=batch_size, shuffle=True, seed=2, rank=1, world_size=2)
        loader = tds.loader(num_workers=workers)
        orders.append([int(b["i"]) for b in loader] if batch_size is None else ids_of(loader))
    assert all(o == orders[0] for o in orders)


def test_epochs_differ_and_repeat_per_seed(ds: atdata.Dataset[Rec]) -> None:
    loader = ds.to_torch(batch_size=8, shuffle=True, seed=9).loader(num_workers=2)
    e0, e1 = ids_of(loader), ids_of(loader)
    again = ds.to_torch(batch_size=8, shuffle=True, seed=9).loader(num_workers=0)
    assert e0 != e1
    assert ids_of(again) == e0 and ids_of(again) == e1


@pytest.mark.parametrize("persistent", [False, True])
def test_resume_equals_uninterrupted(ds: atdata.Dataset[Rec], persistent: bool) -> None:
    reference = ds.to_torch(batch_size=8, shuffle=True, seed=3).loader(num_workers=2)
    epoch0, epoch1 = ids_of(reference), ids_of(reference)

    first = ds.to_torch(batch_size=8, shuffle=True, seed=3).loader(num_workers=2)
    it = iter(first)
    head = [int(v) for _ in range(5) for v in next(it)["i"]]
    state = pickle.loads(pickle.dumps(first.state_dict()))
    assert state["epoch"] == 0 and state["position"] == 40

    resumed = ds.to_torch(batch_size=8, shuffle=True, seed=3).loader(
        num_workers=2, persistent_workers=persistent
    )
    resumed.load_state_dict(state)
    assert head + ids_of(resumed) == epoch0
    assert ids_of(resumed) == epoch1  # the following epoch continues the same schedule


def test_state_from_another_dataset_or_world_is_refused(ds: atdata.Dataset[Rec], tmp_path) -> None:
    state = ds.to_torch(batch_size=8, world_size=2, rank=0).loader().state_dict()
    with pytest.raises(ValueError, match="world_size=2"):
        ds.to_torch(batch_size=8, world_size=4, rank=0).loader().load_state_dict(state)
    other = atdata.write_samples([Rec(x=np.zeros(3, np.int64), i=0)] * 5, tmp_path / "o.tar")
    with pytest.raises(ValueError, match="another dataset"):
        other.to_torch(batch_size=8, world_size=2, rank=0).loader().load_state_dict(state)


def test_rank_and_world_from_environment(
    ds: atdata.Dataset[Rec], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "3")
    tds = ds.to_torch(batch_size=None)
    assert (tds.rank, tds.world_size) == (2, 3)
    explicit = ds.to_torch(batch_size=None, rank=2, world_size=3)
    assert [int(b["i"]) for b in tds.loader()] == [int(b["i"]) for b in explicit.loader()]


def test_batches_are_tensors(ds: atdata.Dataset[Rec]) -> None:
    import torch

    batch = next(iter(ds.to_torch(batch_size=6).loader(num_workers=0)))
    assert isinstance(batch["x"], torch.Tensor) and batch["x"].shape == (6, 3)
    assert batch["i"].tolist() == [0, 1, 2, 3, 4, 5]
    assert torch.equal(batch["x"][:, 0], batch["i"])
