"""Start an AppView (``atdata appview serve``) as a background process on a loopback port.

Give it the URL of a PDS or relay to follow (``start_appview([pds.url], plc_url=...)``);
here it follows a host that is down, so its index stays empty:

>>> with start_appview(["http://127.0.0.1:9"]) as view:
...     view.env["ATDATA_APPVIEW_URL"] == view.url
...     httpx.get(view.url + "/health", trust_env=False).json()["status"]
True
'ok'
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import httpx

from atdata.stack._base import LocalServer, child_env, free_port, spawn, wait_until

__all__ = ["start_appview"]


def start_appview(
    hosts: Sequence[str],
    db: str | None = None,
    *,
    plc_url: str | None = None,
    data_dir: Path | str | None = None,
    port: int | None = None,
    timeout: float = 60.0,
    parent_pid: int | None = None,
) -> LocalServer:
    """Run ``atdata appview serve`` following ``hosts``; wait until ``/health`` answers.

    ``db`` defaults to ``sqlite:///{data_dir}/appview.db``; ``data_dir`` (the log and the
    default database) to a temporary directory removed at stop. ``env`` of the result
    holds ``ATDATA_APPVIEW_URL``. ``parent_pid=0`` lets the server outlive this process.
    """
    remove = data_dir is None
    state = Path(data_dir or tempfile.mkdtemp(prefix="atdata-appview-")).absolute()
    state.mkdir(parents=True, exist_ok=True)
    db = db or f"sqlite:///{state / 'appview.db'}"
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable,
        "-m",
        "atdata.cli",
        "appview",
        "serve",
        "--db",
        db,
        "--listen",
        f"127.0.0.1:{port}",
    ]
    for host in hosts:
        cmd += ["--host", host]
    extra = {"PYTHONUNBUFFERED": "1"}
    if plc_url:
        extra["ATDATA_PLC_URL"] = plc_url
    extra["ATDATA_APPVIEW_PARENT_PID"] = str(os.getpid() if parent_pid is None else parent_pid)
    log = state / "appview.log"
    proc = spawn(cmd, log=log, env=child_env(extra=extra))

    def healthy() -> bool:
        return httpx.get(url + "/health", timeout=2.0, trust_env=False).status_code == 200

    server = LocalServer(
        name="appview",
        url=url,
        env={"ATDATA_APPVIEW_URL": url},
        data_dir=state,
        process=proc,
        remove_data=remove,
        extra={"log": str(log), "db": db},
    )
    try:
        wait_until(healthy, timeout=timeout, what="AppView", log=log, process=proc)
    except BaseException:
        server.stop()
        raise
    return server
