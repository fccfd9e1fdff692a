"""The README's first command runs examples/quickstart.py: it must keep working."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_runs_on_embedded_defaults(tmp_path: Path) -> None:
    env = {**os.environ, "ATDATA_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "wrote 1000 samples into 4 shards" in out
    assert "last batch.image.shape = (8, 3, 64, 64)" in out
    assert "indexed 'quickstart-images' (4 shards copied" in out
    assert "ImageSample, 1000 samples, type rebuilt from the stored schema" in out
    assert (tmp_path / "home" / "index.db").exists()
