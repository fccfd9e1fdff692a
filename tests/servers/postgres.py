"""A throwaway PostgreSQL server on loopback (the system server binaries), for the tests.

``initdb`` creates a cluster in a temporary directory with trust authentication,
the server listens on 127.0.0.1 at a free port with its unix socket inside that
directory, and a database ``atdata_test`` is created. PostgreSQL refuses to run as
root, so under root the cluster is owned by and run as an unprivileged user.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from atdata.stack._base import LocalServer, child_env, free_port, spawn, stop_at_exit, wait_until

__all__ = ["DATABASE", "SUPERUSER", "find_pg_bindir", "start_postgres"]

DATABASE = "atdata_test"
SUPERUSER = "postgres"

_INSTALL_HINT = (
    "install the PostgreSQL server (Debian/Ubuntu: apt-get install postgresql; "
    "macOS: brew install postgresql) or set PG_BINDIR to the directory holding initdb"
)


def _has_server(bindir: Path) -> bool:
    return all(os.access(bindir / exe, os.X_OK) for exe in ("initdb", "postgres"))


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path)) or (0,)


def find_pg_bindir() -> Path:
    """Return the directory holding ``initdb`` and ``postgres``.

    Looks at ``$PG_BINDIR``, ``pg_config --bindir``, ``initdb`` on PATH and
    ``/usr/lib/postgresql/*/bin`` (newest first).
    """
    explicit = os.environ.get("PG_BINDIR")
    if explicit:
        if _has_server(Path(explicit)):
            return Path(explicit)
        raise FileNotFoundError(
            f"PG_BINDIR={explicit} holds no initdb and postgres binaries; {_INSTALL_HINT}"
        )
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    pattern = "/usr/lib/postgresql/*/bin"
    candidates += [Path(p) for p in sorted(glob.glob(pattern), key=_version_key, reverse=True)]
    for bindir in candidates:
        if _has_server(bindir):
            return bindir
    raise FileNotFoundError(f"the PostgreSQL server binaries were not found; {_INSTALL_HINT}")


@dataclass(frozen=True)
class _RunAs:
    """The account the server runs as (``uid``/``gid`` None: the current user)."""

    uid: int | None
    gid: int | None


def _run_as() -> _RunAs:
    """Pick an unprivileged account when running as root, else keep the current user."""
    if os.geteuid() != 0:
        return _RunAs(None, None)
    for name in (os.environ.get("ATDATA_PG_RUN_AS") or "", "postgres", "nobody"):
        if not name:
            continue
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if entry.pw_uid != 0:
            return _RunAs(entry.pw_uid, entry.pw_gid)
    raise RuntimeError("running as root and found no unprivileged user (postgres, nobody)")


def _chown(path: Path, who: _RunAs) -> None:
    if who.uid is not None and who.gid is not None:
        os.chown(path, who.uid, who.gid)


def _is_ready(pgdata: Path) -> bool:
    """True once ``postmaster.pid`` reports the server as ready for connections."""
    lines = (pgdata / "postmaster.pid").read_text().splitlines()
    return len(lines) >= 8 and lines[7].strip() == "ready"


def _find_client(bindir: Path, name: str) -> Path | None:
    path = bindir / name
    if os.access(path, os.X_OK):
        return path
    found = shutil.which(name)
    return Path(found) if found else None


def _create_database(bindir: Path, port: int, name: str, env: dict[str, str]) -> None:
    """Create database ``name`` with ``createdb``, or with psycopg if that binary is absent."""
    createdb = _find_client(bindir, "createdb")
    if createdb is not None:
        subprocess.run(
            [createdb, "-h", "127.0.0.1", "-p", str(port), "-U", SUPERUSER, name],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            check=True,
        )
        return
    import psycopg

    dsn = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def start_postgres(data_dir: Path | None = None, *, timeout: float = 60) -> LocalServer:
    """Start PostgreSQL on a free 127.0.0.1 port with a fresh cluster and database ``atdata_test``.

    ``url`` is ``postgresql://postgres@127.0.0.1:<port>/atdata_test`` (trust auth).
    With ``data_dir=None`` the cluster lives in a temporary directory that ``stop()``
    deletes, and durability is off (``fsync=off``); a given ``data_dir`` is kept.
    """
    bindir = find_pg_bindir()
    who = _run_as()
    remove = data_dir is None
    root = Path(tempfile.mkdtemp(prefix="atdata-postgres-")) if data_dir is None else Path(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    _chown(root, who)
    pgdata = root / "pgdata"
    sockdir = root / "run"
    sockdir.mkdir(mode=0o700, exist_ok=True)
    _chown(sockdir, who)
    log = root / "postgres.log"
    env = child_env(("PG",), {"LC_ALL": "C", "TZ": "UTC"})
    port = free_port()
    server = LocalServer(
        name="postgres",
        url=f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{DATABASE}",
        env={},
        data_dir=root,
        remove_data=remove,
        stop_signal=signal.SIGINT,  # fast shutdown: does not wait for clients to leave
        extra={"port": str(port), "bindir": str(bindir), "socket_dir": str(sockdir)},
    )
    server.env = {
        "DATABASE_URL": server.url,
        "PGHOST": "127.0.0.1",
        "PGPORT": str(port),
        "PGUSER": SUPERUSER,
        "PGDATABASE": DATABASE,
    }
    started = time.monotonic()
    try:
        if not (pgdata / "PG_VERSION").exists():
            init = subprocess.run(
                [
                    bindir / "initdb",
                    "-D",
                    pgdata,
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-locale",
                    *(["--no-sync"] if remove else []),
                ],
                env=env,
                cwd=root,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                user=who.uid,
                group=who.gid,
                extra_groups=[] if who.uid is not None else None,
            )
            log.write_bytes(init.stdout)
            if init.returncode != 0:
                raise RuntimeError(
                    f"initdb failed with code {init.returncode}:\n"
                    + init.stdout.decode(errors="replace")[-2000:]
                )
        fast = ["-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off"]
        cmd: list[str | os.PathLike[str]] = [
            bindir / "postgres",
            "-D",
            pgdata,
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={sockdir}",
            "-c",
            "logging_collector=off",
            *(fast if remove else []),
        ]
        server.process = spawn(cmd, log=log, env=env, cwd=root, user=who.uid, group=who.gid)
        stop_at_exit(server)
        wait_until(
            lambda: _is_ready(pgdata),
            timeout=timeout,
            what=f"PostgreSQL on 127.0.0.1:{port}",
            log=log,
            process=server.process,
        )
        marker = root / ".atdata_database_created"
        if not marker.exists():
            _create_database(bindir, port, DATABASE, env)
            marker.touch()
    except BaseException:
        server.stop()
        raise
    server.extra["startup_seconds"] = f"{time.monotonic() - started:.3f}"
    return server
