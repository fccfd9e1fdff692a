"""atdata against other dataset loaders, side by side, through ``torch.utils.data.DataLoader``.

The same samples (tiny records ``{name: str, value: int}``, and 150 KB ``uint8`` arrays
``(3, 224, 224)`` with an ``int`` label) are converted into each library's own format
first, untimed, then read back in batches of 32 (one full epoch), timed:

* **atdata**: ``DataLoader(Dataset[T](shards).to_torch(batch_size=32), batch_size=None,
  num_workers=W)``;
* **webdataset**: ``WebDataset(urls).decode().to_tuple(...).batched(32)`` in a ``WebLoader``
  (``.npy`` + ``.cls`` members for arrays, a ``.json`` member for tiny records);
* **MosaicML streaming**: ``MDSWriter`` shards, ``StreamingDataset(local=..., remote=...)``
  in a ``DataLoader(batch_size=32)``;
* **LitData**: ``litdata.optimize`` chunks, ``StreamingDataset`` in a ``StreamingDataLoader``;
* **Hugging Face datasets**: ``save_to_disk`` Arrow files read with ``load_from_disk`` and
  ``with_format("torch")``; from S3, Parquet files streamed with
  ``load_dataset("parquet", data_files=URLs, streaming=True)``.

Storage is the local disk (warm page cache) or the loopback SeaweedFS S3 server (cold:
every cache a loader keeps is emptied before each epoch). Each cell (kind, storage,
``num_workers``) runs its contenders interleaved; the median epoch gives samples/s and
GB/s (sample payload bytes: 150,528 per array sample, name + 8 bytes per tiny record).
A peer that cannot be installed or cannot read from the S3 endpoint gets a row saying so.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import multiprocessing
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

import atdata
from atdata.cache import ShardCache
from benchmarks.run import error_row, make_row, measure, median

SUITE = "loaders"
SHAPE = (3, 224, 224)
NBYTES = math.prod(SHAPE)
BATCH = 32
BUCKET = "bench-loaders"
KINDS = ("tiny", "array")
WORKERS = (0, 2)
PEERS = ("webdataset", "mosaicml-streaming", "litdata", "datasets")
LABELS = {
    "atdata": "atdata",
    "atdata-ordered": "atdata ordered() (shards per worker)",
    "webdataset": "webdataset",
    "mosaicml-streaming": "MDS (streaming)",
    "litdata": "LitData",
    "datasets": "HF datasets",
}


@atdata.packable
class Tiny:
    name: str
    value: int


@atdata.packable
class Image:
    image: NDArray[np.uint8]
    label: int


@dataclass(frozen=True)
class Config:
    tiny_n: int
    array_n: int
    tiny_per_shard: int
    array_per_shard: int
    reps: int


FULL = Config(tiny_n=100_000, array_n=2_000, tiny_per_shard=10_000, array_per_shard=100, reps=3)
QUICK = Config(tiny_n=10_000, array_n=200, tiny_per_shard=2_500, array_per_shard=50, reps=2)


def _base_image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, SHAPE, dtype=np.uint8)


_BASE = _base_image()


def record(kind: str, i: int) -> dict[str, Any]:
    """Sample ``i`` of a kind, as a plain dict (module level: LitData pickles it)."""
    if kind == "tiny":
        return {"name": f"sample-{i:08d}", "value": i}
    return {"image": np.roll(_BASE, i), "label": i % 1000}


def lit_tiny(i: int) -> dict[str, Any]:
    return record("tiny", i)


def lit_array(i: int) -> dict[str, Any]:
    return record("array", i)


def sample_bytes(kind: str) -> int:
    return NBYTES if kind == "array" else len("sample-00000000") + 8


def batch_len(batch: Any) -> int:
    first = next(iter(batch.values())) if isinstance(batch, dict) else batch[0]
    return len(first)


def count(loader: Any) -> int:
    return sum(batch_len(b) for b in loader)


@dataclass
class Remote:
    """The S3 side: server settings, a client, and presigned HTTP URLs for URL-only readers."""

    env: dict[str, str]
    client: Any
    scratch: Path

    def upload(self, root: Path, prefix: str) -> list[str]:
        keys = []
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            key = f"{prefix}/{path.relative_to(root)}"
            self.client.upload_file(str(path), BUCKET, key)
            keys.append(key)
        return keys

    def presign(self, key: str) -> str:
        return str(
            self.client.generate_presigned_url(
                "get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=3 * 3600
            )
        )

    def fresh_dir(self) -> Path:
        path = self.scratch / uuid.uuid4().hex[:8]
        path.mkdir(parents=True)
        return path

    def clear(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.scratch.mkdir(parents=True)


@dataclass
class Contender:
    """One loader on one kind of sample: how to convert, and how to read an epoch."""

    name: str
    local: Callable[[int], int]
    remote: Callable[[int], int] | None = None
    notes: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- atdata


def as_is(batch: Any) -> Any:
    """The batches are tensors already: no ``default_convert`` walk over them."""
    return batch


class ShardSplit(IterableDataset):  # type: ignore[type-arg]
    """``Dataset.ordered(batch_size)`` over this worker's shards (every W-th), as tensors."""

    def __init__(self, make: Callable[[list[str]], atdata.Dataset[Any]], shards: list[str]) -> None:
        self.make, self.shards = make, shards

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        ds = self.make(self.shards[worker::workers])
        for batch in ds.ordered(batch_size=BATCH):
            fields = batch.to_dict()
            yield {
                k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                for k, v in fields.items()
            }


