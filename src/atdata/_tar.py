"""The hot path: reading and writing tar shards.

Local shards are memory-mapped and walked header by header (512-byte ustar
headers, PAX and GNU long names); payloads are handed out as memoryviews into
the map, so no byte is copied before decoding. Streams (HTTP, S3) are parsed
with the same rules from a file object. The writer emits POSIX ustar members
(PAX headers for long names), readable by ``tarfile`` and WebDataset.
"""

from __future__ import annotations

import io
import mmap
import os
import stat
import struct
from collections.abc import Iterator
from typing import IO, Any

import numpy as np

from atdata.errors import ShardError

__all__ = ["TarWriter", "iter_members"]

BLOCK = 512
RECORD = 20 * BLOCK
# name, size, checksum, typeflag, magic, prefix
_HEADER = struct.Struct("100s24x12s12x8sc100x6s82x155s12x")
_ZERO_BLOCK = bytes(BLOCK)


#: Largest PAX extended header or GNU long name accepted (a name longer than this is hostile).
MAX_EXTENDED_HEADER = 1 << 20
#: Largest member the stream reader holds in memory (memory-mapped files have no such limit).
MAX_STREAM_MEMBER = 1 << 30
_FILE_FLAGS = (b"0", b"\0", b"7")
_EXTENDED_FLAGS = (b"x", b"g", b"L", b"K")
_OCTAL = b"01234567"

# Both readers follow one set of rules, in the helpers below:
# - a ustar size field is octal digits up to its first NUL, spaces around them allowed
#   (or GNU base-256, positive), anything else is an error;
# - a PAX ``size`` is the member's size and the extent of its data (POSIX, as tarfile
#   and WebDataset read it); a PAX ``path`` or GNU long name names the next member only;
# - names are UTF-8; PAX records are ``"<len> <key>=<value>\n"`` with ``len`` counting
#   the whole record; extended headers are at most MAX_EXTENDED_HEADER bytes.


def _size(field: bytes, shard: str, offset: int) -> int:
    """The size in a ustar size field (the rule above); ``offset`` is the header's."""
    digits = field[:11]
    if field[11] == 0 and digits.isdigit():  # the usual "%011o\0"
        try:
            return int(digits, 8)
        except ValueError:
            pass  # an 8 or a 9: the slow path below says so
    if field[0] & 0x80:  # GNU base-256 for sizes >= 8 GiB
        if field[0] != 0x80:
            raise ShardError(shard, "negative member size (base-256 field)", offset=offset)
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip(b" ")
    if text.translate(None, _OCTAL):
        raise ShardError(shard, f"not a tar header (size field {field!r})", offset=offset)
    return int(text, 8) if text else 0


def _not_utf8(shard: str, offset: int) -> ShardError:
    return ShardError(shard, "member name is not UTF-8", offset=offset)


def _name(name_b: bytes, prefix: bytes, shard: str, offset: int) -> str:
    """A member's name from its ustar ``name`` and ``prefix`` fields."""
    try:
        name = name_b.split(b"\0", 1)[0].decode("utf-8")
        if prefix[0] != 0:
            name = prefix.split(b"\0", 1)[0].decode("utf-8") + "/" + name
    except UnicodeDecodeError:
        raise _not_utf8(shard, offset) from None
    return name


def _check_extended(size: int, shard: str, offset: int) -> None:
    if size > MAX_EXTENDED_HEADER:
        raise ShardError(
            shard,
            f"extended header of {size} bytes (at most {MAX_EXTENDED_HEADER} are accepted)",
            offset=offset,
        )


def _long_name(data: bytes | memoryview, shard: str, offset: int) -> str:
    """The name in a GNU long-name member (``offset`` is its header's)."""
    try:
        return bytes(data).split(b"\0", 1)[0].decode("utf-8")
    except UnicodeDecodeError:
        raise _not_utf8(shard, offset) from None


def _pax(data: bytes | memoryview, shard: str, offset: int) -> tuple[str | None, int | None]:
    """The ``path`` and ``size`` of a PAX extended header whose data starts at ``offset``."""
    path = size = None
    raw = bytes(data)
    end = len(raw)
    pos = 0
    while pos < end and raw[pos] != 0:  # NUL padding after the records is allowed
        space = raw.find(b" ", pos, pos + 21)
        digits = raw[pos:space]
        length = int(digits) if space > pos and digits.isdigit() else 0
        stop = pos + length
        if length <= len(digits) + 1 or stop > end or raw[stop - 1] != 0x0A:
            raise ShardError(
                shard, f"malformed PAX record (length {digits[:20]!r})", offset=offset + pos
            )
        key, eq, value = raw[space + 1 : stop - 1].partition(b"=")
        if not eq or not key:
            raise ShardError(shard, "malformed PAX record (no key=value)", offset=offset + pos)
        if key == b"path":
            try:
                path = value.decode("utf-8")
            except UnicodeDecodeError:
                raise ShardError(
                    shard, "member name is not UTF-8 (PAX path)", offset=offset + pos
                ) from None
        elif key == b"size":
            if not value.isdigit() or len(value) > 20:
                raise ShardError(shard, f"malformed PAX size {value[:24]!r}", offset=offset + pos)
            size = int(value)
        pos = stop
    return path, size


