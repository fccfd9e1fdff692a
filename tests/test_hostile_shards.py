"""Shards written by an adversary: every read ends, in bounded memory, with samples or an AtdataError.

The hostile archives are built byte by byte here (ustar headers, PAX records, GNU
long names, ``.npy`` headers), independently of atdata's writer, and read through
every path a reader of strangers' data takes: a memory-mapped local file, a stream
(in memory and over HTTP), ``len()`` (the offset index) and ``atdata inspect``.
"""

from __future__ import annotations

import http.server
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import atdata
from atdata import AtdataError, SampleError, ShardError
from helpers import BytesSource, private_atdata_home, serve_directory, serve_http  # noqa: F401 - autouse

ATDATA = Path(sys.executable).parent / "atdata"


@atdata.packable
class Item:
    label: int
    note: bytes


@atdata.packable
class Arr:
    x: NDArray[np.float32]


# --------------------------------------------------------------------------- an independent tar builder


def header(name: bytes, size: int | bytes, flag: bytes = b"0", prefix: bytes = b"") -> bytes:
    """One ustar header block with a correct checksum; ``size`` may be a raw 12-byte field."""
    h = bytearray(512)
    h[0 : len(name)] = name
    h[100:108] = b"0000644\0"
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = size if isinstance(size, bytes) else b"%011o\0" % size
    h[136:148] = b"00000000000\0"
    h[156:157] = flag
    h[257:263] = b"ustar\0"
    h[263:265] = b"00"
    h[345 : 345 + len(prefix)] = prefix
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def member(name: bytes, data: bytes, flag: bytes = b"0", size: int | bytes | None = None) -> bytes:
    """A header and its data padded to whole blocks (``size`` overrides the declared size)."""
    return header(name, len(data) if size is None else size, flag) + data + bytes(-len(data) % 512)


def pax(records: bytes) -> bytes:
    return member(b"PaxHeader/x", records, b"x")


def pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n = len(str(n)) + len(body)
    return str(n).encode() + body


def payload(label: int, size: int | None = None) -> bytes:
    """An ``Item`` payload, ``size`` bytes long when given."""
    data = msgpack.packb({"label": label, "note": b""})
    if size is not None:
        n = size - len(data)
        data = msgpack.packb({"label": label, "note": b"n" * n})
        n -= len(data) - size  # a longer bin header
        data = msgpack.packb({"label": label, "note": b"n" * n})
        assert len(data) == size
    return data


def sample(key: str, label: int) -> bytes:
    return member(f"{key}.msgpack".encode(), payload(label))


END = bytes(1024)


def archive(*parts: bytes) -> bytes:
    return b"".join(parts) + END


# --------------------------------------------------------------------------- readers


def read_file(data: bytes, tmp_path: Path, on_error: str = "raise") -> list[int]:
    path = tmp_path / "hostile.tar"
    path.write_bytes(data)
    return [s.label for s in atdata.Dataset[Item](str(path), on_error=on_error)]


def read_stream(data: bytes, tmp_path: Path, on_error: str = "raise") -> list[int]:
    src = BytesSource({str(tmp_path / "hostile.tar"): data})
    return [s.label for s in atdata.Dataset[Item](src, on_error=on_error)]


def read_http(data: bytes, tmp_path: Path, on_error: str = "raise") -> list[int]:
    served = tmp_path / "served"
    served.mkdir(exist_ok=True)
    (served / "hostile.tar").write_bytes(data)
    with serve_directory(served) as url:
        ds = atdata.Dataset[Item](f"{url}/hostile.tar", on_error=on_error, cache=False)
        return [s.label for s in ds]


def read_len(data: bytes, tmp_path: Path, on_error: str = "raise") -> list[int]:
    path = tmp_path / "hostile.tar"
    path.write_bytes(data)
    return list(range(len(atdata.Dataset[Item](str(path)))))


