"""Type checks run before the tests: pyright on ``src/``, on the docs' examples, and the
completeness of the public API as a user's type checker sees it.

    python scripts/typecheck.py            # exits 1 on any pyright error or a score under 95 %

The documentation's examples are the ``python`` blocks of every page, one file per page.
The README and the tutorials are whole programs (their blocks share one namespace when the
tutorials run); the other pages show fragments that continue them, so names those pages use
without defining (``ds``, ``client``, a sample type) are not reported there, and
``atdata``, ``np`` and ``NDArray`` are imported for them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
MIN_COMPLETENESS = 95.0
_FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)


def pyright(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # pyright finds the packages through the first `python` on PATH (``--verifytypes``
    # ignores ``--pythonpath``): put this interpreter's directory first.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    command = [sys.executable, "-m", "pyright", *args]
    return subprocess.run(
        command, cwd=ROOT, env={**os.environ, "PATH": path, **env}, text=True, capture_output=True
    )


WHOLE_PROGRAMS = [ROOT / "README.md", *sorted((ROOT / "docs" / "tutorials").glob("*.md"))]
_FRAGMENT = (
    "# pyright: reportUndefinedVariable=false\n"
    "import atdata\nimport numpy as np\nfrom numpy.typing import NDArray\n"
)


def doc_examples(into: Path) -> list[Path]:
    files = []
    for page in PAGES:
        code = "\n\n".join(m.group(1) for m in _FENCE.finditer(page.read_text()))
        if code and page not in WHOLE_PROGRAMS:
            code = _FRAGMENT + code
        elif code:  # a tutorial may define a sample type again further down, on purpose
            code = "# pyright: reportRedeclaration=false\n" + code
        if code:
            path = into / (page.relative_to(ROOT).as_posix().replace("/", "__")[:-3] + ".py")
            path.write_text(code)
            files.append(path)
    return files


def main() -> int:
    failed = False
    result = pyright("src")
    print(result.stdout.strip().splitlines()[-1])
    if result.returncode:
        print(result.stdout)
        failed = True

    with tempfile.TemporaryDirectory() as tmp:
        examples = doc_examples(Path(tmp))
        result = pyright(*map(str, examples))
        print(f"docs examples ({len(examples)} pages): {result.stdout.strip().splitlines()[-1]}")
        if result.returncode:
            print(result.stdout)
            failed = True

    # verifytypes must see the package as a user does: on sys.path, not through an editable hook.
    result = pyright(
        "--verifytypes", "atdata", "--ignoreexternal", "--outputjson", PYTHONPATH=str(ROOT / "src")
    )
    report = json.loads(result.stdout)
    score = 100 * report["typeCompleteness"]["completenessScore"]
    print(f"verifytypes atdata: {score:.1f} % of the public API has known types")
    if score < MIN_COMPLETENESS:
        unknown = [
            s["name"]
            for s in report["typeCompleteness"]["symbols"]
            if s["isExported"] and (not s["isTypeKnown"] or s.get("isTypeAmbiguous"))
        ]
        print("not fully typed:", *unknown[:50], sep="\n  ")
        failed = True
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