def _checksum_ok(header: bytes | memoryview) -> bool:
    """Verify a header's checksum (unsigned sum, or the signed sum some old writers used)."""
    field = bytes(header[148:156]).strip(b" \0")
    try:
        expected = int(field, 8)
    except ValueError:
        return False
    raw = bytes(header[:148]) + b"        " + bytes(header[156:BLOCK])
    return expected == sum(raw) or expected == sum(b - 256 if b > 127 else b for b in raw)


def _first_bad_header(blocks: np.ndarray, offsets: list[int]) -> int | None:
    """The offset of the first header whose checksum is wrong, checking many at once.

    Vectorised with NumPy (about 0.1 µs a header), so verifying costs little.
    """
    rows = blocks[np.asarray(offsets, dtype=np.int64) >> 9]
    field = rows[:, 148:156].astype(np.int64)
    sums = rows.sum(axis=1, dtype=np.int64) - field.sum(axis=1) + 8 * 32
    digit = (field >= 48) & (field <= 55)
    expected = np.zeros(len(offsets), dtype=np.int64)
    for j in range(8):
        expected = np.where(digit[:, j], expected * 8 + (field[:, j] - 48), expected)
    # a byte other than a digit, space or NUL, or a gap between digits: the strict parse below
    # decides, so the file and the stream reader judge every header alike
    odd = (~digit & (field != 0) & (field != 32)).any(axis=1) | ~digit.any(axis=1)
    first = digit.argmax(axis=1)[:, None]
    last = 7 - digit[:, ::-1].argmax(axis=1)[:, None]
    span = np.arange(8)
    odd |= (~digit & (span >= first) & (span <= last)).any(axis=1)
    for i in np.flatnonzero((sums != expected) | odd):
        if not _checksum_ok(rows[i].tobytes()):
            return offsets[i]
    return None


def _checked(
    blocks: np.ndarray, headers: list[int], pending: list[tuple[str, int, int]], shard: str
) -> Iterator[tuple[str, int, int]]:
    """Yield the pending members whose headers are intact; raise at the first corrupt header."""
    bad = _first_bad_header(blocks, headers) if headers else None
    if bad is None:
        yield from pending
        return
    for member in pending:
        if member[1] - BLOCK >= bad:
            break
        yield member
    raise ShardError(shard, "tar header checksum does not match (corrupt header)", offset=bad)


_VERIFY_EVERY = 1024


