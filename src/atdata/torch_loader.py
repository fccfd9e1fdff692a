"""PyTorch adapter: an ``IterableDataset`` for DDP ranks and DataLoader workers, with resume.

``ds.to_torch(batch_size=32, shuffle=True)`` gives a :class:`TorchDataset`;
``.loader(num_workers=2)`` gives a :class:`Loader` (a ``DataLoader``) whose
``state_dict()`` / ``load_state_dict()`` resume mid-epoch at the next unseen
sample. Items are dicts: array fields as tensors of shape ``(B, ...)``,
numeric fields as tensors, other fields as lists (one sample per item when
``batch_size`` is None). The epoch plan is :class:`atdata.distributed.EpochPlan`.

>>> # loader = ds.to_torch(batch_size=32, shuffle=True, seed=0).loader(num_workers=2)
>>> # for epoch in range(3):
>>> #     for batch in loader: ...
>>> #     torch.save(loader.state_dict(), "loader.pt")   # any time, also mid-epoch
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from atdata.batch import SampleBatch
from atdata.distributed import EpochPlan, fingerprint

__all__ = ["Loader", "TorchDataset"]

STATE_VERSION = 1


def _world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _to_torch(fields: dict[str, Any], batched: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, np.ndarray) and value.dtype.kind in "biufc":
            out[name] = torch.from_numpy(value if value.flags.writeable else value.copy())
        elif batched and value and all(isinstance(v, bool | int | float) for v in value):
            out[name] = torch.tensor(value)
        else:
            out[name] = value
    return out


def _identity(item: Any) -> Any:
    return item


class TorchDataset(IterableDataset):  # type: ignore[type-arg]
    """Reads one rank's share of an epoch, split across DataLoader workers.

    Use ``batch_size=None`` in a plain ``DataLoader`` (batching happens here),
    or :meth:`loader`. Call :meth:`set_epoch` before each epoch when you use
    a plain ``DataLoader`` without persistent workers.
    """

    def __init__(
        self,
        dataset: Any,
        *,
        batch_size: int | None = None,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        block_shards: int = 4,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        default_rank, default_world = _world()
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.block_shards = block_shards
        self.world_size = default_world if world_size is None else world_size
        self.rank = default_rank if rank is None else rank
        self.counts: tuple[int, ...] = dataset.sample_counts()
        self.fingerprint = fingerprint(dataset.list_shards(), self.counts)
        self._epoch_state = (0, 0)  # (epoch, start position) of the next iteration
        self.plan(0)  # validates rank and world size now

    def plan(self, epoch: int) -> EpochPlan:
        """The epoch plan of this rank."""
        return EpochPlan(
            self.counts,
            seed=self.seed,
            epoch=epoch,
            shuffle=self.shuffle,
            world_size=self.world_size,
            rank=self.rank,
            drop_last=self.drop_last,
            block_shards=self.block_shards,
        )

    def set_epoch(self, epoch: int) -> None:
        """Start the next iteration at the beginning of ``epoch``."""
        self._epoch_state = (epoch, 0)

    @property
    def samples_per_epoch(self) -> int:
        """Samples this rank reads each epoch."""
        return self.plan(0).per_rank

    def __len__(self) -> int:
        n = self.samples_per_epoch
        return n if self.batch_size is None else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        epoch, start = self._epoch_state
        self._epoch_state = (epoch + 1, 0)  # persistent workers advance on their own
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        plan = self.plan(epoch)
        chunk = self.batch_size or 1
        read = self.dataset.read_samples
        batched = self.batch_size is not None
        chunks = plan.worker_chunks(worker, workers, chunk, start)
        self._announce(plan, chunks)
        for ids in chunks:
            shards, local = plan.locate(ids)
            samples = read(shards.tolist(), local.tolist(), copy=not batched)
            if batched:
                batch = SampleBatch(samples, self.dataset.sample_type)
                yield _to_torch(batch.to_dict(), True)
            else:
                sample = samples[0]
                fields = sample.to_dict() if hasattr(sample, "to_dict") else dict(sample.__dict__)
                yield _to_torch(fields, False)

    def _announce(self, plan: EpochPlan, chunks: list[np.ndarray]) -> None:
        """Tell the dataset which shards this worker reads, in order, so remote ones download ahead."""
        if not chunks:
            return
        shards, _ = plan.locate(np.concatenate(chunks))
        order = list(dict.fromkeys(shards.tolist()))
        names = self.dataset.list_shards()
        self.dataset._prefetch_order([names[p] for p in order])

    def loader(self, **kwargs: Any) -> Loader:
        """A :class:`Loader` over this dataset; keyword arguments go to ``DataLoader``."""
        return Loader(self, **kwargs)


class Loader(DataLoader):  # type: ignore[type-arg]
    """A ``DataLoader`` that knows where it is in the epoch, for checkpoints.

    ``state_dict()`` can be taken at any time; ``load_state_dict()`` must be
    called before iterating (with persistent workers, before the first epoch).
    A state from another dataset or world size is refused.
    """

    def __init__(self, dataset: TorchDataset, **kwargs: Any) -> None:
        if kwargs.get("batch_size") is not None:
            raise ValueError(
                "batching happens in the dataset: pass batch_size to to_torch(), not to the loader"
            )
        kwargs["batch_size"] = None
        # items are already tensors and lists: skip torch's per-element default_convert
        kwargs.setdefault("collate_fn", _identity)
        super().__init__(dataset, **kwargs)
        self._next = (0, 0)
        self._current: tuple[int, int] | None = None
        self._consumed = 0
        self._started = False

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        epoch, start = self._next
        ds: TorchDataset = self.dataset  # type: ignore[assignment]
        ds._epoch_state = (epoch, start)
        self._next = (epoch + 1, 0)
        self._current, self._consumed, self._started = (epoch, start), 0, True
        batched = ds.batch_size is not None
        for item in super().__iter__():
            self._consumed += len(next(iter(item.values()))) if batched and item else 1
            yield item
        self._current = None

    def state_dict(self) -> dict[str, Any]:
        """Where the next sample of this rank is: epoch and position, plus what identifies the run."""
        ds: TorchDataset = self.dataset  # type: ignore[assignment]
        epoch, position = (
            (self._current[0], self._current[1] + self._consumed) if self._current else self._next
        )
        if position >= ds.samples_per_epoch:
            epoch, position = epoch + 1, 0
        return {
            "version": STATE_VERSION,
            "fingerprint": ds.fingerprint,
            "world_size": ds.world_size,
            "rank": ds.rank,
            "seed": ds.seed,
            "shuffle": ds.shuffle,
            "drop_last": ds.drop_last,
            "batch_size": ds.batch_size,
            "epoch": epoch,
            "position": position,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` at the next iteration."""
        ds: TorchDataset = self.dataset  # type: ignore[assignment]
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unknown loader state version {state.get('version')!r}")
        if state["fingerprint"] != ds.fingerprint:
            raise ValueError(
                "this loader state belongs to another dataset (shards or sample counts differ); "
                "resuming would read the wrong samples"
            )
        for key in ("world_size", "seed", "shuffle", "drop_last", "batch_size"):
            if state[key] != getattr(ds, key):
                raise ValueError(
                    f"this loader state was saved with {key}={state[key]!r}, the loader has "
                    f"{key}={getattr(ds, key)!r}; the order would differ"
                )
        if self._started and self.persistent_workers:
            raise RuntimeError("load_state_dict must be called before the persistent workers start")
        self._next = (int(state["epoch"]), int(state["position"]))
        self._current = None
