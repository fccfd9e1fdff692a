"""NumPy arrays as bytes: the ``.npy`` format atdata writes and the compact format it also reads.

Writing always produces a standard ``.npy`` file (format 1.0 header, C order),
which any NumPy and the existing atdata read. Reading accepts ``.npy`` 1.0, 2.0
and 3.0 and the compact layout of later atdata releases
(``u8 len, dtype str, u8 ndim, ndim x int64 shape, C-order data``).
Object arrays are refused both ways: nothing from data is ever unpickled.
"""

from __future__ import annotations

import ast
import struct
from functools import lru_cache

import numpy as np

__all__ = ["NPY_MAGIC", "array_from_bytes", "array_to_bytes", "npy_header"]

NPY_MAGIC = b"\x93NUMPY"
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")


def _check_dtype(dtype: np.dtype) -> None:
    if dtype.hasobject:
        raise ValueError(
            f"arrays of dtype {dtype} hold Python objects and cannot be stored safely; "
            "convert them to a numeric, bool, string or bytes dtype"
        )


@lru_cache(maxsize=1024)
def _npy_header_cached(descr: str, shape: tuple[int, ...]) -> bytes:
    text = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {shape!r}, }}"
    # magic (6) + version (2) + length (2) + text + '\n', padded to a multiple of 64
    unpadded = 10 + len(text) + 1
    pad = -unpadded % 64
    body = (text + " " * pad + "\n").encode("latin1")
    if len(body) > 0xFFFF:
        raise ValueError(f"array header too long for .npy 1.0 ({len(body)} bytes)")
    return NPY_MAGIC + b"\x01\x00" + _U16.pack(len(body)) + body


def npy_header(array: np.ndarray) -> bytes:
    """Return the ``.npy`` 1.0 header for ``array`` written in C order."""
    dtype = array.dtype
    _check_dtype(dtype)
    descr = np.lib.format.dtype_to_descr(dtype)
    if not isinstance(descr, str):  # structured dtypes: build the header without the cache
        text = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {array.shape!r}, }}"
        pad = -(10 + len(text) + 1) % 64
        body = (text + " " * pad + "\n").encode("latin1")
        return NPY_MAGIC + b"\x01\x00" + _U16.pack(len(body)) + body
    return _npy_header_cached(descr, tuple(int(n) for n in array.shape))


def array_to_bytes(array: np.ndarray) -> bytes:
    """Encode ``array`` as a complete ``.npy`` file (C order, never pickled).

    >>> array_from_bytes(array_to_bytes(np.arange(3))).tolist()
    [0, 1, 2]
    """
    header = npy_header(array)
    return header + np.ascontiguousarray(array).tobytes()


@lru_cache(maxsize=4096)
def _parse_npy_header(text: bytes) -> tuple[np.dtype, tuple[int, ...], bool]:
    try:
        meta = ast.literal_eval(text.decode("latin1"))
        descr, fortran, shape = meta["descr"], meta["fortran_order"], meta["shape"]
    except Exception as exc:
        raise ValueError(f"malformed .npy header {text[:80]!r}") from exc
    dtype = np.lib.format.descr_to_dtype(descr)
    _check_dtype(dtype)
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise ValueError(f"malformed .npy shape {shape!r}")
    return dtype, shape, bool(fortran)


def _parse(buf: memoryview) -> tuple[np.dtype, tuple[int, ...], bool, int]:
    """Return (dtype, shape, fortran_order, data offset) of an encoded array."""
    if bytes(buf[:6]) == NPY_MAGIC:
        major = buf[6]
        if major == 1:
            hlen, start = _U16.unpack_from(buf, 8)[0], 10
        elif major in (2, 3):
            hlen, start = _U32.unpack_from(buf, 8)[0], 12
        else:
            raise ValueError(f"unsupported .npy format version {major}.{buf[7]}")
        end = start + hlen
        if end > len(buf):
            raise ValueError(
                f".npy header runs past the end of the value ({end} > {len(buf)} bytes)"
            )
        dtype, shape, fortran = _parse_npy_header(bytes(buf[start:end]))
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