def atdata_contender(kind: str, cfg: Config, root: Path, remote: Remote | None) -> Contender:
    n, per = (
        (cfg.tiny_n, cfg.tiny_per_shard) if kind == "tiny" else (cfg.array_n, cfg.array_per_shard)
    )
    typ: type = Tiny if kind == "tiny" else Image
    samples = (typ(**record(kind, i)) for i in range(n))
    shards = atdata.write_samples(samples, root / "data.tar", maxcount=per).list_shards()

    def local(workers: int) -> int:
        ds = atdata.Dataset[typ](shards)  # type: ignore[valid-type]
        return count(
            DataLoader(ds.to_torch(batch_size=BATCH), batch_size=None, num_workers=workers)
        )

    if remote is None:
        return Contender("atdata", local)
    keys = remote.upload(root, f"atdata-{kind}")
    urls = [f"s3://{BUCKET}/{k}" for k in keys]

    def from_s3(workers: int) -> int:
        cache = ShardCache(remote.fresh_dir())
        ds = atdata.Dataset[typ](urls, credentials=remote.env, cache=cache)  # type: ignore[valid-type]
        return count(
            DataLoader(ds.to_torch(batch_size=BATCH), batch_size=None, num_workers=workers)
        )

    return Contender("atdata", local, from_s3)


def atdata_ordered_contender(
    kind: str, cfg: Config, root: Path, remote: Remote | None
) -> Contender:
    """atdata without the exact-split adapter: whole shards per worker, ``ordered()`` batches.

    A minimal ``IterableDataset`` (:class:`ShardSplit`), for comparison with ``to_torch``,
    which gives every rank the same count and every worker count the same order.
    """
    typ: type = Tiny if kind == "tiny" else Image
    shards = sorted(str(p) for p in (root.parent / "atdata").glob("data-*.tar"))

    def local(workers: int) -> int:
        split = ShardSplit(atdata.Dataset[typ], shards)  # type: ignore[valid-type]
        return count(DataLoader(split, batch_size=None, num_workers=workers, collate_fn=as_is))

    if remote is None:
        return Contender("atdata-ordered", local)
    urls = [f"s3://{BUCKET}/atdata-{kind}/{Path(s).name}" for s in shards]

    def from_s3(workers: int) -> int:
        cache = ShardCache(remote.fresh_dir())

        def make(part: list[str]) -> atdata.Dataset[Any]:
            return atdata.Dataset[typ](part, credentials=remote.env, cache=cache)  # type: ignore[valid-type]

        split = ShardSplit(make, urls)
        return count(DataLoader(split, batch_size=None, num_workers=workers, collate_fn=as_is))

    return Contender("atdata-ordered", local, from_s3)


