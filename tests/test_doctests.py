"""The examples in atdata's docstrings run: one test per module, failing if any example fails.

Every module under ``atdata`` is found by walking the package (so a new module is covered
without editing this file) and imported with the dev extras installed. ``__main__``
modules are left out: importing one runs the program. The examples run in a fresh
working directory, with the ``ATDATA_HOME`` of the whole test run (see ``conftest.py``),
in a copy of their module's namespace (as ``python -m doctest`` runs them) but compiled
without the module's ``from __future__`` imports, as a user's own session would be.
"""

from __future__ import annotations

import doctest
import importlib
import io
import pkgutil
from pathlib import Path

import pytest

import atdata

OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def module_names() -> list[str]:
    """Every ``atdata`` module name, the package itself first."""
    found = pkgutil.walk_packages(atdata.__path__, prefix="atdata.")
    return ["atdata", *sorted(m.name for m in found if not m.name.endswith(".__main__"))]


MODULES = module_names()


def test_the_walk_finds_the_public_and_private_modules() -> None:
    assert {"atdata", "atdata.dataset", "atdata.sample", "atdata.local"} <= set(MODULES)
    assert any(name.rsplit(".", 1)[-1].startswith("_") for name in MODULES)
    assert not any(name.endswith("__main__") for name in MODULES)


def test_a_failing_example_fails_the_harness() -> None:
    """The harness itself: a wrong expected output is reported, a right one is not."""

    def run(source: str) -> doctest.TestResults:
        parser = doctest.DocTestParser()
        test = parser.get_doctest(source, {}, "example", "example.py", 0)
        return doctest.DocTestRunner(optionflags=OPTIONS).run(test, out=io.StringIO().write)

    assert run(">>> 1 + 1\n2\n") == doctest.TestResults(failed=0, attempted=1)
    assert run(">>> 1 + 1\n3\n") == doctest.TestResults(failed=1, attempted=1)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = importlib.import_module(name)
    monkeypatch.chdir(tmp_path)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    report = io.StringIO()
    for test in sorted(finder.find(module, name), key=lambda t: t.name):
        # A copy of the module's names, but not its ``from __future__`` imports: the
        # examples compile as a user's session would.
        runner.run(test, compileflags=0, out=report.write)
    assert runner.failures == 0, (
        f"{runner.failures} of {runner.tries} examples in {name} failed:\n{report.getvalue()}"
    )
