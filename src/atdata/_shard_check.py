"""Checking a shard before it is copied or published: a whole tar of samples of one type.

:class:`CheckedStream` does it while the bytes stream past (one pass: the copy
reads what the check has already parsed), so a store can hash, check and
upload a shard reading it once. A shard that is not a tar, is truncated, holds
a member that is not a ``<key>.msgpack`` sample, or a sample that does not
decode as the expected type raises :class:`~atdata.ShardError` or
:class:`~atdata.SampleError` naming the shard, byte offset, key and field.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Callable
from typing import IO, Any

from atdata._codec import decoder_for
from atdata._tar import BLOCK, iter_stream_members, split_name
from atdata.dict_sample import DictSample
from atdata.errors import SampleError

__all__ = ["CheckedStream", "member_checker", "stored_type"]

MemberCheck = Callable[[str, str, int, Any], None]
"""``check(shard, name, data_offset, payload)``: raise unless the member is a valid sample."""


def stored_type(dataset: Any) -> type:
    """The type a dataset's stored samples decode as (before any lens view)."""
    reader = getattr(dataset, "reader", None)
    if reader is not None:
        return reader.read_type  # type: ignore[no-any-return]
    return getattr(dataset, "sample_type", DictSample)


def member_checker(sample_type: type) -> MemberCheck:
    """A check that a tar member is one ``<key>.msgpack`` sample decoding as ``sample_type``."""
    if sample_type is DictSample:

        def decode(payload: Any, key: str, shard: str) -> None:
            try:
                DictSample.from_bytes(payload, key=key)
            except SampleError as exc:
                raise SampleError(exc.reason, key=key, field=exc.field, shard=shard) from None
    else:
        dec = decoder_for(sample_type).decode

        def decode(payload: Any, key: str, shard: str) -> None:
            dec(payload, False, key, shard)

    def check(shard: str, name: str, offset: int, payload: Any) -> None:
        stem, ext = split_name(name)
        if ext != "msgpack" or not stem:
            raise SampleError(
                f"member {name!r} at byte offset {offset - BLOCK} is not a '<key>.msgpack' "
                f"sample of {sample_type.__name__}",
                shard=shard,
            )
        decode(payload, stem, shard)

    return check


class _Tee(io.RawIOBase):
    """Reads from ``stream`` and keeps every chunk read (not copied) in ``pending``."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.pending: deque[bytes | memoryview] = deque()
        self.buffered = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        data = self._stream.read() if n is None or n < 0 else self._stream.read(n)
        if data:
            self.pending.append(data)
            self.buffered += len(data)
        return data or b""


class CheckedStream(io.RawIOBase):
    """A read-only stream over ``stream`` that checks every member before passing its bytes on.

    Bytes are handed out only once the members they belong to have been
    parsed and checked (the end-of-archive block included), so a reader never
    gets more than the checked prefix; the first bad member raises from
    :meth:`read`. The chunks read are passed on without copying but once;
    memory: about one member plus one read.
    """

    def __init__(self, stream: IO[bytes], shard: str, check: MemberCheck) -> None:
        self._tee = _Tee(stream)
        self._members = iter_stream_members(self._tee, shard)
        self._shard = shard
        self._check = check
        self._ended = False
        self.samples = 0

    def readable(self) -> bool:
        return True

    def _fill(self, n: int) -> None:
        tee = self._tee
        while tee.buffered < n:
            if self._ended:
                if not tee.read(max(n - tee.buffered, 1 << 16)):
                    return  # the rest of the end-of-archive record, then the end
                continue
            try:
                name, offset, payload = next(self._members)
            except StopIteration:
                self._ended = True
                continue
            self._check(self._shard, name, offset, payload)
            self.samples += 1

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            chunks = []
            while chunk := self.read(1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        self._fill(n)
        tee = self._tee
        pending = tee.pending
        parts: list[bytes | memoryview] = []
        want = min(n, tee.buffered)
        got = 0
        while got < want:
            chunk = pending.popleft()
            take = min(len(chunk), want - got)
            if take < len(chunk):
                view = memoryview(chunk)
                pending.appendleft(view[take:])
                chunk = view[:take]
            parts.append(chunk)
            got += take
        tee.buffered -= got
        if len(parts) == 1 and isinstance(parts[0], bytes):
            return parts[0]
        return b"".join(parts)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)