# --------------------------------------------------------------------------- webdataset


def wds_contender(kind: str, cfg: Config, root: Path, remote: Remote | None) -> Contender:
    import webdataset as wds

    n, per = (
        (cfg.tiny_n, cfg.tiny_per_shard) if kind == "tiny" else (cfg.array_n, cfg.array_per_shard)
    )
    with wds.ShardWriter(str(root / "wds-%06d.tar"), maxcount=per, verbose=0) as sink:
        for i in range(n):
            r = record(kind, i)
            if kind == "tiny":
                sink.write({"__key__": f"{i:08d}", "json": r})
            else:
                sink.write({"__key__": f"{i:08d}", "npy": r["image"], "cls": r["label"]})
    shards = sorted(str(p) for p in root.glob("wds-*.tar"))
    fields = ("json",) if kind == "tiny" else ("npy", "cls")

    def read(urls: list[str], workers: int) -> int:
        ds = wds.WebDataset(urls, shardshuffle=False).decode().to_tuple(*fields).batched(BATCH)
        return count(wds.WebLoader(ds, batch_size=None, num_workers=workers))

    def local(workers: int) -> int:
        return read(shards, workers)

    if remote is None:
        return Contender("webdataset", local)
    urls = [remote.presign(k) for k in remote.upload(root, f"wds-{kind}")]
    return Contender(
        "webdataset",
        local,
        lambda w: read(urls, w),
        {"remote": "presigned HTTP URLs read with curl (WebDataset's http handler)"},
    )


# --------------------------------------------------------------------------- MosaicML streaming


def mds_contender(kind: str, cfg: Config, root: Path, remote: Remote | None) -> Contender:
    from streaming import MDSWriter, StreamingDataset
    from streaming.base.util import clean_stale_shared_memory

    n, per = (
        (cfg.tiny_n, cfg.tiny_per_shard) if kind == "tiny" else (cfg.array_n, cfg.array_per_shard)
    )
    if kind == "tiny":
        columns = {"name": "str", "value": "int"}
    else:
        columns = {"image": f"ndarray:uint8:{','.join(map(str, SHAPE))}", "label": "int"}
    limit = per * (sample_bytes(kind) + 16)
    with MDSWriter(out=str(root), columns=columns, size_limit=limit) as out:
        for i in range(n):
            out.write(record(kind, i))

    def read(workers: int, **where: str) -> int:
        clean_stale_shared_memory()
        ds = StreamingDataset(batch_size=BATCH, shuffle=False, **where)
        try:
            return count(DataLoader(ds, batch_size=BATCH, num_workers=workers))
        finally:
            del ds
            clean_stale_shared_memory()

    def local(workers: int) -> int:
        return read(workers, local=str(root))

    if remote is None:
        return Contender("mosaicml-streaming", local)
    remote.upload(root, f"mds-{kind}")

    def from_s3(workers: int) -> int:
        with s3_environ(remote.env):
            return read(workers, remote=f"s3://{BUCKET}/mds-{kind}", local=str(remote.fresh_dir()))

    return Contender("mosaicml-streaming", local, from_s3, {"remote": "S3_ENDPOINT_URL"})


@contextlib.contextmanager
def s3_environ(env: dict[str, str]) -> Iterator[None]:
    """The server's ``AWS_*`` settings, plus ``S3_ENDPOINT_URL`` for MosaicML streaming."""
    wanted = dict(env, S3_ENDPOINT_URL=env["AWS_ENDPOINT_URL"])
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --------------------------------------------------------------------------- LitData


