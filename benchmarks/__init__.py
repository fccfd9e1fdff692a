"""atdata benchmarks: run ``python benchmarks/run.py`` (see ``benchmarks/README.md``).

Each suite is a module ``benchmarks/bench_<name>.py`` with ``run(quick: bool) -> list[dict]``.
"""
