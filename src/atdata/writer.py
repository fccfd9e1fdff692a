"""Writing samples to sharded tar files.

>>> import atdata, tempfile
>>> @atdata.packable
... class Point:
...     x: int
>>> out = tempfile.mkdtemp()
>>> with ShardWriter(f"{out}/data-%06d.tar", maxcount=2) as w:
...     for i in range(5):
...         _ = w.write(Point(i))
>>> [p.rsplit("/", 1)[1] for p in w.shards]
['data-000000.tar', 'data-000001.tar', 'data-000002.tar']
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from atdata._tar import TarWriter, tar_size
from atdata.dict_sample import DictSample
from atdata.errors import SampleError
from atdata.sample import PackableSample, encode_segments, new_key

__all__ = ["ShardWriter", "write_shards"]


def _shard_pattern(pattern: str, sharded: bool) -> str:
    if "%" in pattern:
        return pattern
    if not sharded:
        return pattern
    stem, dot, ext = pattern.rpartition(".")
    return f"{stem}-%06d.{ext}" if dot else f"{pattern}-%06d"


class ShardWriter:
    """Write samples into tar shards named by a ``%06d``-style pattern.

    A new shard starts when the current one holds ``maxcount`` samples or
    would exceed ``maxsize`` bytes once closed (tar headers, padding and the
    end-of-archive record included); a single sample larger than ``maxsize``
    gets a shard of its own. Sample keys are ``<run id>-<index>``
    unless given. ``shards`` lists the files written.

    Each shard is written to a hidden temporary file in the same folder and
    renamed to its name only once complete, so a crash of the process
    or kill never leaves a truncated shard under a shard name. Leaving the
    ``with`` block by an exception discards the shard being written.
    """

    def __init__(
        self,
        pattern: str | os.PathLike[str],
        *,
        maxcount: int | None = None,
        maxsize: int | None = None,
    ) -> None:
        text = os.fspath(pattern)
        self.pattern: str = _shard_pattern(text, maxcount is not None or maxsize is not None)
        self.maxcount: int | None = maxcount
        self.maxsize: int | None = maxsize
        self.shards: list[str] = []
        self.count: int = 0
        self._writer: TarWriter | None = None
        self._final: str | None = None
        self._run = new_key()[-12:]

    def _next_shard(self) -> TarWriter:
        self._finish()
        path = self.pattern % len(self.shards) if "%" in self.pattern else self.pattern
        if "%" not in self.pattern and self.shards:
            raise ValueError(f"{self.pattern!r} has no %d placeholder for a second shard")
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{self._run}.partial")
        self._writer = TarWriter(partial)
        self._final = path
        self.shards.append(path)
        return self._writer

    def _finish(self) -> None:
        """Complete the current shard: end-of-archive, then renamed into place.

        The rename is what makes a shard appear whole: a killed process never leaves a
        truncated one under its name. There is no ``fsync`` (it cost 2.7x the write time
        here); call ``os.sync()`` after writing if the shards must survive a power loss.
        """
        w, final = self._writer, self._final
        if w is None or final is None:
            return
        self._writer = self._final = None
        try:
            w.close()
            os.replace(w.path, final)
        except BaseException:
            Path(w.path).unlink(missing_ok=True)
            self.shards.remove(final)
            raise

    def abort(self) -> None:
        """Discard the shard being written (shards already completed stay)."""
        w, final = self._writer, self._final
        if w is None or final is None:
            return
        self._writer = self._final = None
        w.abort()
        Path(w.path).unlink(missing_ok=True)
        self.shards.remove(final)

    def write(self, sample: object, key: str | None = None) -> str:
        """Append one sample (a ``@packable`` instance or a ``DictSample``); return its key."""
        if key is None:
            key = f"{self._run}-{self.count:09d}"
        elif "." in key or not key:
            raise SampleError("sample keys must be non-empty and contain no '.'", key=key)
        if isinstance(sample, PackableSample):
            buffers: list[bytes | memoryview] = encode_segments(sample)
        elif isinstance(sample, DictSample):
            buffers = [sample.packed]
        else:
            raise TypeError(
                f"write() takes a @packable sample or a DictSample, not {type(sample).__name__}"
            )
        size = sum(b.nbytes if isinstance(b, memoryview) else len(b) for b in buffers)
        w = self._writer
        if (
            w is None
            or (self.maxcount is not None and w.count >= self.maxcount)
            or (
                self.maxsize is not None
                and w.count
                and tar_size(w.offset, key + ".msgpack", size) > self.maxsize
            )
        ):
            w = self._next_shard()
        w.write(f"{key}.msgpack", buffers)
        self.count += 1
        return key

    def close(self) -> None:
        """Finish the current shard."""
        self._finish()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_shards(
    samples: Iterable[object],
    pattern: str | os.PathLike[str],
    *,
    maxcount: int | None = None,
    maxsize: int | None = None,
) -> list[str]:
    """Write samples of one type to tar shards; return the shard paths.

    ``pattern`` is a file name, or a ``%06d`` pattern; with ``maxcount`` or
    ``maxsize`` and no placeholder, ``-%06d`` is added before the extension.
    All or nothing: when writing fails (or is interrupted), the shards this
    call completed are removed again. :func:`atdata.write_samples` is this,
    returning the dataset that reads the shards back.
    """
    sample_type: type | None = None
    writer = ShardWriter(pattern, maxcount=maxcount, maxsize=maxsize)
    try:
        with writer:
            for sample in samples:
                if sample_type is None:
                    sample_type = type(sample)
                elif type(sample) is not sample_type:
                    raise SampleError(
                        f"all samples must have one type; got {type(sample).__name__} after {sample_type.__name__}",
                        key=f"#{writer.count}",
                    )
                writer.write(sample)
    except BaseException:
        for shard in writer.shards:
            Path(shard).unlink(missing_ok=True)
        raise
    if not writer.shards:
        raise ValueError("write_samples got no samples")
    return writer.shards