def litdata_contender(kind: str, cfg: Config, root: Path, remote: Remote | None) -> Contender:
    import litdata

    n, per = (
        (cfg.tiny_n, cfg.tiny_per_shard) if kind == "tiny" else (cfg.array_n, cfg.array_per_shard)
    )
    method = multiprocessing.get_start_method(allow_none=True)
    try:
        litdata.optimize(
            fn=lit_tiny if kind == "tiny" else lit_array,
            inputs=list(range(n)),
            output_dir=str(root),
            chunk_size=per,
            num_workers=1,
        )
    finally:  # optimize() forces the "spawn" start method on the whole process
        multiprocessing.set_start_method(method, force=True)

    def read(workers: int, input_dir: str, **options: Any) -> int:
        ds = litdata.StreamingDataset(input_dir, **options)
        return count(litdata.StreamingDataLoader(ds, batch_size=BATCH, num_workers=workers))

    def local(workers: int) -> int:
        return read(workers, str(root))

    if remote is None:
        return Contender("litdata", local)
    remote.upload(root, f"lit-{kind}")
    storage = {
        "endpoint_url": remote.env["AWS_ENDPOINT_URL"],
        "aws_access_key_id": remote.env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": remote.env["AWS_SECRET_ACCESS_KEY"],
        "region_name": remote.env["AWS_REGION"],
    }

    def from_s3(workers: int) -> int:
        cache_dir = str(remote.fresh_dir())
        url = f"s3://{BUCKET}/lit-{kind}"
        return read(workers, url, cache_dir=cache_dir, storage_options=storage)

    return Contender("litdata", local, from_s3, {"remote": "storage_options with endpoint_url"})


# --------------------------------------------------------------------------- Hugging Face datasets


def hf_contender(kind: str, cfg: Config, root: Path, remote: Remote | None) -> Contender:
    import datasets

    n, per = (
        (cfg.tiny_n, cfg.tiny_per_shard) if kind == "tiny" else (cfg.array_n, cfg.array_per_shard)
    )
    if kind == "tiny":
        features = datasets.Features(
            {"name": datasets.Value("string"), "value": datasets.Value("int64")}
        )
    else:
        features = datasets.Features(
            {
                "image": datasets.Array3D(shape=SHAPE, dtype="uint8"),
                "label": datasets.Value("int64"),
            }
        )
    n_shards = -(-n // per)
    ds = datasets.Dataset.from_generator(
        _hf_records,
        gen_kwargs={"kind": kind, "n": n},
        features=features,
        cache_dir=str(root / "hf-cache"),
    )
    ds.save_to_disk(str(root / "arrow"), num_shards=n_shards)

    def local(workers: int) -> int:
        data = datasets.load_from_disk(str(root / "arrow")).with_format("torch")
        return count(DataLoader(data, batch_size=BATCH, num_workers=workers))

    if remote is None:
        return Contender("datasets", local)
    parquet = root / "parquet"
    parquet.mkdir()
    for i in range(n_shards):
        ds.shard(n_shards, i, contiguous=True).to_parquet(str(parquet / f"part-{i:05d}.parquet"))
    urls = [remote.presign(k) for k in remote.upload(parquet, f"hf-{kind}")]

    def from_s3(workers: int) -> int:
        data = datasets.load_dataset("parquet", data_files=urls, split="train", streaming=True)
        return count(DataLoader(data.with_format("torch"), batch_size=BATCH, num_workers=workers))

    return Contender(
        "datasets", local, from_s3, {"remote": "Parquet over presigned HTTP URLs, streaming=True"}
    )


def _hf_records(kind: str, n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield record(kind, i)


BUILDERS: dict[str, Callable[[str, Config, Path, Remote | None], Contender]] = {
    "atdata": atdata_contender,
    "atdata-ordered": atdata_ordered_contender,
    "webdataset": wds_contender,
    "mosaicml-streaming": mds_contender,
    "litdata": litdata_contender,
    "datasets": hf_contender,
}
IMPORTS = {
    "webdataset": "webdataset",
    "mosaicml-streaming": "streaming",
    "litdata": "litdata",
    "datasets": "datasets",
}


def version(dist: str) -> str:
    from importlib.metadata import version as v

    return v(dist)


def unavailable(name: str) -> str | None:
    """Why a peer cannot be used here, or None."""
    try:
        importlib.import_module(IMPORTS[name])
    except Exception as exc:  # an import may fail with more than ImportError
        return f"cannot be imported here ({_why(exc)})"
    return None


# --------------------------------------------------------------------------- the run


@contextlib.contextmanager
def s3_server() -> Iterator[tuple[dict[str, str], Any]]:
    from atdata.stack.s3 import s3_client, start_s3

    server = start_s3()
    try:
        client = s3_client(server.env, max_pool_connections=32)
        client.create_bucket(Bucket=BUCKET)
        yield dict(server.env), client
    finally:
        server.stop()


def run(quick: bool) -> list[dict[str, Any]]:
    cfg = QUICK if quick else FULL
    rows: list[dict[str, Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="atdata-bench-loaders-"))
    try:
        with s3_server() as (env, client), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            remote = Remote(env, client, tmp / "scratch")
            remote.clear()
            for kind in KINDS:
                rows.extend(run_kind(kind, cfg, tmp / kind, remote))
    except Exception as exc:
        rows.append(error_row(SUITE, "loaders", exc))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def run_kind(kind: str, cfg: Config, root: Path, remote: Remote) -> list[dict[str, Any]]:
    n = cfg.tiny_n if kind == "tiny" else cfg.array_n
    rows: list[dict[str, Any]] = []
    contenders: dict[str, Contender] = {}
    for name in ("atdata", "atdata-ordered", *PEERS):
        why = None if name.startswith("atdata") else unavailable(name)
        if why is None:
            try:
                (root / name).mkdir(parents=True)
                contenders[name] = BUILDERS[name](kind, cfg, root / name, remote)
            except Exception as exc:
                why = f"could not convert the samples ({_why(exc)})"
        if why is not None:
            rows.append(_missing(kind, "any storage", name, why))
    for storage in ("local disk", "S3"):
        for workers in WORKERS:
            fns: dict[str, Callable[[], None]] = {}
            for name, c in contenders.items():
                read = c.local if storage == "local disk" else c.remote
                if read is None:
                    continue
                fn = _checked(read, workers, n)
                try:
                    fn()  # warm-up: imports, page cache, and a check that it works
                except Exception as exc:
                    why = (
                        f"cannot read from {storage} here ({type(exc).__name__}: {str(exc)[:200]})"
                    )
                    rows.append(_missing(kind, f"{storage}, workers={workers}", name, why))
                    continue
                finally:
                    remote.clear()
                fns[name] = fn
            if not fns:
                continue
            times = measure(fns, cfg.reps, after=lambda _: remote.clear())
            rows.extend(_cell_rows(kind, storage, workers, n, times, contenders))
    return rows


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:400]}"


