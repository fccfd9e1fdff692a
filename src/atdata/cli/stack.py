"""``atdata stack up|down|status|env|install``: a local S3 store and PDS for trying atdata.

``up`` starts SeaweedFS (S3), the reference PDS with an in-memory PLC
directory and an AppView following that PDS (``ATDATA_APPVIEW_URL``) as
background processes that outlive the command, creates a bucket
and a demo account with an app password, and prints the settings as ``export``
lines (``eval "$(atdata stack up)"``). Everything lives under
``$ATDATA_HOME/stack``; ``state.json`` there (mode 0600) records the process
ids, ports and settings. No Docker is needed.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from atdata._urls import ALLOW_PRIVATE_ENV
from atdata.cli._common import CliError, JsonOpt, atdata_home, emit, err, out, write_private

__all__ = ["app", "stack_status"]

app: typer.Typer = typer.Typer(
    help="A local S3 store and ATProto PDS (no Docker): up, down, status, env.",
    no_args_is_help=True,
)

SECRETS = ("AWS_SECRET_ACCESS_KEY", "ATDATA_APP_PASSWORD")
_MARKS = {"s3": "weed", "pds": "server.mjs", "appview": "appview serve"}


def stack_dir() -> Path:
    """``$ATDATA_HOME/stack``: the servers' data and ``state.json``."""
    return atdata_home() / "stack"


def _state_path() -> Path:
    return stack_dir() / "state.json"


