"""Reading through a mirror against reading the original, in the same run.

Two reference PDSes on one PLC directory run on loopback. Alice publishes N shards
as blobs on PDS A; Bob mirrors them as blobs on PDS B (``mirror_dataset``).
Contenders, interleaved and repeated, each a cold epoch (empty shard cache) that
decodes every sample:

* **original**: the dataset record opened as ``load_dataset`` opens it without
  mirrors (a ``BlobSource`` on PDS A, CID-checked while streaming);
* **through the mirror**: a ``MirroredSource`` whose first location of every shard
  is a host that refuses connections (the original gone) and whose second is Bob's
  copy on PDS B, each shard checked against the original record's SHA-256.

The target is >= 0.9x the original's throughput.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

import atdata
from atdata.cache import ShardCache
from benchmarks.run import error_row, make_row, measure, median

SUITE = "mirrors"
TARGET = 0.9


@atdata.packable
class Image:
    image: NDArray[np.uint8]
    label: int


@dataclass(frozen=True)
class Config:
    shards: int
    per_shard: int
    reps: int


FULL = Config(shards=6, per_shard=160, reps=7)  # 6 x 24 MB
QUICK = Config(shards=3, per_shard=60, reps=3)  # 3 x 9 MB


def _refused() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _epoch(ds: atdata.Dataset[Any], expected: int) -> Callable[[], None]:
    def go() -> None:
        n = sum(1 for s in ds.ordered() if s.image.shape[0] > 0)
        if n != expected:
            raise RuntimeError(f"read {n} samples, expected {expected}")

    return go


def run(quick: bool) -> list[dict[str, Any]]:
    from atdata._locations import MirroredSource, ShardLocations
    from atdata.atmosphere import AtmosphereClient, AtmosphereIndex, PDSBlobStore
    from atdata.atmosphere.datasets import open_record
    from atdata.atmosphere.mirrors import mirror_dataset, mirrored_source
    from atdata.atmosphere.records import DATASET_COLLECTION, fetch_record
    from atdata.stack.pds import create_account, start_pds

    cfg = QUICK if quick else FULL
    tmp = Path(tempfile.mkdtemp(prefix="atdata-bench-mirrors-"))
    servers = []
    clients: list[AtmosphereClient] = []
    old_env = os.environ.get("ATDATA_ALLOW_PRIVATE_URLS")
    os.environ["ATDATA_ALLOW_PRIVATE_URLS"] = "1"
    try:
        b = start_pds()
        servers.append(b)
        a = start_pds(plc_url=b.env["PLC_URL"])
        servers.append(a)
        plc = b.env["PLC_URL"]

        def login(pds: Any, handle: str) -> AtmosphereClient:
            create_account(pds, handle, "bench-password-1")
            client = AtmosphereClient(pds.url, plc_url=plc)
            client.login(handle, "bench-password-1")
            clients.append(client)
            return client

        alice, bob = login(a, "alice.test"), login(b, "bob.test")
        rng = np.random.default_rng(0)
        paths = []
        for s in range(cfg.shards):
            path = tmp / f"img-{s:06d}.tar"
            with atdata.ShardWriter(str(path)) as w:
                for i in range(cfg.per_shard):
                    w.write(Image(image=rng.integers(0, 255, (3, 224, 224), np.uint8), label=i))
            paths.append(path)
        total = sum(p.stat().st_size for p in paths)
        n = cfg.shards * cfg.per_shard
        index = AtmosphereIndex(alice, data_store=PDSBlobStore(alice))
        entry = index.insert_dataset(
            atdata.Dataset[Image]([str(p) for p in paths]), name="bench-mirrors"
        )
        original = fetch_record(alice, entry.uri, DATASET_COLLECTION)
        mirror = mirror_dataset(entry.uri, bob)
        cache_dir = tmp / "cache"

        plain = open_record(alice, original, Image, cache=ShardCache(cache_dir / "o"))
        through = mirrored_source(original, [mirror], plc_url=plc)
        gone = _refused()
        dead_first = MirroredSource(
            [
                ShardLocations(s.shard_id, s.sha256, (f"{gone}/{i}.tar", *s.locations[1:]), s.size)
                for i, s in enumerate(through.shards.values())
            ],
            opener=through.opener,
        )
        mirrored = atdata.Dataset[Image](dead_first, cache=ShardCache(cache_dir / "m"))
        copy = open_record(bob, mirror, Image, cache=ShardCache(cache_dir / "c"))
        verified_original = atdata.Dataset[Image](through, cache=ShardCache(cache_dir / "v"))
        fns = {
            "original": _epoch(plain, n),
            "through the mirror": _epoch(mirrored, n),
            "mirror copy, plain": _epoch(copy, n),
            "original through MirroredSource": _epoch(verified_original, n),
        }
        for fn in fns.values():  # warm up: PDS caches, connections, identity resolution
            fn()
            shutil.rmtree(cache_dir, True)
        times = measure(fns, cfg.reps, after=lambda _: shutil.rmtree(cache_dir, True))
        mbps = {name: total / median(t) / 1e6 for name, t in times.items()}
        ratio = mbps["through the mirror"] / mbps["original"]
        extra = [
            make_row(
                SUITE,
                f"same epoch, {name}",
                "throughput",
                "MB/s",
                mbps[name],
                mbps["original"],
                peer_name="the original on its PDS",
                seconds=times[name],
            )
            for name in ("mirror copy, plain", "original through MirroredSource")
        ]
        return [
            make_row(
                SUITE,
                f"cold epoch of {cfg.shards} x {total / cfg.shards / 1e6:.0f} MB PDS blobs, "
                "original gone, read from a mirror on another PDS",
                "throughput",
                "MB/s",
                mbps["through the mirror"],
                mbps["original"],
                peer_name="the original on its PDS",
                target=f">= {TARGET}x the original",
                met=ratio >= TARGET,
                ratio=ratio,
                seconds=times["through the mirror"],
                peer_seconds=times["original"],
            ),
            *extra,
        ]
    except Exception as exc:
        return [error_row(SUITE, "read through a mirror", exc)]
    finally:
        for client in clients:
            client.close()
        for server in reversed(servers):
            server.stop()
        shutil.rmtree(tmp, True)
        if old_env is None:
            os.environ.pop("ATDATA_ALLOW_PRIVATE_URLS", None)
        else:
            os.environ["ATDATA_ALLOW_PRIVATE_URLS"] = old_env