def _checked(read: Callable[[int], int], workers: int, n: int) -> Callable[[], None]:
    def go() -> None:
        got = read(workers)
        if got != n:
            raise RuntimeError(f"read {got} samples, expected {n}")

    return go


def _missing(kind: str, where: str, name: str, why: str) -> dict[str, Any]:
    return make_row(SUITE, f"{kind}, {where}: {LABELS[name]}", "unavailable", "", None, note=why)


def _cell_rows(
    kind: str,
    storage: str,
    workers: int,
    n: int,
    times: dict[str, list[float]],
    contenders: dict[str, Contender],
) -> list[dict[str, Any]]:
    rate = {name: n / median(t) for name, t in times.items()}
    gbps = {name: r * sample_bytes(kind) / 1e9 for name, r in rate.items()}
    peers = [p for p in rate if not p.startswith("atdata")]
    best = max(peers, key=rate.__getitem__) if peers else None
    cell = f"{kind}, {storage}, workers={workers}"
    rows = []
    for name in times:
        is_ours = name.startswith("atdata")
        note = contenders[name].notes.get("remote") if storage == "S3" else None
        rows.append(
            make_row(
                SUITE,
                f"{cell}: {LABELS[name]}",
                "throughput",
                "samples/s",
                rate[name],
                rate[best] if is_ours and best else None,
                peer_name=LABELS[best] if is_ours and best else None,
                note=note,
                gb_per_s=gbps[name],
                seconds=times[name],
                version=version(name.partition("-ordered")[0]),
            )
        )
    return rows
