"""Process handle and helpers shared by the local server launchers."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(n: int) -> list[int]:
    """Return ``n`` distinct TCP ports on 127.0.0.1 that are free right now."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def log_tail(log: Path | None, lines: int = 20) -> str:
    """Return the last ``lines`` lines of ``log`` as a message suffix ("" if there is none)."""
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return "\n--- last lines of " + str(log) + " ---\n" + "\n".join(text)


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    log: Path | None = None,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Poll ``check`` until it returns True; raise ``TimeoutError`` naming ``what`` otherwise.

    If ``process`` is given and exits while waiting, raise ``RuntimeError`` at once.
    """
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # the server is not up yet
            last = exc
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"{what} exited with code {process.returncode} before becoming ready"
                + log_tail(log)
            )
        time.sleep(0.05)
    raise TimeoutError(
        f"{what} did not become ready within {timeout:.0f} s ({last!r})" + log_tail(log)
    )


def child_env(
    drop_prefixes: Iterable[str] = (), extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Return a copy of ``os.environ`` without variables starting with ``drop_prefixes``."""
    prefixes = tuple(drop_prefixes)
    env = {k: v for k, v in os.environ.items() if not (prefixes and k.startswith(prefixes))}
    env.update(extra or {})
    return env


def spawn(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: int | None = None,
    group: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own session, stdin closed, stdout+stderr appended to ``log``.

    ``user``/``group`` (numeric ids) drop privileges in the child; only root can use them.
    """
    with open(log, "ab") as out:
        return subprocess.Popen(
            [os.fspath(c) for c in cmd],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            user=user,
            group=group,
            extra_groups=[] if user is not None else None,
        )


@dataclass
class LocalServer:
    """A server process started on loopback, with the settings a client needs.

    ``env`` holds the variables to export (for example ``AWS_ENDPOINT_URL``);
    ``url`` is the main endpoint. Use it as a context manager or call :meth:`stop`.
    ``stop_signal`` is sent to the process group first; ``cleanup`` callables run
    after the process has exited (before the data directory is removed).
    """

    name: str
    url: str
    env: dict[str, str]
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None
    remove_data: bool = True
    extra: dict[str, str] = field(default_factory=dict)
    stop_signal: int = signal.SIGTERM
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process (``stop_signal``, then SIGKILL) and remove its temporary data."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, self.stop_signal)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
        if proc is not None:
            # children left in the group (none expected) must not outlive the server
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        self.process = None
        for fn in self.cleanup:
            with contextlib.suppress(OSError):
                fn()
        self.cleanup = []
        if self.remove_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        _LIVE.discard(self)

    def detach(self) -> None:
        """Let the server outlive this Python process (it is no longer stopped at exit)."""
        _LIVE.discard(self)

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _LiveSet:
    """The servers started by this interpreter and not stopped yet (stopped at exit)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[int, LocalServer] = {}
        self._hooked = False

    def add(self, server: LocalServer) -> None:
        with self._lock:
            self._items[id(server)] = server
            if not self._hooked:
                atexit.register(self.stop_all)
                self._hooked = True

    def discard(self, server: LocalServer) -> None:
        with self._lock:
            self._items.pop(id(server), None)

    def stop_all(self) -> None:
        with self._lock:
            items = list(self._items.values())
        for server in items:
            with contextlib.suppress(Exception):  # best effort at interpreter exit
                server.stop()


_LIVE = _LiveSet()


def stop_at_exit(server: LocalServer) -> LocalServer:
    """Make sure ``server`` is stopped when the interpreter exits normally; return it."""
    _LIVE.add(server)
    return server
