"""NumPy arrays as bytes: the ``.npy`` format atdata writes and the compact format it also reads.

Writing always produces a standard ``.npy`` file (format 1.0 header, C order),
which any NumPy and the existing atdata read. Reading accepts ``.npy`` 1.0, 2.0
and 3.0 and the compact layout of later atdata releases
(``u8 len, dtype str, u8 ndim, ndim x int64 shape, C-order data``).
Object arrays are refused both ways: nothing from data is ever unpickled.

A ``.npy`` header comes from the data, so it is read as NumPy bounds it
(at most :data:`MAX_HEADER_SIZE` bytes) and parsed by a small strict parser of
the one dictionary NumPy writes (``{'descr': ..., 'fortran_order': ...,
'shape': (...)}``), never evaluated. Parsed headers are cached by content, at
most :data:`HEADER_CACHE_BYTES` bytes of them.
"""

from __future__ import annotations

import ast
import re
import struct
import threading
from functools import lru_cache
from typing import Any, cast

import numpy as np

from atdata.errors import AtdataError

__all__ = [
    "MAX_HEADER_SIZE",
    "NPY_MAGIC",
    "UnsafeArrayError",
    "array_from_bytes",
    "array_to_bytes",
    "npy_header",
]

NPY_MAGIC = b"\x93NUMPY"
#: The longest ``.npy`` header read (NumPy's own ``max_header_size``).
MAX_HEADER_SIZE = 10_000
#: Bytes of header text kept in the cache of parsed headers (emptied when full).
HEADER_CACHE_BYTES = 1 << 20
_MAX_DIMS = 64  # NumPy's NPY_MAXDIMS
_MAX_DEPTH = 16  # nesting of structured dtypes in a header
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")


class UnsafeArrayError(AtdataError, ValueError):
    """An array holds Python objects: storing or loading it would mean pickling."""


def _check_dtype(dtype: np.dtype) -> None:
    if dtype.hasobject:
        raise UnsafeArrayError(
            f"arrays of dtype {dtype} hold Python objects and cannot be stored safely; "
            "convert them to a numeric, bool, string or bytes dtype"
        )


_GROWTH_DIGITS = 21  # NumPy leaves room to grow the first axis to 21 digits in place


def _header_bytes(descr: object, shape: tuple[int, ...]) -> bytes:
    """A ``.npy`` 1.0 header laid out byte for byte as ``np.save`` lays it out."""
    text = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {shape!r}, }}"
    if shape:
        text += " " * (_GROWTH_DIGITS - len(repr(shape[0])))
    used = len(NPY_MAGIC) + 2 + 2 + len(text) + 1
    body = (text + " " * (64 - used % 64) + "\n").encode("latin1")
    if len(body) > 0xFFFF:
        raise ValueError(f"array header too long for .npy 1.0 ({len(body)} bytes)")
    return NPY_MAGIC + b"\x01\x00" + _U16.pack(len(body)) + body


@lru_cache(maxsize=1024)
def _npy_header_cached(descr: str, shape: tuple[int, ...]) -> bytes:
    return _header_bytes(descr, shape)


def c_order(array: np.ndarray) -> np.ndarray:
    """``array`` itself if it is C-contiguous, else a C-ordered copy (0-d arrays stay 0-d)."""
    return array if array.flags.c_contiguous else array.copy(order="C")


def npy_header(array: np.ndarray) -> bytes:
    """Return the ``.npy`` 1.0 header for ``array`` written in C order."""
    dtype = array.dtype
    _check_dtype(dtype)
    # numpy's stubs say a list; it is a str for every dtype but structured ones
    descr = cast("str | list[Any]", np.lib.format.dtype_to_descr(dtype))
    shape = tuple(int(n) for n in array.shape)
    if not isinstance(descr, str):  # structured dtypes are not cached
        return _header_bytes(descr, shape)
    return _npy_header_cached(descr, shape)


