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
>>> import tempfile
>>> tmp = tempfile.mkdtemp()
>>> ds = atdata.write_samples([Number(i) for i in range(4)], f"{tmp}/in.tar", maxcount=2)
>>> out = map_dataset(ds, double, f"{tmp}/out/d-%06d.tar", num_workers=0)
>>> [n.value for n in out]
[0, 2, 4, 6]
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
from typing import TYPE_CHECKING, Any, Literal

from atdata._reader import Reader
from atdata._tar import TarWriter
from atdata.dict_sample import DictSample
from atdata.errors import SampleError
from atdata.lens import Lens
from atdata.sample import is_packable
from atdata.writer import ShardWriter

if TYPE_CHECKING:
    from atdata.dataset import Dataset

__all__ = ["map_dataset"]

Engine = Literal["local", "dask"]


@dataclass(frozen=True)
class _Job:
    """What every task needs: shipped once per worker, not once per shard."""

    reader: Reader
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
    reader, fn = job.reader, job.fn
    decode = reader.decoder(copy=True)
    out_type: type | None = None
    with ShardWriter(f"{tmp}%03d", maxcount=job.maxcount) as writer:
        for shard_id, key, payload in reader.payloads(shard):
            try:
                sample = decode(shard_id, key, payload)
            except SampleError as exc:
                reader.fail(exc)
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
    cluster = None  # a local cluster of processes made for this call, closed after it
    if client is None:
        try:
            client = get_client()
        except ValueError:  # no client yet
            cluster = LocalCluster(n_workers=workers or os.cpu_count(), threads_per_worker=1)
            client = Client(cluster)
    try:
        [shared] = client.scatter([job], broadcast=True)
        futures = client.map(_map_shard, [shared] * len(shards), shards, bases, pure=False)
        return list(client.gather(futures))
    finally:
        if cluster is not None:
            client.close()
            cluster.close()


def _declared_type(fn: Callable[[Any], Any]) -> type | None:
    """The output type ``fn`` declares: a lens's view type or a packable return annotation."""
    if isinstance(fn, Lens):
        return fn.view_type
    try:
        hint = typing.get_type_hints(fn).get("return")
    except Exception:  # unresolvable annotations: fall back to the samples written
        return None
    return hint if isinstance(hint, type) and (is_packable(hint) or hint is DictSample) else None


def map_shards(
    reader: Reader,
    shards: list[str],
    fn: Callable[[Any], Any],
    output_pattern: str | os.PathLike[str],
    *,
    engine: Engine = "local",
    maxcount: int | None = None,
    num_workers: int | None = None,
    client: Any = None,
) -> tuple[list[str], type]:
    """Map ``fn`` over the samples ``reader`` reads from ``shards``; return the files
    written and the output sample type (see :meth:`atdata.Dataset.map_shards`)."""
    pattern = os.fspath(output_pattern)
    if "%" not in pattern:
        raise ValueError(
            f"output_pattern needs a %d-style placeholder for the shard, not {pattern!r}"
        )
    if maxcount is not None and maxcount < 1:
        raise ValueError(f"maxcount must be positive, not {maxcount}")
    bases = [pattern % i for i in range(len(shards))]
    if len(set(bases)) != len(bases):
        raise ValueError(f"output_pattern {pattern!r} gives several shards the same name")
    job = _Job(reader, fn, maxcount)
    if engine == "local":
        workers = (os.cpu_count() or 1) if num_workers is None else num_workers
        results = _run_local(job, shards, bases, min(workers, len(shards)))
    elif engine == "dask":
        results = _run_dask(job, shards, bases, num_workers, client)
    else:
        raise ValueError(f"engine must be 'local' or 'dask', not {engine!r}")
    out_type = _declared_type(fn) or next((t for _, t in results if t is not None), DictSample)
    return [p for paths, _ in results for p in paths], out_type


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
    """Apply ``fn`` (a function or a :class:`~atdata.Lens`) to every sample; return the new
    dataset. The same as ``dataset.map_shards(fn, output_pattern, ...)``
    (see :meth:`atdata.Dataset.map_shards` for the rules)."""
    return dataset.map_shards(
        fn,
        output_pattern,
        engine=engine,
        maxcount=maxcount,
        num_workers=num_workers,
        client=client,
    )