def iter_members(buf: Any, shard: str) -> Iterator[tuple[str, int, int]]:
    """Yield ``(name, data_offset, size)`` for each regular file in an in-memory tar.

    ``buf`` is an ``mmap`` or any buffer. Header checksums are verified in
    batches before the members they cover are yielded. Raises
    :class:`ShardError` naming the shard and byte offset for a truncated or
    corrupt archive (an archive must end with its end-of-archive block).
    """
    end = len(buf)
    if end == 0:
        raise ShardError(shard, "empty file: not a tar archive", offset=0)
    blocks = np.frombuffer(buf, dtype=np.uint8, count=(end // BLOCK) * BLOCK).reshape(-1, BLOCK)
    unpack = _HEADER.unpack_from
    off = 0
    ext_name: str | None = None  # from a PAX header or a GNU long name, for the next member
    ext_size: int | None = None
    pending: list[tuple[str, int, int]] = []
    headers: list[int] = []
    try:
        while True:
            if off + BLOCK > end:
                if off == end:
                    raise ShardError(
                        shard,
                        "truncated: the archive ends without its end-of-archive block",
                        offset=off,
                    )
                raise ShardError(
                    shard, f"truncated tar header ({end - off} of 512 bytes)", offset=off
                )
            name_b, size_b, _chk, flag, magic, prefix = unpack(buf, off)
            if name_b[0] == 0:
                if buf[off : off + BLOCK] == _ZERO_BLOCK:
                    break  # end of archive
                raise ShardError(shard, "tar header without a member name", offset=off)
            if magic[:5] != b"ustar":
                raise ShardError(shard, "not a tar header (no ustar magic)", offset=off)
            digits = size_b[:11]  # _size's fast path, inlined (the hottest line)
            if size_b[11] == 0 and digits.isdigit():
                try:
                    size = int(digits, 8)
                except ValueError:
                    size = _size(size_b, shard, off)
            else:
                size = _size(size_b, shard, off)
            if ext_size is not None and flag not in _EXTENDED_FLAGS:
                size = ext_size
            data = off + BLOCK
            next_off = data + ((size + BLOCK - 1) & ~(BLOCK - 1))
            if next_off > end:
                raise ShardError(
                    shard,
                    f"truncated member: header says {size} bytes, {max(end - data, 0)} remain",
                    offset=off,
                )
            headers.append(off)
            if flag in _FILE_FLAGS:
                if ext_name is None:
                    name = name_b.split(b"\0", 1)[0].decode("utf-8")  # see the except below
                    if prefix[0] != 0:
                        name = prefix.split(b"\0", 1)[0].decode("utf-8") + "/" + name
                else:
                    name = ext_name
                ext_name = ext_size = None
                pending.append((name, data, size))
                if len(pending) >= _VERIFY_EVERY:
                    batch, checked = pending, headers
                    pending, headers = [], []
                    yield from _checked(blocks, checked, batch, shard)
            elif flag == b"x":
                _check_extended(size, shard, off)
                path, pax_size = _pax(buf[data : data + size], shard, data)
                ext_name = path if path is not None else ext_name
                ext_size = pax_size if pax_size is not None else ext_size
            elif flag == b"L":
                _check_extended(size, shard, off)
                ext_name = _long_name(buf[data : data + size], shard, off)
            elif flag in _EXTENDED_FLAGS:
                _check_extended(size, shard, off)
            else:
                ext_name = ext_size = None
            off = next_off
    except (ShardError, UnicodeDecodeError) as exc:
        error = exc if isinstance(exc, ShardError) else _not_utf8(shard, off)
        # report the first problem in file order: a corrupt header before this point wins
        yield from _checked(blocks, headers, pending, shard)
        raise error from None
    yield from _checked(blocks, headers, pending, shard)


_CHUNK = 1 << 20


def _read_exact(stream: IO[bytes] | io.RawIOBase, n: int) -> bytes:
    """``n`` bytes of ``stream``, or fewer at its end; memory grows only with what arrives."""
    data = stream.read(min(n, _CHUNK)) or b""
    if len(data) == n:
        return data
    parts = [data]
    got = len(data)
    while got < n:
        more = stream.read(min(n - got, _CHUNK))
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def iter_stream_members(
    stream: IO[bytes] | io.RawIOBase, shard: str
) -> Iterator[tuple[str, int, bytes]]:
    """Like :func:`iter_members` for a non-seekable stream: yields ``(name, offset, payload)``.

    A member larger than :data:`MAX_STREAM_MEMBER` is refused before it is read.
    """
    off = 0
    ext_name: str | None = None
    ext_size: int | None = None
    while True:
        header = _read_exact(stream, BLOCK)
        if not header:
            what = (
                "empty file: not a tar archive"
                if off == 0
                else "truncated: the archive ends without its end-of-archive block"
            )
            raise ShardError(shard, what, offset=off)
        if len(header) < BLOCK:
            raise ShardError(
                shard, f"truncated tar header ({len(header)} of 512 bytes)", offset=off
            )
        name_b, size_b, _chk, flag, magic, prefix = _HEADER.unpack(header)
        if name_b[0] == 0:
            if header == _ZERO_BLOCK:
                return
            raise ShardError(shard, "tar header without a member name", offset=off)
        if magic[:5] != b"ustar":
            raise ShardError(shard, "not a tar header (no ustar magic)", offset=off)
        if not _checksum_ok(header):
            raise ShardError(
                shard, "tar header checksum does not match (corrupt header)", offset=off
            )
        size = _size(size_b, shard, off)
        if ext_size is not None and flag not in _EXTENDED_FLAGS:
            size = ext_size
        if flag in _EXTENDED_FLAGS:
            _check_extended(size, shard, off)
        elif size > MAX_STREAM_MEMBER:
            raise ShardError(
                shard,
                f"member of {size} bytes: the stream reader holds at most "
                f"{MAX_STREAM_MEMBER} bytes in memory (a cached or local shard has no limit)",
                offset=off,
            )
        padded = (size + BLOCK - 1) & ~(BLOCK - 1)
        payload = _read_exact(stream, padded)
        if len(payload) < padded:
            raise ShardError(
                shard,
                f"truncated member: header says {size} bytes, {min(len(payload), size)} remain",
                offset=off,
            )
        data = off + BLOCK
        if flag in _FILE_FLAGS:
            name = _name(name_b, prefix, shard, off) if ext_name is None else ext_name
            ext_name = ext_size = None
            yield name, data, payload[:size] if padded != size else payload
        elif flag == b"x":
            path, pax_size = _pax(payload[:size], shard, data)
            ext_name = path if path is not None else ext_name
            ext_size = pax_size if pax_size is not None else ext_size
        elif flag == b"L":
            ext_name = _long_name(payload[:size], shard, off)
        elif flag not in _EXTENDED_FLAGS:
            ext_name = ext_size = None
        off = data + padded


def split_name(name: str) -> tuple[str, str]:
    """A member name's sample key and extension, by WebDataset's rule: the key is the
    path up to the first dot of the base name.

    >>> split_name("train/cat.0001.msgpack")
    ('train/cat', '0001.msgpack')
    """
    base = name.rfind("/") + 1
    dot = name.find(".", base)
    if dot < 0:
        return name, ""
    return name[:dot], name[dot + 1 :]


def map_file(stream: IO[bytes]) -> mmap.mmap | None:
    """Memory-map ``stream`` if it is a regular local file, else return None."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
        return None
    mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    if hasattr(mm, "madvise") and hasattr(mmap, "MADV_SEQUENTIAL"):
        mm.madvise(mmap.MADV_SEQUENTIAL)
    return mm


# --------------------------------------------------------------------------- writing


def tar_size(offset: int, name: str, size: int) -> int:
    """File size of a tar written up to ``offset`` once a member ``name`` of ``size`` bytes
    is appended and the archive closed (a PAX header for a long name, end blocks, whole records).

    >>> tar_size(0, "key.msgpack", 100)
    10240
    """

    def whole(n: int, unit: int) -> int:
        return -(-n // unit) * unit

    n = len(name.encode("utf-8"))
    pax = BLOCK + whole(n + 16, BLOCK) if n > 100 else 0
    return whole(offset + pax + BLOCK + whole(size, BLOCK) + 2 * BLOCK, RECORD)


def _header_template() -> bytearray:
    h = bytearray(BLOCK)
    h[100:108] = b"0000444\0"  # mode
    h[108:116] = b"0000000\0"  # uid
    h[116:124] = b"0000000\0"  # gid
    h[136:148] = b"00000000000\0"  # mtime: fixed, so shards are reproducible
    h[148:156] = b"        "  # checksum placeholder
    h[156:157] = b"0"
    h[257:263] = b"ustar\0"
    h[263:265] = b"00"
    return h


_TEMPLATE = bytes(_header_template())
_TEMPLATE_SUM = sum(_TEMPLATE)


def _header(name: bytes, size: int, flag: bytes = b"0") -> bytes:
    size_field = b"%011o\0" % size if size < 0o77777777777 else b"\x80" + size.to_bytes(11, "big")
    h = bytearray(_TEMPLATE)
    h[0 : len(name)] = name
    h[124:136] = size_field
    h[156:157] = flag
    # the template's name and size fields are zero bytes and its type flag is "0"
    chk = _TEMPLATE_SUM - ord("0") + flag[0] + sum(name) + sum(size_field)
    h[148:156] = b"%06o\0 " % chk
    return bytes(h)


def _pax_record(key: bytes, value: bytes) -> bytes:
    """One PAX extended-header record: ``"<len> <key>=<value>\\n"``, len counting itself."""
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n = len(str(n)) + len(body)
    return str(n).encode() + body


class TarWriter:
    """Append members to a tar file with few copies: payload buffers are written as given.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.tar")
    >>> with TarWriter(path) as w:
    ...     w.write("k1.msgpack", [b"\\x80"])
    0
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self.offset = 0
        self.count = 0

    def write(self, name: str, buffers: list[bytes | memoryview]) -> int:
        """Write one member named ``name`` holding the concatenation of ``buffers``.

        Returns the member's header offset.
        """
        size = 0
        for b in buffers:
            size += len(b) if isinstance(b, bytes) else b.nbytes
        encoded = name.encode("utf-8")
        start = self.offset
        f = self._file
        if len(encoded) > 100:
            pax = _pax_record(b"path", encoded)
            pax_name = b"PaxHeader/" + encoded[-80:]
            f.write(_header(pax_name[:100], len(pax), b"x"))
            f.write(pax)
            f.write(bytes(-len(pax) % BLOCK))
            self.offset += BLOCK + len(pax) + (-len(pax) % BLOCK)
            encoded = encoded[-100:]
        f.write(_header(encoded, size))
        f.writelines(buffers)
        pad = -size % BLOCK
        if pad:
            f.write(_ZERO_BLOCK[:pad])
        self.offset += BLOCK + size + pad
        self.count += 1
        return start

    def close(self) -> None:
        """Write the end-of-archive blocks and close the file."""
        if self._file.closed:
            return
        end = self.offset + 2 * BLOCK
        self._file.write(bytes(2 * BLOCK + (-end % RECORD)))
        self._file.close()

    def abort(self) -> None:
        """Close the file as it is, without the end-of-archive blocks."""
        self._file.close()

    def __enter__(self) -> TarWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
