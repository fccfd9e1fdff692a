"""Schema version numbers: ordering, and the version ``publish_schema`` picks when none is given.

>>> latest_version(["1.0.0", "1.0.10", "1.0.2", "1.1.0-rc1"])
'1.1.0-rc1'
>>> next_version("1.0.9"), next_version("1.1.0-rc1"), next_version(None)
('1.0.10', '1.1.0', '1.0.0')
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["FIRST_VERSION", "latest_version", "next_version", "version_key"]

FIRST_VERSION = "1.0.0"
_PARTS = re.compile(r"^(\d+)\.(\d+)\.(\d+)(-?)")


def version_key(version: str) -> tuple[int, ...]:
    """A sort key: semantic versions in order, a pre-release before its release, others first."""
    m = _PARTS.match(version) if isinstance(version, str) else None
    if m is None:
        return (-1,)
    return (int(m[1]), int(m[2]), int(m[3]), 0 if m[4] else 1)


def latest_version(versions: Iterable[str]) -> str | None:
    """The greatest semantic version of ``versions`` (None if there is none)."""
    semver = [v for v in versions if version_key(v) != (-1,)]
    return max(semver, key=version_key) if semver else None


def next_version(latest: str | None) -> str:
    """The version after ``latest``: the next patch (a pre-release's own release); ``1.0.0`` first.

    This is how the existing atdata numbers a schema published without a version.
    """
    if latest is None:
        return FIRST_VERSION
    major, minor, patch, release = version_key(latest)
    return f"{major}.{minor}.{patch + release}"
