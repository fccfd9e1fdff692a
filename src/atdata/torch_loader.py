"""PyTorch adapter: an ``IterableDataset`` for DDP ranks and DataLoader workers, with resume.

``ds.to_torch(batch_size=32, shuffle=True)`` gives a :class:`TorchDataset`. It is
``Stateful`` in torchdata's protocol (``state_dict()`` / ``load_state_dict()``), so
``torchdata.stateful_dataloader.StatefulDataLoader`` resumes it mid-epoch at the next
unseen sample, with or without workers, reading nothing twice. ``.loader(num_workers=2)``
gives a :class:`Loader` (a plain ``DataLoader``) with a per-rank state that needs no
torchdata and can resume with another number of workers. Items are dicts: array fields
as tensors of shape ``(B, ...)``, numeric fields as tensors, other fields as lists (one
sample per item when ``batch_size`` is None). The epoch plan is
:class:`atdata.distributed.EpochPlan`.

>>> import atdata, tempfile
>>> import numpy as np
>>> @atdata.packable
... class Point:
...     xy: np.ndarray
...     label: int
>>> out = tempfile.mkdtemp()
>>> ds = atdata.write_samples([Point(np.full(2, i, np.float32), i) for i in range(10)], f"{out}/p.tar")
>>> loader = ds.to_torch(batch_size=4, rank=0, world_size=1).loader()
>>> [tuple(batch["xy"].shape) for batch in loader]
[(4, 2), (4, 2), (2, 2)]
>>> state = loader.state_dict()  # any time, also mid-epoch; load_state_dict() resumes
>>> state["epoch"], state["position"]
(1, 0)

With ``torchdata``, ``StatefulDataLoader(ds.to_torch(batch_size=32, shuffle=True),
batch_size=None, num_workers=2, persistent_workers=True)`` resumes the same way.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from atdata._torch_transfer import pack_batch, pack_sample
from atdata.batch import SampleBatch
from atdata.distributed import EpochPlan, fingerprint
from atdata.errors import ResumeStateError
from atdata.sample import fields_of, is_packable

if TYPE_CHECKING:
    from atdata.dataset import Dataset

__all__ = ["Loader", "TorchDataset"]

STATE_VERSION = 1  # the Loader's state (rank level)
DATASET_STATE_VERSION = 2  # TorchDataset.state_dict (one worker's progress)
_RUN_KEYS = ("world_size", "rank", "seed", "shuffle", "drop_last", "batch_size", "block_shards")


def _world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _to_torch(fields: dict[str, Any], batched: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, np.ndarray) and value.dtype.kind in "biufc":
            out[name] = torch.from_numpy(value if value.flags.writeable else value.copy())
        elif batched and value:
            kinds = {type(v) for v in value}
            if kinds == {int}:  # what torch.tensor makes of ints, without its per-item walk
                out[name] = torch.from_numpy(np.array(value, dtype=np.int64))
            elif kinds <= {bool, int, float}:
                out[name] = torch.tensor(value)
            else:
                out[name] = value
        else:
            out[name] = value
    return out


def _identity(item: Any) -> Any:
    return item


class TorchDataset(IterableDataset[dict[str, Any]]):
    """Reads one rank's share of an epoch, split across DataLoader workers.

    Use ``batch_size=None`` in the ``DataLoader`` (batching happens here), or
    :meth:`loader`. With a plain ``DataLoader`` or ``StatefulDataLoader`` and
    workers that are not persistent, call :meth:`set_epoch` before each epoch
    (without workers, or with persistent ones, epochs advance by themselves).

    ``state_dict()`` / ``load_state_dict()`` follow torchdata's ``Stateful``
    protocol: the state is where this process (a worker, or the main process
    without workers) stands in the epoch. A state from another dataset, world
    size, rank or worker layout raises :class:`~atdata.ResumeStateError`.
    """

    def __init__(
        self,
        dataset: Dataset[Any],
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
        self.dataset: Dataset[Any] = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.block_shards = block_shards
        self.world_size: int = default_world if world_size is None else world_size
        self.rank: int = default_rank if rank is None else rank
        self.counts: tuple[int, ...] = dataset.sample_counts()
        self.fingerprint: str = fingerprint(dataset.list_shards(), self.counts)
        self._epoch_state: tuple[int, int] = (0, 0)  # (epoch, start position) of the next iteration
        # (epoch, start, chunks read) of the running iteration, or of the next one to resume
        self._progress: tuple[int, int, int] | None = None
        self._resume: dict[str, Any] | None = None
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
        self._progress = None

    @property
    def samples_per_epoch(self) -> int:
        """Samples this rank reads each epoch."""
        return self.plan(0).per_rank

    def __len__(self) -> int:
        n = self.samples_per_epoch
        return n if self.batch_size is None else -(-n // self.batch_size)

    # ------------------------------------------------------------------ torchdata's Stateful

    def state_dict(self) -> dict[str, Any]:
        """Where this process stands: the epoch, its start, and the chunks this worker has read."""
        worker, workers = _worker()
        if self._resume is not None:
            return dict(self._resume)
        epoch, start, done = self._progress or (*self._epoch_state, 0)
        return {
            "version": DATASET_STATE_VERSION,
            "fingerprint": self.fingerprint,
            **{key: getattr(self, key) for key in _RUN_KEYS},
            "epoch": epoch,
            "start": start,
            "worker": worker,
            "num_workers": workers,
            "chunks": done,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state`` at the next iteration (checked against this dataset)."""
        if state.get("version") != DATASET_STATE_VERSION:
            raise ResumeStateError(
                f"unknown atdata TorchDataset state version {state.get('version')!r}"
            )
        _check_run(state, self)
        self._resume = dict(state)
        self._progress = None

    # ------------------------------------------------------------------ iteration

    def __iter__(self) -> Iterator[Any]:
        worker, workers = _worker()
        plan, start, done = self._begin(worker, workers)
        return self._read(plan, start, done, worker, workers)

    def _begin(self, worker: int, workers: int) -> tuple[EpochPlan, int, int]:
        """Which iteration to run now: a loaded state, else the next epoch from its start."""
        resume, self._resume = self._resume, None
        if resume is not None:
            epoch, start, done = int(resume["epoch"]), int(resume["start"]), int(resume["chunks"])
            if done and (resume["worker"], resume["num_workers"]) != (worker, workers):
                raise ResumeStateError(
                    f"this state is worker {resume['worker']} of {resume['num_workers']}, "
                    f"loaded into worker {worker} of {workers}; resume with "
                    f"num_workers={resume['num_workers'] if resume['num_workers'] > 1 else 0}"
                )
        else:
            (epoch, start), done = self._epoch_state, 0
        self._epoch_state = (epoch + 1, 0)  # persistent workers advance on their own
        self._progress = (epoch, start, done)
        return self.plan(epoch), start, done

    def _read(
        self, plan: EpochPlan, start: int, done: int, worker: int, workers: int
    ) -> Iterator[Any]:
        chunk = self.batch_size or 1
        ids = plan.rank_ids()[start:]
        first = (worker + done * workers) * chunk
        step = workers * chunk
        self._announce(plan, [ids[i : i + chunk] for i in range(first, len(ids), step)])
        read = self.dataset.reader.read_samples
        batched = self.batch_size is not None
        in_worker = get_worker_info() is not None
        sample_type = self.dataset.sample_type
        epoch = plan.epoch
        for i in range(first, len(ids), step):
            shards, local = plan.locate(ids[i : i + chunk])
            samples = read(shards.tolist(), local.tolist(), copy=not batched and not in_worker)
            done += 1
            self._progress = (epoch, start, done)
            if in_worker:  # cross to the main process as flat buffers, not per-tensor segments
                regions = self.dataset.reader.mapped_regions().values()
                spans = {r[0]: r for r in regions}
                if batched:
                    yield pack_batch(_gathered(samples), spans)
                else:
                    yield pack_sample(_fields(samples[0]), spans)
            elif batched:
                yield _to_torch(SampleBatch(samples, sample_type).to_dict(), True)
            else:
                yield _to_torch(_fields(samples[0]), False)
        self._progress = (epoch + 1, 0, 0)

    def _announce(self, plan: EpochPlan, chunks: list[np.ndarray]) -> None:
        """Tell the dataset which shards this worker reads, in order, so remote ones download ahead."""
        if not chunks:
            return
        shards, _ = plan.locate(np.concatenate(chunks))
        order = list(dict.fromkeys(shards.tolist()))
        names = self.dataset.list_shards()
        self.dataset.reader.prefetch([names[p] for p in order])

    def loader(self, **kwargs: Any) -> Loader:
        """A :class:`Loader` over this dataset; keyword arguments go to ``DataLoader``."""
        return Loader(self, **kwargs)