def read_len_stream(data: bytes, tmp_path: Path, on_error: str = "raise") -> list[int]:
    src = BytesSource({str(tmp_path / "hostile.tar"): data})
    return list(range(len(atdata.Dataset[Item](src))))


READERS: dict[str, Callable[..., list[int]]] = {
    "file": read_file,
    "stream": read_stream,
    "http": read_http,
    "len": read_len,
    "len stream": read_len_stream,
}


def shard_error(reader: str, data: bytes, tmp_path: Path) -> ShardError:
    """Read ``data`` with ``reader``; return the ShardError it must raise, checking what it names."""
    with pytest.raises(ShardError) as info:
        READERS[reader](data, tmp_path)
    exc = info.value
    assert exc.shard.endswith("hostile.tar")
    assert isinstance(exc.offset, int) and 0 <= exc.offset <= len(data)
    assert f"at byte offset {exc.offset}" in str(exc)
    return exc


def skipped(reader: str, data: bytes, tmp_path: Path) -> list[int]:
    """Read with ``on_error="skip"``: a warning naming the shard, and the samples before it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        labels = READERS[reader](data, tmp_path, on_error="skip")
    messages = [str(w.message) for w in caught]
    assert any(m.startswith("skipped: ") and "hostile.tar" in m for m in messages), messages
    return labels


STREAMING = ["file", "stream", "http", "len", "len stream"]


# --------------------------------------------------------------------------- PAX records


@pytest.mark.timeout(30)
@pytest.mark.parametrize("reader", STREAMING)
@pytest.mark.parametrize("length", [b"0", b"00", b"-20", b"1", b"x", b"", b"99999"])
def test_a_malformed_pax_record_length_is_a_shard_error(
    reader: str, length: bytes, tmp_path: Path
) -> None:
    data = archive(
        sample("a", 0), pax(length + b" path=b.msgpack\n"), sample("b", 1), sample("c", 2)
    )
    exc = shard_error(reader, data, tmp_path)
    assert exc.offset == 1024 + 512  # the PAX data, after the first sample and the PAX header
    assert "PAX" in str(exc)
    if reader in ("file", "stream", "http"):
        assert skipped(reader, data, tmp_path) == [0]


@pytest.mark.parametrize("reader", ["file", "stream", "http"])
@pytest.mark.parametrize(
    "record",
    [
        b"12 size=-5\n",
        b"12 size=0x5\n",
        b"11 size= 5\n",
        b"9 size=\n",
        pax_record(b"size", b"9" * 21),  # more digits than any real size
        b"19 path=\xff\xfe.msgpack\n",
        b"15 path=b.msgpack",  # no newline at the end of the record
        b"14 pathb.msgpack\n",  # no '='
    ],
)
def test_a_malformed_pax_value_is_a_shard_error(reader: str, record: bytes, tmp_path: Path) -> None:
    data = archive(sample("a", 0), pax(record), sample("b", 1))
    exc = shard_error(reader, data, tmp_path)
    assert exc.offset == 1024 + 512
    assert skipped(reader, data, tmp_path) == [0]


@pytest.mark.parametrize("reader", STREAMING)
def test_a_pax_size_larger_than_the_ustar_size_is_the_member_size(
    reader: str, tmp_path: Path
) -> None:
    """POSIX (and tarfile, and WebDataset): the PAX size is the member's size and extent."""
    body = payload(7, 700)
    data = archive(
        sample("a", 0),
        pax(pax_record(b"size", b"700")),
        header(b"b.msgpack", 100) + body + bytes(-len(body) % 512),
        sample("c", 2),
    )
    assert len(READERS[reader](data, tmp_path)) == 3
    if not reader.startswith("len"):
        assert READERS[reader](data, tmp_path) == [0, 7, 2]


