"""Shared pytest configuration: the real servers are started by the fixture plugins below.

The whole run uses a temporary ``ATDATA_HOME``, so no test reads or writes the
developer's own index, data, shard cache or session under ``~/.atdata``.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

pytest_plugins = ["fixtures_servers", "fixtures_pds"]

_HOME = tempfile.mkdtemp(prefix="atdata-test-home-")


def pytest_configure(config: pytest.Config) -> None:
    os.environ["ATDATA_HOME"] = _HOME


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_HOME, ignore_errors=True)