def _worker() -> tuple[int, int]:
    info = get_worker_info()
    return (info.id, info.num_workers) if info is not None else (0, 1)


def _fields(sample: Any) -> dict[str, Any]:
    return sample.to_dict() if hasattr(sample, "to_dict") else dict(sample.__dict__)


def _gathered(samples: list[Any]) -> dict[str, list[Any]]:
    """Field name -> the values of every sample, in order (no stacking yet)."""
    if samples and is_packable(type(samples[0])):
        names = [spec.name for spec in fields_of(type(samples[0]))]
        rows = [s.__dict__ for s in samples]
        return {name: [row[name] for row in rows] for name in names}
    dicts = [_fields(s) for s in samples]
    seen: dict[str, None] = {}
    for row in dicts:
        seen.update(dict.fromkeys(row))
    return {name: [row.get(name) for row in dicts] for name in seen}


def _check_run(state: Mapping[str, Any], ds: TorchDataset) -> None:
    """Refuse a state saved for another dataset or another way of splitting it."""
    if state.get("fingerprint") != ds.fingerprint:
        raise ResumeStateError(
            "this loader state belongs to another dataset (shards or sample counts differ); "
            "resuming would read the wrong samples"
        )
    for key in _RUN_KEYS:
        if key in state and state[key] != getattr(ds, key):
            raise ResumeStateError(
                f"this loader state was saved with {key}={state[key]!r}, the dataset has "
                f"{key}={getattr(ds, key)!r}; the order would differ"
            )


class Loader(DataLoader[dict[str, Any]]):
    """A ``DataLoader`` that knows where its rank is in the epoch, for checkpoints.

    What it adds over ``StatefulDataLoader``: no torchdata needed; one small
    state per rank (epoch and position) that resumes with any number of
    workers (torchdata's state is per worker, so the worker count must match);
    and epochs advance by themselves with non-persistent workers, without
    :meth:`TorchDataset.set_epoch`. ``state_dict()`` can be taken at any time;
    ``load_state_dict()`` must be called before iterating (with persistent
    workers, before the first epoch). A state from another dataset, world size
    or rank raises :class:`~atdata.ResumeStateError`.
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
        ds._epoch_state, ds._resume = (epoch, start), None
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
            "block_shards": ds.block_shards,
            "epoch": epoch,
            "position": position,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state`` at the next iteration."""
        ds: TorchDataset = self.dataset  # type: ignore[assignment]
        if state.get("version") != STATE_VERSION:
            raise ResumeStateError(f"unknown atdata Loader state version {state.get('version')!r}")
        _check_run(state, ds)
        if self._started and self.persistent_workers:
            raise RuntimeError("load_state_dict must be called before the persistent workers start")
        self._next = (int(state["epoch"]), int(state["position"]))
        self._current = None