@pytest.mark.parametrize("reader", STREAMING)
def test_a_pax_size_smaller_than_the_ustar_size_is_the_member_size(
    reader: str, tmp_path: Path
) -> None:
    """The data after the PAX size is where the next header is: here zeros, the archive's end."""
    body = payload(7, 100)
    data = archive(
        sample("a", 0),
        pax(pax_record(b"size", b"100")),
        header(b"b.msgpack", 1500) + body + bytes(1536 - len(body)),
        sample("c", 2),
    )
    assert len(READERS[reader](data, tmp_path)) == 2
    if not reader.startswith("len"):
        assert READERS[reader](data, tmp_path) == [0, 7]


@pytest.mark.parametrize("reader", STREAMING)
@pytest.mark.parametrize("size", [b"100000", str(2**80).encode(), b"9" * 19])
def test_a_pax_size_past_the_end_of_the_shard_is_a_shard_error(
    reader: str, size: bytes, tmp_path: Path
) -> None:
    body = payload(7, 100)
    data = archive(
        sample("a", 0),
        pax(pax_record(b"size", size)),
        header(b"b.msgpack", 100) + body + bytes(-len(body) % 512),
        sample("c", 2),
    )
    exc = shard_error(reader, data, tmp_path)
    assert exc.offset in (1536, 2048)  # the PAX record (a size no reader holds) or its member
    if reader in ("file", "stream", "http"):
        assert skipped(reader, data, tmp_path) == [0]


# --------------------------------------------------------------------------- ustar sizes


@pytest.mark.timeout(30)
@pytest.mark.parametrize("reader", STREAMING)
@pytest.mark.parametrize(
    "field", [b"-0000001000\0", b"-1\0" + bytes(9), b"\xff" + b"\xff" * 11, b"1_0\0" + bytes(8)]
)
def test_a_negative_or_odd_ustar_size_is_a_shard_error(
    reader: str, field: bytes, tmp_path: Path
) -> None:
    data = archive(sample("a", 0), header(b"b.msgpack", field) + bytes(512), sample("c", 2))
    exc = shard_error(reader, data, tmp_path)
    assert exc.offset == 1024


# --------------------------------------------------------------------------- member names


NAME_CASES = {
    "plain": lambda: header(b"\xff\xfe.msgpack", 5) + bytes(512),
    "prefix": lambda: header(b"b.msgpack", 5, prefix=b"dir\xc3") + bytes(512),
    "GNU long name": lambda: (
        member(b"././@LongLink", b"\xff" * 120 + b".msgpack\0", b"L")
        + header(b"b.msgpack", 5)
        + bytes(512)
    ),
    "PAX path": lambda: (
        pax(pax_record(b"path", b"\xe9t\xe9.msgpack")) + header(b"b.msgpack", 5) + bytes(512)
    ),
}


@pytest.mark.parametrize("reader", STREAMING)
@pytest.mark.parametrize("case", list(NAME_CASES))
def test_a_member_name_that_is_not_utf8_is_a_shard_error(
    reader: str, case: str, tmp_path: Path
) -> None:
    data = archive(sample("a", 0), NAME_CASES[case](), sample("c", 2))
    exc = shard_error(reader, data, tmp_path)
    assert "UTF-8" in str(exc)
    assert exc.offset >= 1024
    if reader in ("file", "stream", "http"):
        assert skipped(reader, data, tmp_path) == [0]


def test_a_huge_gnu_long_name_is_refused(tmp_path: Path) -> None:
    name = b"n" * (2 << 20)
    data = archive(member(b"././@LongLink", name, b"L"), sample("b", 1))
    for reader in ("file", "stream"):
        exc = shard_error(reader, data, tmp_path)
        assert exc.offset == 0


def test_extended_names_apply_to_the_next_member_only(tmp_path: Path) -> None:
    """A PAX path followed by a directory does not rename the file after the directory."""
    data = archive(
        pax(pax_record(b"path", b"renamed.msgpack")),
        header(b"dir/", 0, b"5"),
        sample("c", 2),
    )
    assert read_file(data, tmp_path) == read_stream(data, tmp_path) == [2]
    assert atdata.Dataset[Item](str(tmp_path / "hostile.tar")).get("c").label == 2


