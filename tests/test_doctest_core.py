"""The examples in the reading and writing modules' docstrings run and show what they print."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "atdata._braces",
    "atdata._hf",
    "atdata._parquet",
    "atdata._reader",
    "atdata._tar",
    "atdata._urls",
    "atdata.dataset",
    "atdata.load",
    "atdata.processing",
    "atdata.sources",
    "atdata.torch_loader",
    "atdata.writer",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0, f"{name} has no example"
