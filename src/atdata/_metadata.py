"""Dataset-level metadata: a msgpack map at a ``metadata_url``, as the existing atdata stores it.

The URL is opened the way shards are (a local path, ``file://``, ``http(s)://``
or ``s3://``); at most :data:`MAX_METADATA_BYTES` are read, and anything but a
msgpack map with string keys is an :class:`~atdata.AtdataError` naming the URL.

>>> import msgpack, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "meta.msgpack")
>>> _ = open(path, "wb").write(msgpack.packb({"license": "CC-BY-4.0"}))
>>> read_metadata(path)
{'license': 'CC-BY-4.0'}
"""

from __future__ import annotations

from typing import Any

import msgpack

from atdata.errors import AtdataError
from atdata.sources import open_url, redact_url

__all__ = ["MAX_METADATA_BYTES", "read_metadata"]

MAX_METADATA_BYTES = 16 << 20
"""The largest metadata document read (16 MiB); a longer one is refused, not truncated."""

_CHUNK = 1 << 16


def read_metadata(url: str, *, max_bytes: int = MAX_METADATA_BYTES) -> dict[str, Any]:
    """The msgpack map stored at ``url``, read in bounded memory."""
    where = redact_url(url)
    stream = open_url(url)
    try:
        chunks: list[bytes] = []
        size = 0
        while chunk := stream.read(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise AtdataError(f"{where}: metadata is larger than {max_bytes} bytes")
            chunks.append(chunk)
    except OSError as exc:
        raise AtdataError(f"{where}: cannot read metadata ({type(exc).__name__})") from None
    finally:
        stream.close()
    data = b"".join(chunks)
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise AtdataError(
            f"{where}: metadata is not one msgpack value ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(value, dict):
        raise AtdataError(f"{where}: metadata must be a msgpack map, not {type(value).__name__}")
    return value