# --------------------------------------------------------------------------- streamed sizes


@pytest.mark.parametrize("reader", ["stream", "http", "len stream"])
@pytest.mark.parametrize("size", [1 << 40, 2**80, (1 << 33) + 5])
def test_a_streamed_member_declaring_a_huge_size_is_a_shard_error(
    reader: str, size: int, tmp_path: Path
) -> None:
    field = b"%011o\0" % size if size < 8**11 else b"\x80" + size.to_bytes(11, "big")
    data = archive(sample("a", 0), header(b"b.msgpack", field) + bytes(4096))
    tracemalloc.start()
    try:
        exc = shard_error(reader, data, tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert exc.offset == 1024
    assert peak < 64 << 20


# --------------------------------------------------------------------------- the command line


@pytest.mark.timeout(120)
def test_atdata_inspect_reports_a_hostile_shard(tmp_path: Path) -> None:
    path = tmp_path / "hostile.tar"
    path.write_bytes(archive(sample("a", 0), pax(b"0 path=b.msgpack\n"), sample("b", 1)))
    proc = subprocess.run(
        [str(ATDATA), "inspect", str(path)],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith(("ATDATA_", "AWS_"))},
            "ATDATA_HOME": str(tmp_path / "home"),
            "COLUMNS": "200",
        },
    )
    assert proc.returncode != 0
    assert "hostile.tar at byte offset 1536" in proc.stderr
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- .npy headers


def npy_with_header(text: str, data: bytes = b"", version: int = 1) -> bytes:
    """A ``.npy`` value whose header is ``text`` (padded to 64 bytes as NumPy pads it)."""
    prefix = 10 if version == 1 else 12
    body = text + " " * (-(prefix + len(text) + 1) % 64) + "\n"
    raw = body.encode("latin1" if version < 3 else "utf-8")
    size = len(raw).to_bytes(2 if version == 1 else 4, "little")
    return b"\x93NUMPY" + bytes([version, 0]) + size + raw + data


def arr_error(value: bytes, tmp_path: Path) -> SampleError:
    path = tmp_path / "arrays.tar"
    path.write_bytes(archive(member(b"k0.msgpack", msgpack.packb({"x": value}, use_bin_type=True))))
    with pytest.raises(SampleError) as info:
        list(atdata.Dataset[Arr](str(path)))
    assert info.value.key == "k0" and info.value.field == "x"
    return info.value


HOSTILE_HEADERS = {
    "unknown descr 'x'": "{'descr': 'x', 'fortran_order': False, 'shape': (1,), }",
    "descr 5": "{'descr': 5, 'fortran_order': False, 'shape': (1,), }",
    "descr None": "{'descr': None, 'fortran_order': False, 'shape': (1,), }",
    "a call": "{'descr': __import__('os').getcwd(), 'fortran_order': False, 'shape': (1,), }",
    "a set": "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': {1, 2}}",
    "an extra key": "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}",
    "a missing key": "{'descr': '<f4', 'shape': (1,), }",
    "bytes descr": "{'descr': b'<f4', 'fortran_order': False, 'shape': (1,), }",
    "negative dim": "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }",
    "float dim": "{'descr': '<f4', 'fortran_order': False, 'shape': (1.0,), }",
    "huge dim": "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 2**70), }",
    "huge literal dim": "{'descr': '<f4', 'fortran_order': False, 'shape': (0, "
    + "9" * 30
    + "), }",
    "65 dims": "{'descr': '<f4', 'fortran_order': False, 'shape': (" + "1, " * 65 + "), }",
    "fortran 1": "{'descr': '<f4', 'fortran_order': 1, 'shape': (1,), }",
    "not a dict": "['<f4', False, (1,)]",
    "nested lists": "{'descr': " + "[" * 5000 + "]" * 5000 + ", 'fortran_order': False}",
    "unterminated": "{'descr': '<f4', 'fortran_order': False, 'shape': (1,",
    "object dtype": "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
    "structured with object": "{'descr': [('a', '|O')], 'fortran_order': False, 'shape': (1,), }",
    "absurd struct": "{'descr': [('a', '<f4', (2**40, 2**40))], 'fortran_order': False, "
    "'shape': (1,), }",
}


