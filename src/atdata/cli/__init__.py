"""The ``atdata`` command: inspect, preview, publish and promote datasets; run a local stack.

Installed with the ``cli`` extra (``pip install 'atdata[cli]'``); ``python -m
atdata.cli`` is the same program. ``atdata --help`` lists the commands.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

_MISSING_EXTRA = "atdata: the command line needs its extra: pip install 'atdata[cli]'"


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``atdata`` command with ``argv`` (default ``sys.argv[1:]``) and exit."""
    try:
        import rich  # noqa: F401
        import typer  # noqa: F401
    except ImportError:
        print(_MISSING_EXTRA, file=sys.stderr)
        raise SystemExit(1) from None
    from atdata.cli._app import run

    raise SystemExit(run(list(sys.argv[1:] if argv is None else argv)))
