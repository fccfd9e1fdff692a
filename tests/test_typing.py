"""A user's type checker sees the public API typed: pyright reports no error on ``tests/typing/``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKS = sorted((ROOT / "tests" / "typing").glob("check_*.py"))


@pytest.mark.parametrize("check", CHECKS, ids=lambda p: p.name)
def test_public_api_types_as_promised(check: Path) -> None:
    result = subprocess.run(
        # pyright is pinned in the dev extra: run it from this interpreter, never skip.
        [
            sys.executable,
            "-m",
            "pyright",
            "--outputjson",
            "--pythonpath",
            sys.executable,
            str(check),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(result.stdout)
    errors = [
        f"{Path(d['file']).name}:{d['range']['start']['line'] + 1}: {d['message']}"
        for d in report["generalDiagnostics"]
        if d["severity"] == "error"
    ]
    assert not errors, "\n".join(errors)
    assert report["summary"]["filesAnalyzed"] >= 1
