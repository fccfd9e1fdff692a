"""Process handle and helpers shared by the local server launchers."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, log: Path | None = None) -> None:
    """Poll ``check`` until it returns True; raise ``TimeoutError`` naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # the server is not up yet
            last = exc
        time.sleep(0.1)
    tail = ""
    if log is not None and log.exists():
        tail = "\n--- last lines of " + str(log) + " ---\n" + "\n".join(
            log.read_text(errors="replace").splitlines()[-20:]
        )
    raise TimeoutError(f"{what} did not become ready within {timeout:.0f} s ({last!r}){tail}")


@dataclass
class LocalServer:
    """A server process started on loopback, with the settings a client needs.

    ``env`` holds the variables to export (for example ``AWS_ENDPOINT_URL``);
    ``url`` is the main endpoint. Use it as a context manager or call :meth:`stop`.
    """

    name: str
    url: str
    env: dict[str, str]
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None
    remove_data: bool = True
    extra: dict[str, str] = field(default_factory=dict)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process (SIGTERM, then SIGKILL) and remove its temporary data."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
        self.process = None
        if self.remove_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
