"""Reading shards through their locations: the original first, then mirrors, every byte verified.

Real HTTP servers on loopback play the original's host and the mirrors; the
faults are ones a real server produces (503, 404, other bytes, connection
refused, a host that stops answering in the middle of an epoch).
"""

from __future__ import annotations

import hashlib
import http.server
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

import atdata
from atdata import MirroredSource, NoValidLocationError, ShardLocations
from atdata.cache import ShardCache
from helpers import private_atdata_home  # noqa: F401 - autouse fixture


@atdata.packable
class Point:
    """One sample."""

    values: NDArray[np.float32]
    label: int


@pytest.fixture(autouse=True)
def _private_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    # The servers are on loopback: allowed only by the reader-side URL policy's opt-in.
    monkeypatch.setenv("ATDATA_ALLOW_PRIVATE_URLS", "1")


@dataclass
class Host:
    """An HTTP server holding shards; ``mode`` is ``ok``, ``503``, ``404`` or ``tamper``;
    after ``budget`` successful answers (when set) it answers 503."""

    files: dict[str, bytes]
    mode: str = "ok"
    budget: int | None = None
    served: list[str] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(host: Host) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            with host.lock:
                exhausted = host.budget is not None and len(host.served) >= host.budget
                if host.mode == "ok" and not exhausted and name in host.files:
                    host.served.append(name)
            if host.mode == "503" or exhausted:
                self.send_error(503)
                return
            if host.mode == "404" or name not in host.files:
                self.send_error(404)
                return
            body = host.files[name]
            if host.mode == "tamper":
                body = body[:600] + bytes([body[600] ^ 0xFF]) + body[601:]  # one byte flipped
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture
def serve() -> Iterator[object]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(host: Host) -> Host:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(host))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        host.url = f"http://127.0.0.1:{server.server_address[1]}"
        return host

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def refused_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there any more


@pytest.fixture
def shards(tmp_path: Path) -> tuple[dict[str, bytes], list[int]]:
    files: dict[str, bytes] = {}
    labels: list[int] = []
    for s in range(6):
        path = tmp_path / f"part-{s:06d}.tar"
        with atdata.ShardWriter(str(path)) as w:
            for i in range(10):
                label = s * 10 + i
                w.write(Point(values=np.full(4, label, np.float32), label=label))
                labels.append(label)
        files[path.name] = path.read_bytes()
    return files, labels


def locations(files: dict[str, bytes], *hosts: str) -> list[ShardLocations]:
    return [
        ShardLocations(
            f"{hosts[0]}/{name}",
            hashlib.sha256(data).hexdigest(),
            tuple(f"{h}/{name}" for h in hosts),
        )
        for name, data in sorted(files.items())
    ]


def test_falls_back_past_5xx_and_tampered_copies_to_the_valid_one(
    serve, shards, caplog: pytest.LogCaptureFixture
) -> None:
    files, labels = shards
    down = serve(Host(files, mode="503"))
    tampered = serve(Host(files, mode="tamper"))
    good = serve(Host(files))
    source = MirroredSource(locations(files, down.url, tampered.url, good.url))
    with caplog.at_level(logging.INFO, logger="atdata.mirrors"):
        got = [s.label for s in atdata.Dataset[Point](source, cache=False)]
    assert got == labels
    assert len(good.served) == 6
    text = caplog.text
    assert f"locations in order: {down.url}/part-000000.tar, {tampered.url}/part-000000.tar" in text
    assert "HTTP 503" in text and "differs from the original's" in text
    assert f"read from {good.url}/part-000000.tar" in text
    # the host that failed (not the one that sent other bytes) is tried last from then on
    later = (
        f"{tampered.url}/part-000001.tar, {good.url}/part-000001.tar, {down.url}/part-000001.tar"
    )
    assert f"locations in order: {later}" in text


def test_without_a_valid_location_the_error_lists_every_try(serve, shards) -> None:
    files, _ = shards
    missing = serve(Host(files, mode="404"))
    tampered = serve(Host(files, mode="tamper"))
    gone = refused_url()
    source = MirroredSource(locations(files, gone, missing.url, tampered.url))
    shard = source.list_shards()[0]
    with pytest.raises(NoValidLocationError) as info:
        source.open_shard(shard)
    err = info.value
    assert [loc for loc, _ in err.attempts] == [
        f"{gone}/part-000000.tar",
        f"{missing.url}/part-000000.tar",
        f"{tampered.url}/part-000000.tar",
    ]
    reasons = [why for _, why in err.attempts]
    assert "cannot connect" in reasons[0]
    assert "404" in reasons[1]
    assert "differs from the original's" in reasons[2]
    assert all(loc in str(err) for loc, _ in err.attempts)
    assert isinstance(err, atdata.ShardError) and isinstance(err, atdata.AtdataError)


