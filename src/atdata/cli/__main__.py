"""``python -m atdata.cli``: the ``atdata`` command."""

from atdata.cli import main

main()
