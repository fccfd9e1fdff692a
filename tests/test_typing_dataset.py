"""A user's type checker keeps ``T`` through ``Dataset[T]``: pyright on ``tests/typing/check_dataset_api.py``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECK = ROOT / "tests" / "typing" / "check_dataset_api.py"


def _pyright() -> list[str]:
    found = shutil.which("pyright") or shutil.which(
        "pyright", path=str(Path(sys.executable).parent)
    )
    if found is None:
        pytest.skip("pyright is not installed")
    return [found]


def test_dataset_api_type_checks_with_no_error() -> None:
    result = subprocess.run(
        [*_pyright(), "--outputjson", "--pythonpath", sys.executable, str(CHECK)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(result.stdout)
    errors = [
        f"{d['file']}:{d['range']['start']['line'] + 1}: {d['message']}"
        for d in report["generalDiagnostics"]
        if d["severity"] == "error"
    ]
    assert report["summary"]["filesAnalyzed"] == 1
    assert not errors, "\n".join(errors)
