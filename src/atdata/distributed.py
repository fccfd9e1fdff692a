"""Deterministic epoch plans: which sample each rank and worker reads, in which order.

Pure Python and NumPy (no torch, no shared memory): every process computes
the same plan from ``(seed, epoch, world_size)`` and the per-shard sample
counts, so ranks and workers agree without talking to each other.

Rules, documented for users:

* each epoch visits every sample exactly once across all ranks;
* every rank gets ``ceil(N / world_size)`` samples: when ``N`` does not divide,
  the first few samples of the epoch's order are repeated to fill the last
  ranks (``drop_last=True`` instead drops the remainder, ``floor(N / world_size)``);
* a rank's sequence is cut into chunks of ``batch_size`` samples and worker
  ``w`` of ``W`` reads chunks ``w, w + W, ...``, which PyTorch's DataLoader
  yields round robin, so the order seen by training is the same for any
  number of workers;
* with ``shuffle=True`` the shard order is permuted, and samples are permuted
  within consecutive blocks of ``block_shards`` shards (good mixing, while
  each worker only reads a few shards at a time).

>>> plan = EpochPlan(counts=(3, 2), world_size=2, rank=1)
>>> plan.rank_ids().tolist()
[3, 4, 0]
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

__all__ = ["EpochPlan", "fingerprint"]


def fingerprint(shards: list[str], counts: tuple[int, ...]) -> str:
    """A short digest identifying a dataset by its shard ids and sample counts."""
    h = hashlib.sha256()
    for shard, n in zip(shards, counts):
        h.update(shard.encode() + b"\0" + str(n).encode() + b"\n")
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class EpochPlan:
    """The order of one epoch for one rank, as global sample ids.

    A global sample id counts samples shard by shard in dataset order:
    shard ``s``, sample ``i`` is ``sum(counts[:s]) + i``.
    """

    counts: tuple[int, ...]
    seed: int = 0
    epoch: int = 0
    shuffle: bool = False
    world_size: int = 1
    rank: int = 0
    drop_last: bool = False
    block_shards: int = 4

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is not in a world of size {self.world_size}")

    @property
    def total(self) -> int:
        """Samples in the dataset."""
        return int(sum(self.counts))

    @property
    def per_rank(self) -> int:
        """Samples each rank reads this epoch."""
        n, w = self.total, self.world_size
        return n // w if self.drop_last else -(-n // w)

    def global_order(self) -> np.ndarray:
        """Every sample id once, in this epoch's order."""
        counts = np.asarray(self.counts, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(counts) else counts
        if not self.shuffle:
            return np.arange(self.total, dtype=np.int64)
        rng = np.random.default_rng([self.seed, self.epoch])
        shard_order = rng.permutation(len(counts))
        parts = []
        for b in range(0, len(shard_order), max(1, self.block_shards)):
            block = shard_order[b : b + max(1, self.block_shards)]
            ids = np.concatenate(
                [np.arange(int(starts[s]), int(starts[s] + counts[s])) for s in block]
            )
            parts.append(rng.permutation(ids))
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def rank_ids(self) -> np.ndarray:
        """This rank's sample ids for the epoch, in order (padded or trimmed as documented)."""
        order = self.global_order()
        need = self.per_rank * self.world_size
        if need > len(order) and len(order):
            order = np.concatenate([order, np.resize(order, need - len(order))])
        return order[self.rank * self.per_rank : (self.rank + 1) * self.per_rank]

    def worker_chunks(
        self, worker: int, num_workers: int, chunk: int, start: int = 0
    ) -> list[np.ndarray]:
        """The chunks of this rank's ids (from position ``start``) that ``worker`` reads, in order."""
        ids = self.rank_ids()[start:]
        chunk = max(1, chunk)
        return [ids[i : i + chunk] for i in range(worker * chunk, len(ids), num_workers * chunk)]

    def locate(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map global ids to (shard position, index inside the shard)."""
        counts = np.asarray(self.counts, dtype=np.int64)
        ends = np.cumsum(counts)
        shard = np.searchsorted(ends, ids, side="right")
        return shard, ids - (ends[shard] - counts[shard])
