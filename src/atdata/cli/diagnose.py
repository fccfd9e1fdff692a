"""``atdata diagnose``: check the environment, the index and the configured servers.

Secrets are never printed: URLs lose their user, password and query string, and
keys are reduced to their first characters.
"""

from __future__ import annotations

import importlib
import os
import platform
import stat
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

import typer

from atdata.cli._common import JsonOpt, emit, out, table

__all__ = ["diagnose", "run_checks"]

_EXTRAS = {
    "s3": ["boto3"],
    "redis": ["redis"],
    "postgres": ["psycopg"],
    "atmosphere": ["atproto"],
    "torch": ["torch"],
    "dask": ["dask", "distributed"],
    "cli": ["typer", "rich"],
    "appview": ["starlette", "uvicorn", "websockets", "jinja2"],
}


def _redact(url: str) -> str:
    from atdata.sources import redact_url

    return redact_url(url)


def _secret(value: str | None) -> str:
    return "unset" if not value else f"{value[:4]}... ({len(value)} characters)"


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


class _Checks:
    def __init__(self) -> None:
        self.rows: list[dict[str, str]] = []

    def add(self, check: str, status: str, detail: str) -> None:
        self.rows.append({"check": check, "status": status, "detail": detail})

    def run(self, check: str, fn: Callable[[], str], *, missing: str = "fail") -> None:
        started = time.perf_counter()
        try:
            detail = fn()
        except Exception as exc:
            text = " ".join(str(exc).split())[:300] or type(exc).__name__
            self.add(check, missing, f"{type(exc).__name__}: {text}")
            return
        took = time.perf_counter() - started
        self.add(check, "ok", detail + (f" ({took * 1e3:.0f} ms)" if took > 0.05 else ""))


def _extra(modules: list[str]) -> str:
    found = []
    for name in modules:
        importlib.import_module(name)
        found.append(f"{name} {_version(name)}")
    return ", ".join(found)


def _home_writable() -> str:
    from atdata.local import atdata_home

    home = atdata_home()
    home.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=home, prefix=".diagnose-") as fh:
        fh.write(b"ok")
        fh.flush()
    free = os.statvfs(home)
    return f"{home} ({free.f_bavail * free.f_frsize / 1e9:.1f} GB free)"


def _index() -> str:
    from atdata.load import get_default_index

    index = get_default_index()
    entries = sum(1 for _ in zip(range(1000), index.entries))
    schemas = len(index.list_schemas())
    more = "+" if entries == 1000 else ""
    prepare = getattr(index.data_store, "prepare", None)
    if prepare is not None:
        prepare()  # the shard store is reachable (an S3 bucket exists)
    store = getattr(index.data_store, "location", type(index.data_store).__name__)
    return f"{index.provider.location}: {entries}{more} dataset(s), {schemas} schema(s); shards in {store}"


def _s3() -> str:
    from atdata.sources import make_s3_client

    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT")
    client = make_s3_client(
        endpoint, os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    )
    where = _redact(endpoint) if endpoint else "AWS"
    bucket = os.environ.get("ATDATA_BUCKET")
    if bucket:
        client.head_bucket(Bucket=bucket)
        return f"{where}: bucket {bucket!r} reachable (key {_secret(os.environ.get('AWS_ACCESS_KEY_ID'))})"
    buckets = client.list_buckets().get("Buckets", [])
    return f"{where}: {len(buckets)} bucket(s) (key {_secret(os.environ.get('AWS_ACCESS_KEY_ID'))})"


def _http_ok(url: str) -> Callable[[], str]:
    def check() -> str:
        import httpx

        response = httpx.get(url, timeout=5, trust_env=False)
        if response.status_code != 200:
            raise ConnectionError(f"{_redact(url)} answered HTTP {response.status_code}")
        return f"{_redact(url)} answers"

    return check


def _pds(url: str) -> str:
    import httpx

    base = url.rstrip("/")
    response = httpx.get(
        base + "/xrpc/com.atproto.server.describeServer", timeout=5, trust_env=False
    )
    if response.status_code != 200:
        raise ConnectionError(f"{_redact(base)} answered HTTP {response.status_code}")
    did = response.json().get("did", "?")
    return f"{_redact(base)} ({did})"


