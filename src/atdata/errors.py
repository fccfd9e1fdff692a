"""Exceptions raised by atdata. Every message names where the problem is."""

from __future__ import annotations

__all__ = [
    "AtdataError",
    "CredentialURLError",
    "LensNotFoundError",
    "OrphanedDataError",
    "PrivateURLError",
    "PrivateURLWarning",
    "ResumeStateError",
    "SampleError",
    "SchemaError",
    "ShardError",
    "ShardListError",
    "ShardUnavailableError",
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


class ShardUnavailableError(ShardError):
    """The server answered that the shard does not exist or may not be read (``status``, e.g. 404).

    Retrying cannot help, so the shard cache does not.
    """

    def __init__(self, shard: str, message: str, *, status: int) -> None:
        super().__init__(shard, message)
        self.status = status


class ShardListError(AtdataError, ValueError):
    """A list of shards or a brace pattern is malformed or names more shards than a dataset has."""


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


class PrivateURLError(AtdataError, ValueError):
    """A URL names a place not opened or published by default: a local file, a
    loopback, private or link-local host, or an unsupported scheme.

    Raised when reading someone else's record (opt in with ``allow_private_urls=True``
    or ``ATDATA_ALLOW_PRIVATE_URLS=1``) and when publishing with
    ``require_public_urls=True``. ``url`` is the URL, without credentials.
    """

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class CredentialURLError(AtdataError, ValueError):
    """A URL about to be published carries a credential (user-info, a signature or token)."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class PrivateURLWarning(UserWarning):
    """Published URLs that others likely cannot read (each named, with the reason)."""


class OrphanedDataError(AtdataError):
    """A write failed, and removing what it had already written failed too.

    ``orphaned`` lists the URLs that may have been left behind (remove them by hand).
    """

    def __init__(self, message: str, orphaned: list[str]) -> None:
        shown = ", ".join(orphaned[:20]) + (
            f" and {len(orphaned) - 20} more" if len(orphaned) > 20 else ""
        )
        super().__init__(f"{message}; left behind: {shown}")
        self.reason = message
        self.orphaned = orphaned


class ResumeStateError(AtdataError, ValueError):
    """A saved loader state does not fit this dataset, world size or loader: resuming would
    read the wrong samples."""
