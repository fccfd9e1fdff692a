"""The tutorials run: every ```python and ```bash block of each page, in order.

Each page runs in a fresh working directory with its own ``ATDATA_HOME``, S3
bucket and PDS account; the ``python`` blocks share one namespace, the ``bash``
blocks run the installed ``atdata`` command. The pages read their endpoints and
account from the environment variables ``atdata stack up`` prints, which this
harness sets from the test servers. ```console blocks are one-off setup a reader
types (installing, starting the stack) and are not run here; the stack is tested
in ``test_cli.py``.

A ```python or ```bash block that prints is followed by an ```output block showing
what it prints, and the page fails if the block prints anything else (``...`` stands
for any text, such as a DID or a random value; runs of spaces and newlines compare
equal) or prints without an ```output block.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import os
import re
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import private_atdata_home  # noqa: F401 - autouse fixture

DOCS = Path(__file__).resolve().parent.parent / "docs"
TUTORIALS = [
    "quickstart",
    "local-workflow",
    "atmosphere-publishing",
    "promotion",
    "discovery",
    "keep-a-dataset-alive",
]
CHECKER = doctest.OutputChecker()
OUTPUT_OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
_FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)


def blocks(page: Path) -> list[tuple[str, str, int]]:
    """``(language, code, line number)`` of every fenced block of a Markdown page."""
    text = page.read_text()
    return [
        (m.group(1), m.group(2), text.count("\n", 0, m.start()) + 2) for m in _FENCE.finditer(text)
    ]


def test_every_tutorial_block_is_python_bash_or_console() -> None:
    for name in TUTORIALS:
        found = blocks(DOCS / "tutorials" / f"{name}.md")
        assert any(lang == "python" for lang, _, _ in found), name
        for lang, _, line in found:
            assert lang in ("python", "bash", "console", "text", "output"), f"{name}.md:{line}"
        for (lang, _, line), (before, _, _) in zip(found[1:], found, strict=False):
            if lang == "output":
                assert before in ("python", "bash"), f"{name}.md:{line}: output of {before!r}"


def test_reference_pages_exist_and_link() -> None:
    index = (DOCS / "index.md").read_text()
    for target in re.findall(r"\]\(([^)#]+\.md)", index):
        assert (DOCS / target).exists(), target
    for page in DOCS.rglob("*.md"):
        for target in re.findall(r"\]\((?!https?://)([^)#]+\.md)", page.read_text()):
            assert (page.parent / target).resolve().exists(), f"{page.name} links {target}"


@pytest.fixture
def page_env(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    s3_env: dict[str, str],
    s3_bucket: str,
    pds_account: dict[str, str],
    appview_server: Any,
) -> Iterator[Path]:
    """A working directory and the settings `atdata stack up` would print, for one page."""
    for key in list(os.environ):
        if key.startswith(("ATDATA_", "AWS_")):
            monkeypatch.delenv(key)
    settings = {
        **s3_env,
        "ATDATA_HOME": str(tmp_path / "home"),
        "ATDATA_BUCKET": s3_bucket,
        "ATDATA_PDS_URL": pds_account["pds_url"],
        "ATDATA_PLC_URL": pds_account["plc_url"],
        "ATDATA_HANDLE": pds_account["handle"],
        "ATDATA_APP_PASSWORD": pds_account["password"],
        "ATDATA_ALLOW_PRIVATE_URLS": "1",  # printed by `atdata stack up`: all on loopback
        "ATDATA_APPVIEW_URL": appview_server.url,
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    from atdata.load import set_default_index

    set_default_index(None)
    yield work
    set_default_index(None)


@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_runs(name: str, page_env: Path) -> None:
    page = DOCS / "tutorials" / f"{name}.md"
    module = types.ModuleType(f"tutorial_{name.replace('-', '_')}")  # like a user's script
    sys.modules[module.__name__] = module
    namespace: dict[str, Any] = module.__dict__
    found = blocks(page)
    checked = 0
    for (lang, code, line), after in zip(found, [*found[1:], None], strict=True):
        where = f"{page.relative_to(DOCS.parent)}:{line}"
        if lang == "python":
            padded = "\n" * (line - 1) + code  # tracebacks show the page's line numbers
            with contextlib.redirect_stdout(io.StringIO()) as out:
                exec(compile(padded, str(page), "exec", dont_inherit=True), namespace)
            printed = out.getvalue()
        elif lang == "bash":
            proc = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", code],
                capture_output=True,
                text=True,
                cwd=page_env,
                timeout=300,
                check=False,
            )
            assert proc.returncode == 0, f"{where} exited {proc.returncode}:\n{proc.stderr}"
            printed = proc.stdout
        else:
            continue
        if after is None or after[0] != "output":
            assert not printed.strip(), (
                f"{where} prints this, which the page does not show:\n{printed}"
            )
            continue
        shown = after[1]
        assert CHECKER.check_output(shown, printed, OUTPUT_OPTIONS), (
            f"{where}: the block printed\n{printed}\nbut the page shows\n{shown}"
        )
        checked += 1
    sys.modules.pop(module.__name__, None)
    assert checked, f"{name} shows no output"
