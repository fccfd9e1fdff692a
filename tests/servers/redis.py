"""A throwaway Redis server on loopback (the system ``redis-server`` binary), for the tests."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

from atdata.stack._base import LocalServer, child_env, free_port, spawn, stop_at_exit, wait_until

__all__ = ["find_redis_server", "start_redis"]

_INSTALL_HINT = (
    "install it with your package manager (Debian/Ubuntu: apt-get install redis-server; "
    "macOS: brew install redis) or set REDIS_SERVER_BIN"
)


def find_redis_server() -> Path:
    """Return the ``redis-server`` binary: ``$REDIS_SERVER_BIN``, PATH, or the usual dirs."""
    explicit = os.environ.get("REDIS_SERVER_BIN")
    if explicit:
        path = Path(explicit)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise FileNotFoundError(
            f"REDIS_SERVER_BIN={explicit} is not an executable file; {_INSTALL_HINT}"
        )
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    for candidate in (
        "/usr/bin/redis-server",
        "/usr/sbin/redis-server",
        "/usr/local/bin/redis-server",
    ):
        path = Path(candidate)
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise FileNotFoundError(f"redis-server was not found; {_INSTALL_HINT}")


def _ping(port: int) -> bool:
    """True if the Redis server on ``port`` answers PING with PONG."""
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")


def start_redis(data_dir: Path | None = None, *, timeout: float = 30) -> LocalServer:
    """Start ``redis-server`` on a free 127.0.0.1 port with persistence off.

    No config file is read; ``--dir`` is the data directory (temporary and deleted
    by ``stop()`` when ``data_dir`` is None). ``url`` is ``redis://127.0.0.1:<port>/0``.
    """
    binary = find_redis_server()
    remove = data_dir is None
    root = Path(tempfile.mkdtemp(prefix="atdata-redis-")) if data_dir is None else Path(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    log = root / "redis.log"
    port = free_port()
    cmd: list[str | os.PathLike[str]] = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--protected-mode",
        "yes",
        "--daemonize",
        "no",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(root),
        "--dbfilename",
        "dump.rdb",
        "--logfile",
        "",
        "--unixsocket",
        "",
    ]
    url = f"redis://127.0.0.1:{port}/0"
    server = LocalServer(
        name="redis",
        url=url,
        env={"REDIS_URL": url},
        data_dir=root,
        remove_data=remove,
        extra={"port": str(port)},
    )
    started = time.monotonic()
    server.process = spawn(cmd, log=log, env=child_env(), cwd=root)
    stop_at_exit(server)
    try:
        wait_until(
            lambda: _ping(port),
            timeout=timeout,
            what=f"redis-server on 127.0.0.1:{port}",
            log=log,
            process=server.process,
        )
    except BaseException:
        server.stop()
        raise
    server.extra["startup_seconds"] = f"{time.monotonic() - started:.3f}"
    return server