def read_state() -> dict[str, Any]:
    """The recorded stack (``{}`` when none)."""
    try:
        data = json.loads(_state_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_state(state: dict[str, Any]) -> None:
    stack_dir().mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(_state_path(), json.dumps(state, indent=2))


# --------------------------------------------------------------------------- processes


def _command_line(pid: int) -> str | None:
    """The command line of a live process ``pid``; None when it is gone (or a zombie)."""
    if Path("/proc/self").exists():
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
            if state in ("Z", "X"):
                return None
            return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, UnicodeDecodeError):
            return None
    try:
        found = subprocess.run(
            ["ps", "-o", "stat=,command=", "-p", str(pid)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:  # no ps: trust the signal check
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ""
    if not found or found.startswith("Z"):
        return None
    return found.split(None, 1)[-1]


def _ours(service: dict[str, Any], name: str) -> bool:
    """True while the recorded process runs and is still the server we started."""
    pid = int(service.get("pid") or 0)
    line = _command_line(pid) if pid > 0 else None
    return line is not None and (line == "" or _MARKS[name] in line)


def _stop(service: dict[str, Any], name: str, timeout: float = 15.0) -> bool:
    """Stop one recorded server (its whole process group); True if it was running."""
    if not _ours(service, name):
        return False
    pid = int(service["pid"])
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _command_line(pid) is not None:
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            break
        time.sleep(0.1)
    for port in service.get("ports", []):
        for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            sock.unlink(missing_ok=True)
    return True


def _healthy(service: dict[str, Any], name: str) -> bool:
    import httpx

    url = service.get("url", "")
    path = {"pds": "/xrpc/_health", "appview": "/health"}.get(name, "/")
    try:
        response = httpx.get(url + path, timeout=3, trust_env=False)
    except httpx.HTTPError:
        return False
    return response.status_code < 500


# --------------------------------------------------------------------------- starting


def _start_s3(root: Path, bucket: str) -> dict[str, Any]:
    from atdata.stack.s3 import s3_client, start_s3

    access_key = "atdata-" + secrets.token_hex(6)
    secret_key = secrets.token_urlsafe(24)
    try:
        server = start_s3(root / "s3", access_key=access_key, secret_key=secret_key)
    except (FileNotFoundError, ImportError) as exc:  # no weed binary, or no boto3
        raise CliError(str(exc), hint="pip install 'atdata[s3,stack]'") from None
    server.detach()  # it must outlive this command
    try:
        client = s3_client(server.env)
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)
    except BaseException:
        server.stop()
        raise
    assert server.process is not None
    return {
        "pid": server.process.pid,
        "url": server.url,
        "data_dir": str(server.data_dir),
        "log": str(server.data_dir / "weed.out"),
        "ports": [int(v) for k, v in server.extra.items() if k.startswith("port_")],
        "env": {
            **server.env,
            "ATDATA_BUCKET": bucket,
        },
    }


def _app_password(pds_url: str, handle: str, password: str) -> str:
    """Create an app password for the account (as a user would on bsky.app)."""
    import httpx

    with httpx.Client(base_url=pds_url, timeout=30, trust_env=False) as http:
        session = http.post(
            "/xrpc/com.atproto.server.createSession",
            json={"identifier": handle, "password": password},
        )
        session.raise_for_status()
        token = session.json()["accessJwt"]
        created = http.post(
            "/xrpc/com.atproto.server.createAppPassword",
            json={"name": "atdata-stack"},
            headers={"Authorization": f"Bearer {token}"},
        )
        created.raise_for_status()
        return str(created.json()["password"])


def _start_pds(root: Path, handle: str) -> dict[str, Any]:
    from atdata.stack.pds import create_account, start_pds

    # ATDATA_PDS_PARENT_PID=0: the PDS must not stop when this command exits.
    server = start_pds(root / "pds", pds_env={"ATDATA_PDS_PARENT_PID": "0"})
    try:
        password = secrets.token_urlsafe(18)
        account = create_account(server, handle, password)
        app_password = _app_password(server.url, account["handle"], password)
    except BaseException:
        server.stop()
        raise
    assert server.process is not None
    return {
        "pid": server.process.pid,
        "url": server.url,
        "data_dir": str(server.data_dir),
        "log": server.extra.get("log", ""),
        "did": account["did"],
        "env": {
            "ATDATA_PDS_URL": server.env["PDS_URL"],
            "ATDATA_PLC_URL": server.env["PLC_URL"],
            "ATDATA_HANDLE": account["handle"],
            "ATDATA_APP_PASSWORD": app_password,
        },
    }


def _start_appview(root: Path, pds: dict[str, Any]) -> dict[str, Any]:
    """An AppView following the stack's PDS (SQLite under the stack directory)."""
    from atdata.stack.appview import start_appview

    env = pds["env"]
    # The PLC directory is in memory, so a previous stack's identities are gone: start afresh.
    shutil.rmtree(root / "appview", ignore_errors=True)
    server = start_appview(
        [env["ATDATA_PDS_URL"]],
        plc_url=env["ATDATA_PLC_URL"],
        data_dir=root / "appview",
        parent_pid=0,
    )
    assert server.process is not None
    return {
        "pid": server.process.pid,
        "url": server.url,
        "data_dir": str(server.data_dir),
        "log": server.extra.get("log", ""),
        "env": {"ATDATA_APPVIEW_URL": server.url},
    }


def stack_env(state: dict[str, Any]) -> dict[str, str]:
    """The settings of every recorded server, in one mapping."""
    env: dict[str, str] = {}
    for service in (state.get("services") or {}).values():
        env.update(service.get("env") or {})
    if env:
        # Everything the trial stack serves is on loopback: records published there
        # point at it, so readers of this machine opt in to private addresses.
        env[ALLOW_PRIVATE_ENV] = "1"
    return env


def _exports(env: dict[str, str]) -> str:
    import shlex

    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())


def stack_status() -> dict[str, Any]:
    """The recorded servers, each with ``running`` and ``healthy``; settings without secrets."""
    state = read_state()
    services = {}
    for name, service in (state.get("services") or {}).items():
        running = _ours(service, name)
        services[name] = {
            "pid": service.get("pid"),
            "url": service.get("url"),
            "running": running,
            "healthy": running and _healthy(service, name),
            "data_dir": service.get("data_dir"),
            "log": service.get("log"),
        }
    env = {k: ("***" if k in SECRETS else v) for k, v in stack_env(state).items()}
    return {"state_file": str(_state_path()), "services": services, "settings": env}


# --------------------------------------------------------------------------- commands


