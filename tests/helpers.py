"""Shared helpers of the local-layer tests: independent encoders, shard writers, a loopback server.

Everything here is built from NumPy, msgpack, ``tarfile`` and WebDataset directly,
never from atdata, so the tests compare atdata against an independent reference.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import struct
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import webdataset as wds

NPY_MAGIC = b"\x93NUMPY"


def npy(array: np.ndarray, version: tuple[int, int] | None = None) -> bytes:
    """The bytes ``np.save`` (or ``write_array`` with an explicit version) writes for ``array``."""
    buf = io.BytesIO()
    if version is None:
        np.save(buf, array, allow_pickle=False)
    else:
        np.lib.format.write_array(buf, array, version=version, allow_pickle=False)
    return buf.getvalue()


def compact(array: np.ndarray) -> bytes:
    """The compact array layout of later atdata releases (inventory section 6.2)."""
    dtype = array.dtype.str.encode("ascii")
    shape = array.shape
    return (
        bytes([len(dtype)])
        + dtype
        + bytes([len(shape)])
        + struct.pack(f"<{len(shape)}q", *shape)
        + np.ascontiguousarray(array).tobytes()
    )


def pack(mapping: dict[str, Any]) -> bytes:
    """The reference msgpack encoding of a payload map (msgpack-python, ``use_bin_type``)."""
    packed = msgpack.packb(mapping, use_bin_type=True)
    assert isinstance(packed, bytes)  # always bytes; the stubs say "bytes | None"
    return packed


def unpack_pairs(payload: bytes) -> list[tuple[Any, Any]]:
    """Decode a payload map keeping the key order as it is on the wire."""
    return msgpack.unpackb(payload, raw=False, object_pairs_hook=list)


def write_wds(path: str | Path, members: Iterable[tuple[str, bytes]]) -> str:
    """Write ``(key, msgpack payload)`` pairs with ``webdataset.TarWriter``; return the path."""
    with wds.writer.TarWriter(str(path)) as sink:
        for key, payload in members:
            sink.write({"__key__": key, "msgpack": payload})
    return str(path)


def write_tar(path: str | Path, members: Iterable[tuple[str, bytes]]) -> str:
    """Write arbitrary ``(member name, bytes)`` pairs with ``tarfile`` (ustar); return the path."""
    with tarfile.open(str(path), "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def tar_members(path: str | Path) -> list[tarfile.TarInfo]:
    """The members of a tar file, as ``tarfile`` reads them."""
    with tarfile.open(str(path)) as tar:
        return tar.getmembers()


def tar_payloads(path: str | Path) -> list[tuple[str, bytes]]:
    """``(member name, bytes)`` of every member, as ``tarfile`` reads them."""
    with tarfile.open(str(path)) as tar:
        out = []
        for info in tar.getmembers():
            f = tar.extractfile(info)
            assert f is not None
            out.append((info.name, f.read()))
        return out


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve_http(handler: Callable[..., http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` over HTTP on a free loopback port, in a thread; yield the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextlib.contextmanager
def serve_directory(directory: str | Path) -> Iterator[str]:
    """Serve ``directory`` over HTTP on a free loopback port; yield the base URL."""
    with serve_http(functools.partial(_QuietHandler, directory=str(directory))) as url:
        yield url


class BytesSource:
    """A minimal ``DataSource`` holding shards in memory (read through the stream parser)."""

    def __init__(self, shards: dict[str, bytes]) -> None:
        self._shards = dict(shards)
        self.opened: list[str] = []

    def list_shards(self) -> list[str]:
        return list(self._shards)

    def open_shard(self, shard_id: str) -> io.BytesIO:
        self.opened.append(shard_id)
        return io.BytesIO(self._shards[shard_id])


class FileSource:
    """A minimal ``DataSource`` over local files, under ids that are not paths."""

    def __init__(self, paths: dict[str, str | Path]) -> None:
        self._paths = {k: str(v) for k, v in paths.items()}

    def list_shards(self) -> list[str]:
        return list(self._paths)

    def open_shard(self, shard_id: str) -> Any:
        return open(self._paths[shard_id], "rb")


def arrays_equal(a: Any, b: Any) -> bool:
    """Both arrays, with the same dtype (byte order included), shape and bytes."""
    return (
        isinstance(a, np.ndarray)
        and isinstance(b, np.ndarray)
        and a.dtype == b.dtype
        and a.dtype.str == b.dtype.str
        and a.shape == b.shape
        and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()
    )


def same(a: Any, b: Any) -> bool:
    """Exact equality of decoded values: same types, arrays byte for byte, NaN bit for bit."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return arrays_equal(a, b)
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if hasattr(a, "__dataclass_fields__"):
        return all(same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return bool(a == b)


@pytest.fixture(autouse=True, scope="module")
def private_atdata_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point ``ATDATA_HOME`` (and so the shard cache) at a fresh directory for a test module."""
    home = tmp_path_factory.mktemp("atdata-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ATDATA_HOME", str(home))
        yield home


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll until ``check`` returns a truthy value (eventual consistency, not a speed check)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
