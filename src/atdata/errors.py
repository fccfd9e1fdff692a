"""Exceptions raised by atdata. Every message names where the problem is."""

from __future__ import annotations

__all__ = [
    "AtdataError",
    "LensNotFoundError",
    "ResumeStateError",
    "SampleError",
    "SchemaError",
    "ShardError",
]


class AtdataError(Exception):
    """Base class of every error atdata raises on purpose."""


class ShardError(AtdataError):
    """A shard cannot be read: missing, truncated or not a tar file.

    ``shard`` is the shard id (path or URL) and ``offset`` the byte offset of
    the problem inside it, when known.
    """

    def __init__(self, shard: str, message: str, *, offset: int | None = None) -> None:
        where = f"{shard}" if offset is None else f"{shard} at byte offset {offset}"
        super().__init__(f"{where}: {message}")
        self.shard = shard
        self.offset = offset


class SampleError(AtdataError, ValueError):
    """A sample cannot be encoded or decoded: wrong field, wrong type, bad member.

    ``key`` is the sample key and ``field`` the field name, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        field: str | None = None,
        shard: str | None = None,
    ) -> None:
        parts = []
        if shard is not None:
            parts.append(f"shard {shard}")
        if key is not None:
            parts.append(f"sample {key!r}")
        if field is not None:
            parts.append(f"field {field!r}")
        prefix = ", ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.reason = message
        self.key = key
        self.field = field
        self.shard = shard


class SchemaError(AtdataError, ValueError):
    """A schema record or a sample type definition is invalid or unsupported."""


class LensNotFoundError(AtdataError, ValueError):
    """No chain of registered lenses leads from one sample type to another."""


class ResumeStateError(AtdataError, ValueError):
    """A saved loader state does not fit this dataset, world size or loader: resuming would
    read the wrong samples."""