@app.command("up")
def up(
    s3: Annotated[bool, typer.Option("--s3/--no-s3", help="Start the S3 store.")] = True,
    pds: Annotated[bool, typer.Option("--pds/--no-pds", help="Start the PDS.")] = True,
    appview: Annotated[
        bool, typer.Option("--appview/--no-appview", help="Start an AppView following the PDS.")
    ] = True,
    bucket: Annotated[str, typer.Option("--bucket", help="Bucket to create.")] = "atdata",
    handle: Annotated[
        str, typer.Option("--handle", help="Demo account's handle.")
    ] = "atdata-demo.test",
    json_output: JsonOpt = False,
) -> None:
    """Start the local stack in the background and print its settings as export lines."""
    state = read_state()
    wanted = [n for n, on in (("s3", s3), ("pds", pds), ("appview", pds and appview)) if on]
    services = state.get("services") or {}
    if services and all(_ours(services[n], n) for n in services) and set(wanted) <= set(services):
        err.print("the stack is already running (`atdata stack down` stops it)")
    else:
        for name, service in services.items():  # leftovers of a stack that half died
            _stop(service, name)
        root = stack_dir()
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(root, 0o700)
        services = {}
        try:
            if s3:
                err.print("starting SeaweedFS (S3) ...")
                services["s3"] = _start_s3(root, bucket)
            if pds:
                err.print("starting the PDS and PLC directory ...")
                services["pds"] = _start_pds(root, handle)
                if appview:
                    err.print("starting the AppView ...")
                    services["appview"] = _start_appview(root, services["pds"])
        except BaseException:
            for name, service in services.items():
                _stop(service, name)
            raise
        state = {"started_at": time.time(), "services": services}
        _write_state(state)
    env = stack_env(state)
    view = (state.get("services") or {}).get("appview")
    pages = {"pages": view["url"] + "/"} if view else {}
    if emit({"state_file": str(_state_path()), "settings": env, **pages}, json_output):
        return
    typer.echo(_exports(env), nl=False)
    err.print(
        f"# stack up; settings in {_state_path()} (mode 600); stop it with `atdata stack down`"
    )
    if pages:
        err.print(f"# dataset pages (the AppView): {pages['pages']}")


@app.command("down")
def down(
    purge: Annotated[
        bool, typer.Option("--purge", help="Also delete the servers' data (buckets, accounts).")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Stop the local stack."""
    state = read_state()
    stopped = [name for name, s in (state.get("services") or {}).items() if _stop(s, name)]
    _state_path().unlink(missing_ok=True)
    if purge:
        shutil.rmtree(stack_dir(), ignore_errors=True)
    if emit({"stopped": stopped, "purged": purge}, json_output):
        return
    out.print(f"stopped {', '.join(stopped)}" if stopped else "the stack was not running")


@app.command("status")
def status(json_output: JsonOpt = False) -> None:
    """Report whether the local stack runs, and where (secrets hidden)."""
    report = stack_status()
    if emit(report, json_output):
        return
    if not report["services"]:
        out.print("the stack is not running (`atdata stack up` starts it)")
        raise typer.Exit(1)
    for name, s in report["services"].items():
        state = "up" if s["healthy"] else ("running, not answering" if s["running"] else "down")
        out.print(f"{name:<4} {state:<8} {s['url']}  pid {s['pid']}  log {s['log']}")
    for key, value in report["settings"].items():
        out.print(f"  {key}={value}")
    if not all(s["healthy"] for s in report["services"].values()):
        raise typer.Exit(1)


@app.command("env")
def env(json_output: JsonOpt = False) -> None:
    """Print the running stack's settings again, as export lines (secrets included)."""
    state = read_state()
    if not state.get("services"):
        raise CliError("the stack is not running", hint="atdata stack up")
    settings = stack_env(state)
    if emit(settings, json_output):
        return
    typer.echo(_exports(settings), nl=False)


@app.command("install")
def install(
    force: Annotated[bool, typer.Option("--force", help="Reinstall.")] = False,
) -> None:
    """Install the local PDS (Node.js and the reference PDS; needs npm and a C++ compiler)."""
    from atdata.stack.pds import install_pds

    install_pds(force=force)