def test_the_shard_cache_takes_the_verified_copy_and_does_not_retry_exhausted_locations(
    serve, shards, tmp_path: Path
) -> None:
    files, labels = shards
    tampered = serve(Host(files, mode="tamper"))
    good = serve(Host(files))
    cache = ShardCache(tmp_path / "cache")
    ds = atdata.Dataset[Point](
        MirroredSource(locations(files, tampered.url, good.url)), cache=cache
    )
    assert [s.label for s in ds] == labels
    for shard_id in ds.list_shards():  # the cache holds the original's bytes under its id
        name = shard_id.rsplit("/", 1)[1]
        assert cache.path(shard_id).read_bytes() == files[name]
    bad = serve(Host(files, mode="tamper"))
    only_bad = MirroredSource(locations(files, bad.url))
    with pytest.raises(NoValidLocationError):
        cache.fetch(only_bad.list_shards()[0], only_bad.fetcher(only_bad.list_shards()[0]))
    assert not any(cache.root.glob("*.part"))


def test_a_location_sending_more_than_the_recorded_size_is_cut_off(serve, shards) -> None:
    files, _ = shards
    good = serve(Host(files))
    name, data = sorted(files.items())[0]
    shard = ShardLocations(
        f"{good.url}/{name}",
        hashlib.sha256(data).hexdigest(),
        (f"{good.url}/{name}",),
        len(data) - 1,
    )
    with pytest.raises(NoValidLocationError, match="more than the recorded"):
        MirroredSource([shard]).open_shard(shard.shard_id)


def test_origin_failing_mid_epoch_keeps_every_sample_once_in_order(
    serve, shards, tmp_path: Path
) -> None:
    files, labels = shards
    origin = serve(Host(files, budget=2))  # answers two shards, then 503
    mirror = serve(Host(files))
    ds = atdata.Dataset[Point](
        MirroredSource(locations(files, origin.url, mirror.url)),
        cache=ShardCache(tmp_path / "cache"),
    )
    assert [s.label for s in ds] == labels
    assert len(origin.served) == 2 and len(mirror.served) == 4


def test_origin_failing_mid_epoch_under_a_dataloader_with_workers(
    serve, shards, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files, labels = shards
    monkeypatch.setenv("ATDATA_HOME", str(tmp_path / "home"))  # a cold shard cache
    origin = serve(Host(files, budget=3))
    mirror = serve(Host(files))
    ds = atdata.Dataset[Point](MirroredSource(locations(files, origin.url, mirror.url)))
    loader = ds.to_torch(batch_size=None).loader(num_workers=2)
    got = [int(item["label"]) for item in loader]
    assert got == labels
    assert len(origin.served) == 3 and len(mirror.served) == 3


def test_locations_from_records_follow_the_readers_url_policy(
    serve, shards, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mirror record is someone else's data: its loopback locations need the opt-in."""
    from atdata.atmosphere.mirrors import mirrored_source
    from atdata.atmosphere.records import Record

    files, labels = shards
    host = serve(Host(files))
    names = sorted(files)
    original = Record(
        {
            "$type": "ac.foundation.dataset.record",
            "storage": {
                "$type": "ac.foundation.dataset.storageExternal",
                "urls": [f"{host.url}/{n}" for n in names],
                "sha256": [hashlib.sha256(files[n]).hexdigest() for n in names],
            },
        },
        uri="at://did:plc:stranger/ac.foundation.dataset.record/3kaaaaaaaaaaa",
    )
    monkeypatch.delenv("ATDATA_ALLOW_PRIVATE_URLS")
    refused = mirrored_source(original)
    with pytest.raises(NoValidLocationError) as info:
        refused.open_shard(refused.list_shards()[0])
    assert "private" in str(info.value) or "loopback" in str(info.value)
    assert host.served == []  # refused before connecting
    monkeypatch.setenv("ATDATA_ALLOW_PRIVATE_URLS", "1")
    allowed = mirrored_source(original)
    assert [s.label for s in atdata.Dataset[Point](allowed, cache=False)] == labels
