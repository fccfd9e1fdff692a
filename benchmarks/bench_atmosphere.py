"""The federation layer against a local reference PDS started here (and stopped after).

Cases:

- ``insert_blobs``: ``AtmosphereIndex.insert_dataset`` with a ``PDSBlobStore`` (byte copy,
  SHA-256 checked against each returned CID, sample count, then one dataset record) in MB/s,
  against raw ``com.atproto.repo.uploadBlob`` POSTs of the same shard files with plain httpx,
  one after another. Target: at least 0.8x. A second row compares with raw uploads on as
  many threads as the store uses (``PDSBlobStore.workers``).
- ``record_writes``: N dataset records through ``DatasetPublisher.publish_many``
  (``applyWrites``, 200 per call) against N ``createRecord`` calls one by one, in records/s.

Before every timed call the shard files get fresh random bytes in one payload (untimed), so no
contender uploads bytes the PDS already holds.

    python benchmarks/bench_atmosphere.py [--quick]
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # standalone: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import numpy as np
from numpy.typing import NDArray

import atdata
from atdata._tar import iter_members
from atdata.atmosphere import (
    AtmosphereClient,
    AtmosphereIndex,
    DatasetPublisher,
    PDSBlobStore,
    SchemaPublisher,
)
from atdata.atmosphere.datasets import EXTERNAL_STORAGE, dataset_record
from atdata.atmosphere.records import DATASET_COLLECTION
from benchmarks.run import error_row, format_table, make_row, measure, median

SUITE = "atmosphere"
MB = 1e6


@atdata.packable
class Blob:
    data: NDArray[np.uint8]
    index: int


@dataclass(frozen=True)
class Config:
    shards: int
    shard_mib: int
    insert_reps: int
    records: int
    record_reps: int


FULL = Config(shards=8, shard_mib=32, insert_reps=5, records=600, record_reps=3)
QUICK = Config(shards=4, shard_mib=8, insert_reps=3, records=200, record_reps=2)


class RawUploader:
    """``uploadBlob`` with nothing but httpx: a session token and one POST per file."""

    def __init__(self, pds_url: str, handle: str, password: str) -> None:
        self.http = httpx.Client(timeout=300.0, trust_env=False)
        session = self.http.post(
            pds_url + "/xrpc/com.atproto.server.createSession",
            json={"identifier": handle, "password": password},
        )
        session.raise_for_status()
        self.token = session.json()["accessJwt"]
        self.url = pds_url + "/xrpc/com.atproto.repo.uploadBlob"

    def upload(self, path: str) -> None:
        def chunks() -> Any:
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    yield chunk

        response = self.http.post(
            self.url,
            content=chunks(),
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/x-tar",
                "Content-Length": str(os.path.getsize(path)),
            },
        )
        response.raise_for_status()


def refresher(paths: list[str]) -> Callable[[str], None]:
    """An ``after`` hook writing fresh random bytes into one payload of every shard."""
    offsets = []
    for path in paths:
        data = Path(path).read_bytes()
        _, off, size = next(iter_members(data, path))
        offsets.append(off + size // 2)
    rng = np.random.default_rng(1)

    def refresh(_: str) -> None:
        for path, off in zip(paths, offsets):
            with open(path, "r+b") as fh:
                fh.seek(off)
                fh.write(rng.bytes(32))

    return refresh


def insert_rows(
    cfg: Config, client: AtmosphereClient, raw: RawUploader, tmp: str
) -> list[dict[str, Any]]:
    per_shard = 4
    size = cfg.shard_mib * (1 << 20) // per_shard
    rng = np.random.default_rng(0)
    dataset = atdata.write_samples(
        (Blob(np.frombuffer(rng.bytes(size), np.uint8), i) for i in range(cfg.shards * per_shard)),
        os.path.join(tmp, "blob.tar"),
        maxcount=per_shard,
    )
    paths = dataset.list_shards()
    total = sum(os.path.getsize(p) for p in paths)
    store = PDSBlobStore(client)
    index = AtmosphereIndex(client, data_store=store)
    schema_uri = index.publish_schema(Blob, version="1.0.0")
    runs = iter(range(10**6))

    def ours() -> None:
        index.insert_dataset(dataset, name=f"blob-{next(runs)}", schema_ref=schema_uri)

    def raw_sequential() -> None:
        for path in paths:
            raw.upload(path)

    def raw_threads() -> None:
        with ThreadPoolExecutor(store.workers) as pool:
            list(pool.map(raw.upload, paths))

    raw_sequential()  # warm up the PDS's code paths once, untimed
    times = measure(
        {"atdata": ours, "raw": raw_sequential, "raw_threads": raw_threads},
        cfg.insert_reps,
        after=refresher(paths),
    )
    value = total / median(times["atdata"]) / MB
    peer = total / median(times["raw"]) / MB
    threaded = total / median(times["raw_threads"]) / MB
    note = (
        f"{total / MB:.0f} MB in {len(paths)} shards to the reference PDS on loopback, median of "
        f"{cfg.insert_reps}; ours: {store.workers} upload threads, SHA-256 of every byte checked "
        "against the CID, tar header walk, then one createRecord for the dataset"
    )
    return [
        make_row(
            SUITE,
            f"insert_dataset with blobs ({len(paths)} x {cfg.shard_mib} MiB)",
            "insert_blobs",
            "MB/s",
            value,
            peer,
            peer_name="raw uploadBlob, sequential",
            target=">= 0.8x raw uploadBlob",
            met=value >= 0.8 * peer,
            note=note,
            seconds=times,
        ),
        make_row(
            SUITE,
            f"insert_dataset with blobs vs threaded raw ({store.workers} threads)",
            "insert_blobs_threads",
            "MB/s",
            value,
            threaded,
            peer_name=f"raw uploadBlob, {store.workers} threads",
            target=">= 0.8x raw uploadBlob",
            met=value >= 0.8 * threaded,
            note="the same run; the raw uploads use as many threads as the store",
        ),
    ]


def record_rows(cfg: Config, client: AtmosphereClient) -> list[dict[str, Any]]:
    schema_uri = SchemaPublisher(client).publish(Blob, version="2.0.0")
    publisher = DatasetPublisher(client)
    runs = iter(range(10**6))
    n = cfg.records

    def batched() -> None:
        run = next(runs)
        publisher.publish_many(
            {
                "urls": f"https://data.example.org/{run}/{i}.tar",
                "schema_uri": schema_uri,
                "name": f"b{run}-{i}",
            }
            for i in range(n)
        )

    schema_cid = client.get_record_entry(schema_uri)["cid"]

    def one_by_one() -> None:
        run = next(runs)
        for i in range(n):
            record = dataset_record(
                name=f"s{run}-{i}",
                schema_ref=schema_uri,
                schema_cid=schema_cid,
                storage={
                    "$type": EXTERNAL_STORAGE,
                    "urls": [f"https://data.example.org/{run}/{i}.tar"],
                },
                size={"shards": 1},
            )
            client.create_record(DATASET_COLLECTION, record)

    times = measure({"atdata": batched, "createRecord": one_by_one}, cfg.record_reps)
    value = n / median(times["atdata"])
    peer = n / median(times["createRecord"])
    return [
        make_row(
            SUITE,
            f"{n} dataset records: applyWrites batches vs createRecord each",
            "record_writes",
            "records/s",
            value,
            peer,
            peer_name="createRecord, one request each",
            target="batched ahead",
            met=value > peer,
            note=f"publish_many sends {-(-n // 200)} applyWrites calls (200 records each); "
            f"both build and lexicon-check every record; median of {cfg.record_reps}",
            seconds=times,
        )
    ]


def run(quick: bool) -> list[dict[str, Any]]:
    """Run the federation-layer cases against a fresh local PDS; return the result rows."""
    from atdata.stack.pds import create_account, start_pds

    cfg = QUICK if quick else FULL
    rows: list[dict[str, Any]] = []
    password = secrets.token_urlsafe(18)
    with tempfile.TemporaryDirectory(prefix="atdata-bench-atm-") as tmp, start_pds() as server:
        account = create_account(server, "bench", password)
        client = AtmosphereClient(server.url, plc_url=server.env["PLC_URL"])
        client.login(account["handle"], password)
        try:
            rows += insert_rows(
                cfg, client, RawUploader(server.url, account["handle"], password), tmp
            )
        except Exception as exc:
            rows.append(error_row(SUITE, "insert_blobs (failed)", exc))
        try:
            rows += record_rows(cfg, client)
        except Exception as exc:
            rows.append(error_row(SUITE, "record_writes (failed)", exc))
        client.close()
    return rows


if __name__ == "__main__":
    print(format_table(run(quick="--quick" in sys.argv[1:])))