def array_to_bytes(array: np.ndarray) -> bytes:
    """Encode ``array`` as a complete ``.npy`` file (C order, never pickled).

    >>> array_from_bytes(array_to_bytes(np.arange(3))).tolist()
    [0, 1, 2]
    """
    header = npy_header(array)
    return header + c_order(array).tobytes()


_TOKEN = re.compile(
    r"""\s*(?:('(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")|(\d+)|(True|False)|([{}()\[\],:]))"""
)


class _HeaderParser:
    """The literals NumPy writes in a header: str, int >= 0, bool, tuple, list and dict."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def _next(self) -> tuple[int, str]:
        match = _TOKEN.match(self.text, self.pos)
        if match is None:
            raise ValueError(f"unexpected text at {self.pos}")
        self.pos = match.end()
        kind = match.lastindex or 0
        return kind, match.group(kind)

    def _peek(self) -> str:
        match = _TOKEN.match(self.text, self.pos)
        return match.group(4) or "" if match is not None else ""

    def value(self, depth: int = 0) -> Any:
        if depth > _MAX_DEPTH:
            raise ValueError("nested too deeply")
        kind, token = self._next()
        if kind == 1:  # a string literal; escapes are decoded as Python decodes them
            return ast.literal_eval(token) if "\\" in token else token[1:-1]
        if kind == 2:
            if len(token) > 20:
                raise ValueError(f"number {token[:20]}... is too large")
            return int(token)
        if kind == 3:
            return token == "True"
        closing = {"(": ")", "[": "]", "{": "}"}.get(token)
        if closing is None:
            raise ValueError(f"unexpected {token!r}")
        items: list[Any] = []
        while self._peek() != closing:
            item = self.value(depth + 1)
            if token == "{":
                if self._next()[1] != ":":
                    raise ValueError("expected ':'")
                item = (item, self.value(depth + 1))
            items.append(item)
            if self._peek() != closing and self._next()[1] != ",":
                raise ValueError("expected ','")
        self._next()
        if token == "{":
            keys = [k for k, _ in items]
            if not all(isinstance(k, str) for k in keys) or len(set(keys)) != len(keys):
                raise ValueError("dictionary keys must be distinct strings")
            return dict(items)
        return tuple(items) if token == "(" else items

    def end(self) -> None:
        if self.text[self.pos :].strip():
            raise ValueError(f"unexpected text at {self.pos}")


def _header_meta(text: str) -> tuple[np.dtype, tuple[int, ...], bool]:
    """The dtype, shape and order of a header's text, or ValueError."""
    parser = _HeaderParser(text)
    try:
        meta = parser.value()
        parser.end()
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise ValueError(f"malformed .npy header ({exc}): {text[:80]!r}") from None
    if not isinstance(meta, dict) or set(meta) != {"descr", "fortran_order", "shape"}:
        raise ValueError(f"malformed .npy header {text[:80]!r}")
    descr, fortran, shape = meta["descr"], meta["fortran_order"], meta["shape"]
    if not isinstance(fortran, bool):
        raise ValueError(f"malformed .npy header: fortran_order is {fortran!r}")
    if (
        not isinstance(shape, tuple)
        or len(shape) > _MAX_DIMS
        or not all(isinstance(n, int) and 0 <= n < 2**63 for n in shape)
    ):
        raise ValueError(f"malformed .npy shape {shape!r}")
    if not isinstance(descr, str | list):
        raise ValueError(f"unknown array dtype {descr!r}")
    try:
        # numpy's stubs leave out the str descriptions it accepts
        dtype = np.lib.format.descr_to_dtype(descr)  # pyright: ignore[reportArgumentType]
    except Exception:
        raise ValueError(f"unknown array dtype {descr!r}"[:200]) from None
    _check_dtype(dtype)
    return dtype, shape, fortran


_HEADERS: dict[tuple[bytes, bool], tuple[np.dtype, tuple[int, ...], bool]] = {}
_HEADERS_BYTES = 0
_HEADERS_LOCK = threading.Lock()


