"""Run atdata's benchmark suites: one command, one table, one JSON file.

    python benchmarks/run.py [--quick] [--suite local,index,...] [--json PATH] [--cpu N]

Each suite is a module ``benchmarks/bench_<name>.py`` exposing ``run(quick: bool) -> list[dict]``.
A row is ``{"suite", "case", "metric", "value", "unit"}`` plus, optionally, ``"peer"`` (the
peer's value, measured in the same run), ``"peer_name"``, ``"ratio"``, ``"target"`` (text),
``"met"`` (bool), ``"note"`` and ``"higher_is_better"`` (default true). Any other keys (raw
timings, sizes) are kept in the JSON. When a row has a peer but no ratio, the runner fills in
``ours / peer`` (``peer / ours`` when lower is better), so a ratio above 1 always means atdata
is ahead.

A suite that is missing is skipped with a note; a suite that raises becomes an error row and
the runner goes on with the next one (and exits with status 1 at the end).

Suites may use the helpers here (``measure``, ``median``, ``make_row``, ``error_row``) through
``from benchmarks.run import ...``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import importlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

# Keep numeric libraries on one thread: the benchmarks measure one core.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

KNOWN_SUITES = ("local", "index", "loaders")
DEFAULT_JSON = HERE / "results" / "latest.json"
COLUMNS = ("suite", "case", "unit", "ours", "vs", "peer", "ratio", "target", "met")

# --------------------------------------------------------------------------- helpers for suites


def median(values: Sequence[float]) -> float:
    """The median of ``values``."""
    return statistics.median(values)


def measure(
    fns: Mapping[str, Callable[[], Any]],
    reps: int,
    *,
    after: Callable[[str], None] | None = None,
) -> dict[str, list[float]]:
    """Time each function ``reps`` times, interleaved, and return the seconds per call.

    Repetition ``i`` runs every function once, in an order rotated by ``i``, so a noisy
    neighbour slows all contenders alike. The garbage collector runs before each call, and
    objects alive before the measurement are frozen (``gc.freeze``) so that collections
    during a call do not walk the benchmark's own input data. ``after(name)`` runs
    untimed after each call (e.g. to delete an output file).
    """
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    gc.collect()
    gc.freeze()
    try:
        for i in range(reps):
            k = i % len(names)
            for name in names[k:] + names[:k]:
                gc.collect()
                fn = fns[name]
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
                if after is not None:
                    after(name)
    finally:
        gc.unfreeze()
    return times


def make_row(
    suite: str,
    case: str,
    metric: str,
    unit: str,
    value: float | None,
    peer: float | None = None,
    *,
    peer_name: str | None = None,
    target: str | None = None,
    met: bool | None = None,
    note: str | None = None,
    higher_is_better: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """Build one result row (keys with a None value are left out)."""
    row: dict[str, Any] = {
        "suite": suite,
        "case": case,
        "metric": metric,
        "value": value,
        "unit": unit,
        "peer": peer,
        "peer_name": peer_name,
        "target": target,
        "met": met,
        "note": note,
    }
    if not higher_is_better:
        row["higher_is_better"] = False
    row.update(extra)
    return {k: v for k, v in row.items() if v is not None}


# --------------------------------------------------------------------------- machine info


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def machine_info() -> dict[str, Any]:
    """Where and with what the numbers were measured."""
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "cpu_model": _cpu_model(),
        "mem_total_gib": _mem_total_gib(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "versions": {
            name: _version(name)
            for name in ("atdata", "numpy", "webdataset", "msgpack", "msgspec", "boto3")
        },
        "git_commit": _git_commit(),
    }


# --------------------------------------------------------------------------- running suites


def available_suites() -> list[str]:
    """The known suites, then any other ``bench_*.py`` found next to this file."""
    found = sorted(p.stem[len("bench_") :] for p in HERE.glob("bench_*.py"))
    return list(KNOWN_SUITES) + [s for s in found if s not in KNOWN_SUITES]


def error_row(suite: str, case: str, exc: BaseException) -> dict[str, Any]:
    """A row reporting that a suite or case raised ``exc`` (call it inside ``except``)."""
    return {
        "suite": suite,
        "case": case,
        "metric": "error",
        "value": None,
        "unit": "",
        "error": f"{type(exc).__name__}: {exc}",
        "traceback": traceback.format_exc(),
    }


def _normalize(row: Mapping[str, Any], suite: str) -> dict[str, Any]:
    out = dict(row)
    out.setdefault("suite", suite)
    out.setdefault("case", "?")
    out.setdefault("metric", "")
    out.setdefault("unit", "")
    out.setdefault("value", None)
    value, peer = out.get("value"), out.get("peer")
    if (
        out.get("ratio") is None
        and isinstance(value, int | float)
        and isinstance(peer, int | float)
        and value > 0
        and peer > 0
    ):
        out["ratio"] = value / peer if out.get("higher_is_better", True) else peer / value
    return out


def run_suite(name: str, quick: bool) -> tuple[list[dict[str, Any]], str | None]:
    """Run one suite; return its rows and a note when it was skipped."""
    module_name = f"benchmarks.bench_{name}"
    if not (HERE / f"bench_{name}.py").exists():
        return [], f"suite {name!r} skipped: benchmarks/bench_{name}.py does not exist (yet)"
    try:
        module = importlib.import_module(module_name)
        rows = module.run(quick)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # a failing suite must not stop the others
        return [error_row(name, "(suite failed)", exc)], None
    return [_normalize(r, name) for r in rows], None


# --------------------------------------------------------------------------- output


def fmt_number(v: Any) -> str:
    """Three significant digits with a k/M/G suffix, or '-'."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if not isinstance(v, int | float) or math.isnan(v):
        return str(v)
    units = (("", 1.0), ("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12))
    text = ""
    for suffix, scale in units:
        text = f"{v / scale:.3g}"
        if abs(float(text)) < 1000:
            return text + suffix
    return text + units[-1][0]


def table_cells(row: Mapping[str, Any]) -> list[str]:
    """The printed cells of one row, in ``COLUMNS`` order."""
    if row.get("metric") == "error":
        return [row["suite"], row["case"], "", "ERROR", "", "", "", row.get("error", ""), ""]
    ratio = row.get("ratio")
    met = row.get("met")
    return [
        str(row.get("suite", "")),
        str(row.get("case", "")),
        str(row.get("unit", "")),
        fmt_number(row.get("value")),
        str(row.get("peer_name", "")) if row.get("peer") is not None else "",
        fmt_number(row.get("peer")) if row.get("peer") is not None else "",
        f"{ratio:.2f}x" if isinstance(ratio, int | float) else "",
        str(row.get("target", "")),
        "" if met is None else ("yes" if met else "NO"),
    ]


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """One aligned text table of all rows, followed by their numbered notes."""
    cells = [list(COLUMNS)] + [table_cells(r) for r in rows]
    notes: list[str] = []
    for r, c in zip(rows, cells[1:]):
        if r.get("note"):
            notes.append(f"[{len(notes) + 1}] {r['suite']} / {r['case']}: {r['note']}")
            c[1] += f" [{len(notes)}]"
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    numeric = {3, 5, 6}
    lines = []
    for j, c in enumerate(cells):
        parts = [
            c[i].rjust(widths[i]) if i in numeric and j else c[i].ljust(widths[i])
            for i in range(len(COLUMNS))
        ]
        lines.append("  ".join(parts).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    if notes:
        lines.append("")
        lines.extend(notes)
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run atdata benchmarks; print a table and write JSON."
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: every suite well under a minute"
    )
    parser.add_argument(
        "--suite",
        default=None,
        help=f"comma-separated suites (default: all of {', '.join(available_suites())})",
    )
    parser.add_argument(
        "--json",
        default=str(DEFAULT_JSON),
        help="where to write results (default: benchmarks/results/latest.json)",
    )
    parser.add_argument(
        "--cpu",
        type=int,
        default=None,
        help="pin this process to one CPU (Linux); default: no pinning",
    )
    args = parser.parse_args(argv)

    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    suites = (
        [s.strip() for s in args.suite.split(",") if s.strip()]
        if args.suite
        else available_suites()
    )
    info = machine_info()
    print(
        f"atdata benchmarks{' (quick)' if args.quick else ''}: {', '.join(suites)}\n"
        f"{info['cpu_model']}, {info['cpu_count']} CPUs, Python {info['python']}, "
        f"numpy {info['versions']['numpy']}, webdataset {info['versions']['webdataset']}, "
        f"load {', '.join(f'{x:.2f}' for x in info['load_average'] or [])}",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    durations: dict[str, float] = {}
    for name in suites:
        t0 = time.perf_counter()
        print(f"running suite {name!r} ...", flush=True)
        suite_rows, note = run_suite(name, args.quick)
        durations[name] = round(time.perf_counter() - t0, 2)
        if note:
            print(f"  {note}", flush=True)
            skipped.append(note)
        else:
            print(f"  {len(suite_rows)} rows in {durations[name]:.1f} s", flush=True)
        for r in suite_rows:
            if r.get("metric") == "error":
                print(f"  ERROR in {name}: {r['error']}\n{r.get('traceback', '')}", flush=True)
        rows.extend(suite_rows)
        gc.collect()

    print()
    print(format_table(rows) if rows else "(no results)")
    for note in skipped:
        print(f"note: {note}")

    info["load_average_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    result = {
        "machine": info,
        "args": {"quick": args.quick, "suites": suites, "cpu": args.cpu},
        "suite_seconds": durations,
        "skipped": skipped,
        "rows": rows,
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nwrote {out}")
    return 1 if any(r.get("metric") == "error" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