@pytest.mark.parametrize("case", list(HOSTILE_HEADERS))
def test_a_hostile_npy_header_is_a_sample_error_naming_the_field(case: str, tmp_path: Path) -> None:
    arr_error(npy_with_header(HOSTILE_HEADERS[case], bytes(4)), tmp_path)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("version", [2, 3])
def test_an_npy_header_longer_than_numpys_limit_is_refused_cheaply(
    version: int, tmp_path: Path
) -> None:
    """NumPy's ``max_header_size`` (10,000 bytes); a 4 MiB header once cost 2 GB and 28 s."""
    valid_but_long = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }" + " " * 20_000
    exc = arr_error(npy_with_header(valid_but_long, bytes(4), version), tmp_path)
    assert "10000" in str(exc)
    hostile = "{'descr': " + "(" * (4 << 20) + "}"
    tracemalloc.start()
    try:
        arr_error(npy_with_header(hostile, b"", version), tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20


@pytest.mark.parametrize(
    "array",
    [
        np.arange(6, dtype="<f4").reshape(2, 3),
        np.zeros((0, 3), dtype=">i8"),
        np.array(3.5),
        np.array(["a", "bc"]),
        np.array([b"x", b"yz"]),
        np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8", (2,)), ("c", [("d", "u1")])]),
        np.zeros(3, dtype="datetime64[ns]"),
        np.asfortranarray(np.arange(6, dtype="u2").reshape(2, 3)),
        np.zeros(2, dtype=[("na'me", "<i4"), ('q"uote\\', "u1")]),
        np.zeros(2, dtype=[("\u00e9t\u00e9", "<i4")]),
    ],
)
@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_every_header_numpy_writes_still_reads(array: np.ndarray, version: tuple[int, int]) -> None:
    from atdata.arrays import array_from_bytes

    if version < (3, 0) and array.dtype.names and any(not n.isascii() for n in array.dtype.names):
        return  # NumPy itself writes such names only in format 3.0
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, version=version, allow_pickle=False)
    got = array_from_bytes(buf.getvalue())
    assert got.dtype == array.dtype and got.shape == array.shape
    assert got.tobytes() == array.tobytes() or np.array_equal(got, array)


def test_the_npy_header_cache_is_bounded_in_bytes() -> None:
    """Distinct long headers do not stay resident (an LRU of 4,096 of them held 234 MiB)."""
    import gc

    from atdata.arrays import array_from_bytes

    base = "{'descr': '|u1', 'fortran_order': False, 'shape': (%d,), }"
    values = [npy_with_header(base % i + " " * 9000, bytes(i)) for i in range(1500)]
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for v in values:
            array_from_bytes(v)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 4 << 20


# --------------------------------------------------------------------------- duplicate keys


def test_get_refuses_a_key_that_names_two_samples_in_one_shard(tmp_path: Path) -> None:
    path = tmp_path / "dups.tar"
    path.write_bytes(archive(sample("k0", 0), sample("k1", 1), sample("k0", 2)))
    ds = atdata.Dataset[Item](str(path))
    assert [s.label for s in ds] == [0, 1, 2]  # iteration yields every sample
    assert ds.get("k1").label == 1
    with pytest.raises(SampleError) as info:
        ds.get("k0")
    exc = info.value
    assert isinstance(exc, AtdataError) and exc.key == "k0" and exc.shard == str(path)
    assert "byte offset 0" in str(exc) and "byte offset 2048" in str(exc)