def _parse_npy_header(text: bytes, utf8: bool) -> tuple[np.dtype, tuple[int, ...], bool]:
    """:func:`_header_meta`, cached by content (at most HEADER_CACHE_BYTES of text)."""
    global _HEADERS_BYTES
    key = (text, utf8)
    found = _HEADERS.get(key)
    if found is not None:
        return found
    try:
        decoded = text.decode("utf-8" if utf8 else "latin1")
    except UnicodeDecodeError:
        raise ValueError(f"malformed .npy header (not UTF-8): {text[:80]!r}") from None
    found = _header_meta(decoded)
    with _HEADERS_LOCK:
        if _HEADERS_BYTES + len(text) > HEADER_CACHE_BYTES:
            _HEADERS.clear()
            _HEADERS_BYTES = 0
        _HEADERS[key] = found
        _HEADERS_BYTES += len(text)
    return found


def _parse(buf: memoryview) -> tuple[np.dtype, tuple[int, ...], bool, int]:
    """Return (dtype, shape, fortran_order, data offset) of an encoded array."""
    if bytes(buf[:6]) == NPY_MAGIC:
        if len(buf) < 10:
            raise ValueError(f".npy value too short for its header ({len(buf)} bytes)")
        major = buf[6]
        if major == 1:
            hlen, start = _U16.unpack_from(buf, 8)[0], 10
        elif major in (2, 3):
            if len(buf) < 12:
                raise ValueError(f".npy value too short for its header ({len(buf)} bytes)")
            hlen, start = _U32.unpack_from(buf, 8)[0], 12
        else:
            raise ValueError(f"unsupported .npy format version {major}.{buf[7]}")
        if hlen > MAX_HEADER_SIZE:
            raise ValueError(
                f".npy header of {hlen} bytes (at most {MAX_HEADER_SIZE} are read, as in NumPy)"
            )
        end = start + hlen
        if end > len(buf):
            raise ValueError(
                f".npy header runs past the end of the value ({end} > {len(buf)} bytes)"
            )
        dtype, shape, fortran = _parse_npy_header(bytes(buf[start:end]), major == 3)
        return dtype, shape, fortran, end
    # compact layout
    if len(buf) < 2:
        raise ValueError("array value is too short to hold a header")
    n = buf[0]
    dtype_end = 1 + n
    if dtype_end + 1 > len(buf):
        raise ValueError("array header runs past the end of the value")
    try:
        dtype = np.dtype(bytes(buf[1:dtype_end]).decode("ascii"))
    except Exception as exc:
        raise ValueError(f"unknown array dtype {bytes(buf[1:dtype_end])!r}") from exc
    _check_dtype(dtype)
    ndim = buf[dtype_end]
    if ndim > _MAX_DIMS:
        raise ValueError(f"array of {ndim} dimensions (at most {_MAX_DIMS})")
    shape_end = dtype_end + 1 + 8 * ndim
    if shape_end > len(buf):
        raise ValueError("array shape runs past the end of the value")
    shape = struct.unpack_from(f"<{ndim}q", buf, dtype_end + 1)
    if any(d < 0 for d in shape):
        raise ValueError(f"negative array dimension in shape {shape}")
    return dtype, shape, False, shape_end


def array_from_bytes(data: bytes | bytearray | memoryview, *, copy: bool = True) -> np.ndarray:
    """Decode an array written as ``.npy`` or in the compact layout.

    With ``copy=False`` the result is a read-only view of ``data`` (no copy).
    Raises ``ValueError`` for object dtypes, malformed headers or a size that
    does not match the shape.
    """
    buf = memoryview(data)
    if buf.ndim != 1 or buf.itemsize != 1:
        buf = buf.cast("B")
    dtype, shape, fortran, offset = _parse(buf)
    count = 1
    for d in shape:
        count *= d
    nbytes = count * dtype.itemsize
    if offset + nbytes != len(buf):
        raise ValueError(
            f"array of shape {shape} and dtype {dtype} needs {nbytes} bytes, "
            f"the value holds {len(buf) - offset}"
        )
    arr = np.frombuffer(buf, dtype=dtype, count=count, offset=offset)
    arr = arr.reshape(shape, order="F" if fortran else "C")
    return arr.copy() if copy else arr
