"""Map a function or a lens over every sample of a dataset, shard by shard, into a new dataset.

Each input shard becomes one output shard with a name fixed by its position
(``output_pattern % i``), written under a temporary name and renamed when
complete, so a rerun skips the shards that are already done. The work runs in
local processes (``engine="local"``) or on a Dask cluster (``engine="dask"``,
``pip install 'atdata[dask]'``): one task per shard, the same code on a laptop
and on a cluster. See ``docs/processing.md``.

>>> import atdata
>>> @atdata.packable
... class Number:
...     value: int
>>> def double(n: Number) -> Number:
...     return Number(n.value * 2)
>>> # out = atdata.Dataset[Number]("in-{000000..000099}.tar").map_shards(double, "out/d-%06d.tar")
"""

from __future__ import annotations

import glob
import os
import typing
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from atdata._tar import TarWriter
from atdata.dataset import Dataset
from atdata.dict_sample import DictSample
from atdata.errors import SampleError
from atdata.lens import Lens
from atdata.sample import is_packable
from atdata.writer import ShardWriter

__all__ = ["map_dataset"]

Engine = Literal["local", "dask"]


@dataclass(frozen=True)
class _Job:
    """What every task needs: shipped once per worker, not once per shard."""

    dataset: Dataset[Any]
    fn: Callable[[Any], Any]
    maxcount: int | None


def _pieces(base: str) -> list[str]:
    """The output files of one finished input shard: ``base``, then ``<stem>-001<ext>``, ..."""
    stem, ext = os.path.splitext(base)
    return [base, *sorted(glob.glob(f"{glob.escape(stem)}-[0-9][0-9][0-9]{ext}"))]


def _piece_name(base: str, j: int) -> str:
    stem, ext = os.path.splitext(base)
    return base if j == 0 else f"{stem}-{j:03d}{ext}"


def _map_shard(job: _Job, shard: str, base: str) -> tuple[list[str], type | None]:
    """Write the mapped samples of one shard to ``base`` (and pieces); skip it if done."""
    if os.path.exists(base):
        return _pieces(base), None
    Path(base).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{base}.{uuid.uuid4().hex[:12]}.part"
    ds, fn = job.dataset, job.fn
    decode = ds._decoder(copy=True)
    out_type: type | None = None
    with ShardWriter(f"{tmp}%03d", maxcount=job.maxcount) as writer:
        for shard_id, key, payload in ds._payloads(shard):
            try:
                sample = decode(shard_id, key, payload)
            except SampleError as exc:
                ds._fail(exc)
                continue
            try:
                result = fn(sample)
            except Exception as exc:
                exc.add_note(f"while mapping sample {key!r} of shard {shard}")
                raise
            if result is not None:
                out_type = out_type or type(result)
                writer.write(result, key=key)
    written = writer.shards
    if not written:  # no sample: an empty shard, so that a rerun knows this one is done
        written = [f"{tmp}000"]
        TarWriter(written[0]).close()
    for j in range(len(written) - 1, -1, -1):  # the first piece last: its name means "done"
        os.replace(written[j], _piece_name(base, j))
    return [_piece_name(base, j) for j in range(len(written))], out_type


_WORKER_JOB: _Job | None = None


def _init_worker(job: _Job) -> None:
    global _WORKER_JOB
    _WORKER_JOB = job


def _map_in_worker(shard: str, base: str) -> tuple[list[str], type | None]:
    assert _WORKER_JOB is not None
    return _map_shard(_WORKER_JOB, shard, base)


def _run_local(job: _Job, shards: list[str], bases: list[str], workers: int) -> list[Any]:
    if workers == 0:
        return [_map_shard(job, s, b) for s, b in zip(shards, bases)]
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(job,)) as pool:
        return list(pool.map(_map_in_worker, shards, bases))


def _run_dask(
    job: _Job, shards: list[str], bases: list[str], workers: int | None, client: Any
) -> list[Any]:
    try:
        from distributed import Client, LocalCluster, get_client
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("engine='dask' needs Dask: pip install 'atdata[dask]'") from exc
    own = None
    if client is None:
        try:
            client = get_client()
        except ValueError:  # no client yet: a local cluster of processes for this call
            cluster = LocalCluster(n_workers=workers or os.cpu_count(), threads_per_worker=1)
            client = own = Client(cluster)
    try:
        [shared] = client.scatter([job], broadcast=True)
        futures = client.map(_map_shard, [shared] * len(shards), shards, bases, pure=False)
        return list(client.gather(futures))
    finally:
        if own is not None:
            own.close()
            own.cluster.close()


def _declared_type(fn: Callable[[Any], Any]) -> type | None:
    """The output type ``fn`` declares: a lens's view type or a packable return annotation."""
    if isinstance(fn, Lens):
        return fn.view_type
    try:
        hint = typing.get_type_hints(fn).get("return")
    except Exception:  # unresolvable annotations: fall back to the samples written
        return None
    return hint if isinstance(hint, type) and (is_packable(hint) or hint is DictSample) else None


def map_dataset(
    dataset: Dataset[Any],
    fn: Callable[[Any], Any],
    output_pattern: str | os.PathLike[str],
    *,
    engine: Engine = "local",
    maxcount: int | None = None,
    num_workers: int | None = None,
    client: Any = None,
) -> Dataset[Any]:
    """Apply ``fn`` (a function or a :class:`~atdata.Lens`) to every sample; return the new dataset.

    Input shard ``i`` is written to ``output_pattern % i`` (a local path with a
    ``%06d``-style placeholder); with ``maxcount``, into pieces of at most
    ``maxcount`` samples (``<name>-001.tar``, ...). Keys are kept, samples for
    which ``fn`` returns None are dropped, and shards whose output exists are
    skipped, so a rerun resumes. ``engine="local"`` runs ``num_workers``
    processes (default: one per CPU; 0 runs here); ``engine="dask"`` uses
    ``client``, the current Dask client, or a local cluster of ``num_workers``.
    With processes, ``fn`` and the sample types must be importable (picklable).

    >>> # out = map_dataset(ds, to_gray, "gray/data-%06d.tar", engine="dask", client=client)
    """
    pattern = os.fspath(output_pattern)
    if "%" not in pattern:
        raise ValueError(
            f"output_pattern needs a %d-style placeholder for the shard, not {pattern!r}"
        )
    if maxcount is not None and maxcount < 1:
        raise ValueError(f"maxcount must be positive, not {maxcount}")
    shards = dataset.list_shards()
    bases = [pattern % i for i in range(len(shards))]
    if len(set(bases)) != len(bases):
        raise ValueError(f"output_pattern {pattern!r} gives several shards the same name")
    job = _Job(dataset, fn, maxcount)
    if engine == "local":
        workers = (os.cpu_count() or 1) if num_workers is None else num_workers
        results = _run_local(job, shards, bases, min(workers, len(shards)))
    elif engine == "dask":
        results = _run_dask(job, shards, bases, num_workers, client)
    else:
        raise ValueError(f"engine must be 'local' or 'dask', not {engine!r}")
    out_type = _declared_type(fn) or next((t for _, t in results if t is not None), DictSample)
    return Dataset[out_type]([p for paths, _ in results for p in paths])  # type: ignore[valid-type]