def _appview(url: str) -> str:
    from atdata.atmosphere.appview import AppViewClient

    with AppViewClient(url, timeout=5) as view:
        view.health()
        described = view.describe()
    hosts = described.get("hosts") or []
    down = [h["host"] for h in hosts if not h.get("connected")]
    counts = described.get("counts") or {}
    summary = (
        f"{_redact(url)}: {counts.get('ac.foundation.dataset.record', 0)} datasets, "
        f"following {len(hosts)} host(s)"
    )
    if down:
        raise ConnectionError(summary + "; not connected to " + ", ".join(down))
    return summary


def _session() -> str:
    from atdata.cli._common import load_client, session_paths

    path, _ = session_paths()
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise PermissionError(f"{path} has mode {mode:o}; run: chmod 600 {path}")
    client = load_client(required=True)
    try:
        return f"{client.handle} ({client.did}) on {_redact(client.pds_url)}; {path} mode 600"
    finally:
        client.close()


def _stack() -> str:
    from atdata.cli.stack import stack_status

    status = stack_status()
    services = status.get("services") or {}
    if not services:
        return "not running"
    parts = [f"{name} {'up' if s.get('running') else 'DOWN'}" for name, s in services.items()]
    if not all(s.get("running") for s in services.values()):
        raise RuntimeError(", ".join(parts) + " (`atdata stack down` then `up` restarts it)")
    return ", ".join(parts)


def run_checks() -> list[dict[str, str]]:
    """Every check, in order, as ``{"check", "status", "detail"}`` rows."""
    checks = _Checks()
    checks.add(
        "python",
        "ok",
        f"{platform.python_version()} ({platform.python_implementation()}, {sys.executable})",
    )
    checks.add(
        "packages",
        "ok",
        ", ".join(f"{d} {_version(d)}" for d in ("atdata", "numpy", "msgpack", "msgspec", "httpx")),
    )
    for extra, modules in _EXTRAS.items():
        checks.run(f"extra {extra}", lambda m=modules: _extra(m), missing="warn")

    def weed() -> str:
        from atdata.stack.s3 import find_weed

        return str(find_weed())

    def pds_installed() -> str:
        from atdata.stack.pds import default_pds_home, is_pds_installed

        if not is_pds_installed():
            raise FileNotFoundError(
                f"not installed in {default_pds_home()}: python -m atdata.stack.pds install"
            )
        return str(default_pds_home())

    checks.run("extra stack (SeaweedFS)", weed, missing="warn")
    checks.run("local PDS", pds_installed, missing="warn")
    checks.run("ATDATA_HOME writable", _home_writable)
    checks.run("default index", _index)
    if any(os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT", "ATDATA_BUCKET")):
        checks.run("S3", _s3)
    else:
        checks.add("S3", "skip", "AWS_ENDPOINT_URL and ATDATA_BUCKET unset")
    pds = os.environ.get("ATDATA_PDS_URL")
    if pds:
        checks.run("PDS", lambda: _pds(pds))
    else:
        checks.add("PDS", "skip", "ATDATA_PDS_URL unset (the default is https://bsky.social)")
    plc = os.environ.get("ATDATA_PLC_URL")
    if plc:
        checks.run("PLC directory", _http_ok(plc.rstrip("/") + "/_health"))
    appview = os.environ.get("ATDATA_APPVIEW_URL")
    if appview:
        checks.run("AppView", lambda: _appview(appview))
    else:
        checks.add("AppView", "skip", "ATDATA_APPVIEW_URL unset")
    from atdata.cli._common import session_paths

    if session_paths()[0].exists():
        checks.run("login session", _session)
    else:
        checks.add("login session", "skip", "not logged in (atdata login)")
    checks.run("local stack", _stack, missing="warn")
    return checks.rows


def diagnose(json_output: JsonOpt = False) -> None:
    """Check Python, packages, extras, ATDATA_HOME, the index and configured servers."""
    rows = run_checks()
    failed = [r for r in rows if r["status"] == "fail"]
    if not emit({"ok": not failed, "checks": rows}, json_output):
        from rich.text import Text

        colour = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "dim"}
        grid = table("check", "status", "detail")
        for row in rows:
            status = Text(row["status"], style=colour[row["status"]])
            grid.add_row(row["check"], status, row["detail"])
        out.print(grid)
        out.print(f"{len(failed)} problem(s)" if failed else "no problems found")
    if failed:
        raise typer.Exit(1)
