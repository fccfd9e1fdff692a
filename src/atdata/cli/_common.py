"""Shared CLI plumbing: output (text or ``--json``), one-line errors with hints, progress, login."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.console import Console

__all__ = [
    "CliError",
    "JsonOpt",
    "ProgressSource",
    "atdata_home",
    "emit",
    "err",
    "load_client",
    "out",
    "progress",
    "schema_ref",
    "session_paths",
    "settings",
    "table",
]

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@dataclass
class Settings:
    """Options of the root command, seen by every subcommand."""

    json: bool = False
    debug: bool = False
    flags: frozenset[str] = frozenset()
    """The options of the command being run (error hints name only these)."""


settings = Settings()
# Piped output is not cut to 80 columns (COLUMNS still wins).
_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200
out = Console(highlight=False, markup=False, soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


class CliError(Exception):
    """An error the user can act on: printed as one line plus ``hint``, exit status ``code``."""

    def __init__(self, message: str, hint: str | None = None, code: int = 1) -> None:
        super().__init__(message)
        self.hint = hint
        self.code = code


def want_json(flag: bool) -> bool:
    """True when this command prints JSON (its own ``--json`` or the root's)."""
    return flag or settings.json


def emit(data: Any, as_json: bool) -> bool:
    """Print ``data`` as JSON and return True when ``as_json``; else return False."""
    if not want_json(as_json):
        return False
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()
    return True


def atdata_home() -> Path:
    """``$ATDATA_HOME`` (default ``~/.atdata``), created owner-only if missing."""
    from atdata.local import atdata_home as home

    path = home()
    if not path.exists():
        path.mkdir(parents=True, mode=0o700)
    return path


def table(*columns: str) -> Any:
    """A borderless table whose long cells wrap instead of being cut off."""
    from rich.table import Table

    grid = Table(box=None, pad_edge=False)
    for column in columns:
        grid.add_column(column, overflow="fold")
    return grid


def human_size(n: int | None) -> str:
    """``1.5 MB`` style sizes (decimal units); ``?`` when unknown."""
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


# --------------------------------------------------------------------------- progress


class _Bar:
    def __init__(self, progress: Any, task: Any) -> None:
        self._progress = progress
        self._task = task

    def advance(self, n: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def total(self, total: float | None) -> None:
        if self._progress is not None:
            self._progress.update(self._task, total=total)


@contextlib.contextmanager
def progress(description: str, total: float | None, *, unit: str = "items") -> Iterator[_Bar]:
    """A progress bar on stderr (bytes when ``unit="bytes"``); silent when stderr is no terminal."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    if not err.is_terminal:
        yield _Bar(None, None)
        return
    counts = (
        [DownloadColumn(), TransferSpeedColumn()] if unit == "bytes" else [MofNCompleteColumn()]
    )
    columns = [TextColumn("{task.description}"), BarColumn(), *counts, TimeRemainingColumn()]
    with Progress(*columns, console=err, transient=True) as bar:
        yield _Bar(bar, bar.add_task(description, total=total))


class _CountingStream(io.RawIOBase):
    """A read-only stream that reports every byte read to a progress bar."""

    def __init__(self, stream: IO[bytes], bar: _Bar) -> None:
        self._stream = stream
        self._bar = bar

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._stream.read(len(view))
        n = len(data or b"")
        view[:n] = data or b""
        self._bar.advance(n)
        return n

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
        super().close()


class ProgressSource:
    """A :class:`~atdata.DataSource` whose shard reads advance a byte progress bar."""

    def __init__(self, inner: Any, bar: _Bar) -> None:
        self.inner = inner
        self._bar = bar

    def list_shards(self) -> list[str]:
        """The inner source's shards."""
        return list(self.inner.list_shards())

    def open_shard(self, shard_id: str) -> IO[bytes]:
        """Open a shard of the inner source, counting what is read."""
        stream = self.inner.open_shard(shard_id)
        return io.BufferedReader(_CountingStream(stream, self._bar), buffer_size=1 << 20)


# --------------------------------------------------------------------------- login


def session_paths() -> tuple[Path, Path]:
    """``$ATDATA_HOME/session`` (the session string) and ``login.json`` (where it is valid)."""
    home = atdata_home()
    return home / "session", home / "login.json"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only (mode 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def load_login() -> dict[str, Any]:
    """What ``atdata login`` recorded (``{}`` when nobody is logged in)."""
    _, meta = session_paths()
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load_client(required: bool = True) -> Any:
    """An ``AtmosphereClient``: the stored session, else ``ATDATA_HANDLE`` and
    ``ATDATA_APP_PASSWORD`` at ``ATDATA_PDS_URL``; ``None`` (or an error) without either."""
    from atdata.atmosphere import AtmosphereClient

    session, _ = session_paths()
    login = load_login()
    plc = os.environ.get("ATDATA_PLC_URL") or login.get("plc_url")
    if session.exists():
        return AtmosphereClient.from_session_file(session, plc_url=plc)
    handle = os.environ.get("ATDATA_HANDLE")
    password = os.environ.get("ATDATA_APP_PASSWORD")
    if handle and password:
        client = AtmosphereClient(os.environ.get("ATDATA_PDS_URL"), plc_url=plc)
        client.login(handle, password)
        return client
    if required:
        raise CliError(
            "not logged in to an ATProto account",
            hint="run `atdata login HANDLE` (or set ATDATA_HANDLE and ATDATA_APP_PASSWORD)",
        )
    return None


def schema_ref(text: str | None) -> str | None:
    """A ``--type`` value as a schema reference: ``Name`` and ``Name@1.0.0`` are local ones."""
    if text is None or text.startswith(("at://", "atdata://", "local://")):
        return text
    return "atdata://local/sampleSchema/" + text


def default_index() -> Any:
    """The index ``@local/name`` resolves in (see :func:`atdata.load.get_default_index`)."""
    from atdata.load import get_default_index

    return get_default_index()