def test_get_refuses_a_key_that_names_samples_in_two_shards(tmp_path: Path) -> None:
    first, second = tmp_path / "a.tar", tmp_path / "b.tar"
    first.write_bytes(archive(sample("k0", 0), sample("k1", 1)))
    second.write_bytes(archive(sample("k2", 2), sample("k1", 3)))
    ds = atdata.Dataset[Item]([str(first), str(second)])
    assert ds.get("k2").label == 2
    with pytest.raises(SampleError) as info:
        ds.get("k1")
    assert str(first) in str(info.value) and str(second) in str(info.value)
    with pytest.raises(KeyError):
        ds.get("k9")


def test_len_and_list_honour_skip_for_a_hostile_shard(tmp_path: Path) -> None:
    """``list(ds)`` asks ``len(ds)`` first: with ``on_error="skip"`` neither raises."""
    good, bad = tmp_path / "good.tar", tmp_path / "hostile.tar"
    good.write_bytes(archive(sample("a", 0), sample("b", 1)))
    bad.write_bytes(
        archive(sample("c", 2), header(b"\xff.msgpack", 5) + bytes(512), sample("d", 3))
    )
    ds = atdata.Dataset[Item]([str(good), str(bad)], on_error="skip")
    with pytest.warns(UserWarning, match="hostile.tar at byte offset 1024"):
        assert len(ds) == 2
    with pytest.warns(UserWarning, match="hostile.tar at byte offset 1024"):
        assert [s.label for s in list(ds)] == [0, 1, 2]
    with pytest.raises(ShardError):
        len(atdata.Dataset[Item]([str(good), str(bad)]))


# --------------------------------------------------------------------------- the property


@atdata.packable
class Rec:
    label: int
    x: NDArray[np.float32]


def _rec_payload(i: int, npy_value: bytes | None = None) -> bytes:
    value = npy_value if npy_value is not None else npy_bytes(np.full(4, i, np.float32))
    return msgpack.packb({"label": i, "x": value}, use_bin_type=True)


def npy_bytes(array: np.ndarray, version: tuple[int, int] = (1, 0)) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, version=version, allow_pickle=False)
    return buf.getvalue()


def _long(i: int) -> bytes:
    return b"d" * 120 + b"%d.msgpack" % i


def base_shards() -> dict[str, list[bytes]]:
    """Valid shards as lists of members: plain, PAX names and sizes, GNU long names, tarfile's."""
    plain = [member(b"k%d.msgpack" % i, _rec_payload(i)) for i in range(4)]
    with_pax = []
    for i in range(4):
        body = _rec_payload(i)
        records = pax_record(b"path", _long(i))
        if i == 2:
            records += pax_record(b"size", str(len(body)).encode())
        with_pax += [pax(records), member(b"short.msgpack", body)]
    gnu = []
    for i in range(3):
        gnu += [
            member(b"././@LongLink", _long(i) + b"\0", b"L"),
            member(b"x.msgpack", _rec_payload(i)),
        ]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for i in range(3):
            data = _rec_payload(i)
            info = tarfile.TarInfo(("é" * 60 if i == 1 else "t") + f"/k{i}.msgpack")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return {"plain": plain, "pax": with_pax, "gnu": gnu, "tarfile": [buf.getvalue()[:-1024]]}


BASES = base_shards()

PAX_RECORDS = st.lists(
    st.one_of(
        st.builds(
            pax_record,
            st.sampled_from([b"path", b"size", b"mtime", b"linkpath"]),
            st.one_of(
                st.binary(max_size=24),
                st.sampled_from([b"-5", b"0", b"512", b"1000000000", str(2**80).encode()]),
                st.integers(0, 3000).map(lambda n: str(n).encode()),
            ),
        ),
        st.builds(
            lambda n, rest: n + b" " + rest,
            st.sampled_from([b"0", b"00", b"-1", b"1", b"5", b"99", b"", b"x"]),
            st.binary(max_size=20),
        ),
        st.binary(max_size=40),
    ),
    max_size=4,
).map(b"".join)

