"""Shared pytest configuration: the real servers are started by the fixture plugins below.

The whole run uses a temporary ``ATDATA_HOME``, so no test reads or writes the
developer's own index, data, shard cache or session under ``~/.atdata``.

Host names are looked up once per run: the publishing checks resolve the host of every
URL they publish, and the tests publish hundreds of placeholder URLs (``https://x.org/...``)
whose lookups, on a machine without a resolver, each wait for a timeout (a test that
published 450 of them spent 85 of its 90 s in ``getaddrinfo``). A test that needs other
answers patches ``socket.getaddrinfo`` itself.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

pytest_plugins = ["fixtures_servers", "fixtures_pds"]

_HOME = tempfile.mkdtemp(prefix="atdata-test-home-")


def pytest_configure(config: pytest.Config) -> None:
    os.environ["ATDATA_HOME"] = _HOME


_GETADDRINFO = socket.getaddrinfo


@functools.cache
def _lookup(args: tuple[Any, ...], kwargs: tuple[tuple[str, Any], ...]) -> list[Any] | OSError:
    try:
        return _GETADDRINFO(*args, **dict(kwargs))
    except OSError as exc:
        return exc


def _getaddrinfo_once(*args: Any, **kwargs: Any) -> list[Any]:
    """``socket.getaddrinfo``, answered from this run's cache after the first lookup."""
    found = _lookup(args, tuple(sorted(kwargs.items())))
    if isinstance(found, OSError):
        raise type(found)(*found.args)
    return list(found)


@pytest.fixture(autouse=True, scope="session")
def host_lookups_once() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket, "getaddrinfo", _getaddrinfo_once)
        yield


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_HOME, ignore_errors=True)