VALID_HEADER = "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }"
NPY_HEADERS = st.one_of(
    st.text(max_size=80),
    st.sampled_from(list(HOSTILE_HEADERS.values())),
    st.tuples(st.integers(0, len(VALID_HEADER) - 1), st.text(max_size=3)).map(
        lambda p: VALID_HEADER[: p[0]] + p[1] + VALID_HEADER[p[0] + 1 :]
    ),
)
SIZE_FIELDS = st.one_of(
    st.binary(min_size=12, max_size=12),
    st.sampled_from(
        [b"-0000001000\0", b"\x80" + (1 << 40).to_bytes(11, "big"), b"\xff" * 12, b" " * 12]
    ),
    st.integers(0, 5000).map(lambda n: b"%011o\0" % n),
)


@st.composite
def hostile_shards(draw: st.DrawFn) -> bytes:
    parts = list(BASES[draw(st.sampled_from(sorted(BASES)))])
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(parts) - 1))
        kind = draw(st.sampled_from(["pax", "gnu", "npy", "size", "name", "flag", "none"]))
        if kind == "pax":
            parts.insert(i, pax(draw(PAX_RECORDS)))
        elif kind == "gnu":
            parts.insert(i, member(b"././@LongLink", draw(st.binary(max_size=300)), b"L"))
        elif kind == "npy":
            text = draw(NPY_HEADERS)
            version = draw(st.sampled_from([1, 2, 3]))
            try:
                value = npy_with_header(text, bytes(16), version)
            except UnicodeEncodeError:
                value = npy_with_header(text, bytes(16), 3)
            parts[i] = member(b"n%d.msgpack" % i, _rec_payload(i, value))
        elif kind == "size":
            parts[i] = header(b"s%d.msgpack" % i, draw(SIZE_FIELDS)) + parts[i][512:]
        elif kind == "name":
            parts[i] = header(draw(st.binary(min_size=1, max_size=100)), len(parts[i]) - 512)
            parts[i] += bytes(-len(parts[i]) % 512)
        elif kind == "flag":
            flag = draw(st.sampled_from([b"x", b"L", b"g", b"5", b"2", b"K", b"\xff"]))
            parts[i] = header(b"f%d.msgpack" % i, len(parts[i]) - 512, flag) + parts[i][512:]
    data = bytearray(b"".join(parts) + END)
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2, 3]))):  # raw damage: bad checksums
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] = draw(st.integers(0, 255))
    if draw(st.integers(0, 3)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def _signature(exc: AtdataError) -> tuple[Any, ...]:
    return (
        type(exc).__name__,
        getattr(exc, "shard", None),
        getattr(exc, "offset", None),
        getattr(exc, "key", None),
        getattr(exc, "field", None),
    )


def _outcome(ds: Any) -> tuple[list[Any], tuple[Any, ...] | None]:
    got: list[Any] = []
    try:
        for s in ds:
            got.append((s.label, s.x.dtype.str, s.x.shape, s.x.tobytes()))
    except AtdataError as exc:
        return got, _signature(exc)
    return got, None


def _count(ds: Any) -> int | tuple[Any, ...]:
    try:
        return len(ds)
    except AtdataError as exc:
        return _signature(exc)


_SEQ = iter(range(10**9))
_DIR = Path(tempfile.mkdtemp(prefix="atdata-hostile-"))


@pytest.mark.timeout(900)
@settings(
    max_examples=500,
    deadline=timedelta(seconds=20),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(hostile_shards())
def test_any_corruption_gives_samples_or_an_atdata_error_alike_in_both_readers(data: bytes) -> None:
    path = _DIR / f"h{next(_SEQ)}.tar"
    path.write_bytes(data)
    try:
        tracemalloc.start()
        try:
            from_file = _outcome(atdata.Dataset[Rec](str(path)))
            from_stream = _outcome(atdata.Dataset[Rec](BytesSource({str(path): data})))
            count_file = _count(atdata.Dataset[Rec](str(path)))
            count_stream = _count(atdata.Dataset[Rec](BytesSource({str(path): data})))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        path.unlink()
    event(f"read: {from_file[1][0] if from_file[1] else 'samples only'}")
    event(f"samples: {'some' if from_file[0] else 'none'}")
    assert from_file == from_stream
    assert count_file == count_stream
    assert peak < 64 << 20


@pytest.mark.parametrize("case", ["unknown descr 'x'", "descr 5", "nested lists"])
def test_an_untyped_reader_keeps_a_hostile_npy_value_as_bytes(case: str, tmp_path: Path) -> None:
    """Without a schema, bytes that merely start like ``.npy`` stay bytes (was: TypeError)."""
    value = npy_with_header(HOSTILE_HEADERS[case], bytes(4))
    path = tmp_path / "untyped.tar"
    path.write_bytes(archive(member(b"k0.msgpack", msgpack.packb({"x": value}))))
    (only,) = list(atdata.Dataset(str(path)))
    assert only.x == value


@pytest.mark.parametrize("reader", ["file", "stream"])
@pytest.mark.parametrize("flag", [b"x", b"g", b"L", b"K"])
def test_an_extended_header_over_a_mebibyte_is_refused(
    reader: str, flag: bytes, tmp_path: Path
) -> None:
    data = archive(sample("a", 0), member(b"ext", b"1" * ((1 << 20) + 1), flag), sample("b", 1))
    assert shard_error(reader, data, tmp_path).offset == 1024


class _DictHandler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self) -> None:
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def bytes_server() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A loopback HTTP server answering GETs from a dict of path -> bytes."""
    files: dict[str, bytes] = {}
    with serve_http(type("Handler", (_DictHandler,), {"files": files})) as url:
        yield url, files


@pytest.mark.timeout(900)
@settings(
    max_examples=100,
    deadline=timedelta(seconds=20),
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(data=hostile_shards())
def test_any_corruption_reads_the_same_over_http(
    bytes_server: tuple[str, dict[str, bytes]], data: bytes
) -> None:
    """The HTTP stream (a buffered socket, no cache) reads a hostile shard as the local file does."""
    base, files = bytes_server
    name = f"/h{next(_SEQ)}.tar"
    files[name] = data
    path = _DIR / name[1:]
    path.write_bytes(data)
    try:
        from_file = _outcome(atdata.Dataset[Rec](str(path)))
        from_http = _outcome(atdata.Dataset[Rec](base + name, cache=False))
    finally:
        path.unlink()
        del files[name]
    samples, error = from_http
    assert samples == from_file[0]
    assert (error is None) == (from_file[1] is None)
    if error is not None:
        assert error[0] == from_file[1][0] and error[2:] == from_file[1][2:]  # the shard id differs
        assert error[1] == base + name


def test_a_checksum_field_with_a_stray_byte_is_corrupt_in_both_readers(tmp_path: Path) -> None:
    """Found by the property above: the file reader's batched check ignored a stray byte in
    the checksum field that the stream reader refused; both now refuse it at its header."""
    header = bytearray(512)
    header[0:11] = b"PaxHeader/x"
    header[100:108] = b"0000644\x00"
    header[124:136] = b"00000000000\x00"
    header[156:157] = b"x"
    header[257:265] = b"ustar\x0000"
    header[148:156] = b" " * 8
    total = sum(header)
    header[148:156] = b"\x01" + f"{total:05o}".encode() + b"\x00 "
    data = bytes(header)
    path = tmp_path / "stray.tar"
    path.write_bytes(data)
    from_file = _outcome(atdata.Dataset[Rec](str(path)))
    from_stream = _outcome(atdata.Dataset[Rec](BytesSource({str(path): data})))
    assert from_file == from_stream
    assert from_file[1][:3] == ("ShardError", str(path), 0)
