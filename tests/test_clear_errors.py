"""Mistakes get clear errors: the PDS a client tries, malformed URIs, a mistyped
``--index``, a corrupt session file, and CLI hints that name only the command's flags."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

import atdata
from atdata.atmosphere import AtmosphereClient, AtmosphereError, AuthenticationError
from atdata.cli._app import _names, app
from atdata.cli._errors import explain
from atdata.errors import PrivateURLError
from atdata.local.providers.base import EntryExistsError, IndexBackendError
from helpers import private_atdata_home  # noqa: F401 - autouse fixture

ATDATA = Path(sys.executable).parent / "atdata"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith(("ATDATA_", "AWS_"))}
    return subprocess.run(
        [str(ATDATA), *args],
        capture_output=True,
        text=True,
        env={**base, "ATDATA_HOME": str(home), **(env or {})},
        timeout=300,
        check=False,
    )


# --------------------------------------------------------------------------- the client


def test_a_client_without_arguments_uses_atdata_pds_url(
    pds_account: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATDATA_PDS_URL", pds_account["pds_url"])
    monkeypatch.setenv("ATDATA_PLC_URL", pds_account["plc_url"])
    client = AtmosphereClient()
    assert client.base_url == pds_account["pds_url"].rstrip("/")
    client.login(pds_account["handle"], pds_account["password"])  # at the local PDS, not bsky
    assert client.did == pds_account["did"]


def test_a_network_error_names_the_url_it_tried() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    client = AtmosphereClient(url, max_retries=0)
    with pytest.raises(AtmosphereError) as caught:
        client.login("someone.test", "not-a-password")
    assert url in str(caught.value)
    assert "not-a-password" not in str(caught.value)


def test_a_corrupt_session_file_says_so_and_how_to_fix_it(tmp_path: Path) -> None:
    for text in ("garbage\n", "a:::b:::c:::d:::http://127.0.0.1:1\n", "\x00\xff"):
        path = tmp_path / "session"
        path.write_text(text, encoding="latin-1")
        with pytest.raises(AuthenticationError) as caught:
            AtmosphereClient.from_session_file(path)
        message = str(caught.value)
        assert str(path) in message and "corrupt" in message and "log in again" in message


def test_the_cli_reports_a_corrupt_session_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "session").write_text("a:::b:::c:::d:::http://127.0.0.1:1\n")
    proc = run_cli(home, "whoami")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert "session file" in lines[0] and "corrupt" in lines[0], proc.stderr
    assert lines[1].startswith("hint: run `atdata login")


# --------------------------------------------------------------------------- URIs


@pytest.mark.parametrize(
    "uri", ["at:/x", "at:x", "AT:/did:plc:abc/x", "at://", "s3:/bucket/key", "http:/x", "ftp://h/x"]
)
def test_malformed_uris_fail_at_load_time(uri: str) -> None:
    with pytest.raises(ValueError) as caught:
        atdata.load_dataset(uri)
    assert repr(uri) in str(caught.value)


# --------------------------------------------------------------------------- --index


@pytest.mark.parametrize("where", ["missing-dir/index.db", "missing-dir/", "missing-dir", ""])
def test_index_naming_a_missing_or_a_directory_is_an_error(tmp_path: Path, where: str) -> None:
    home = tmp_path / "home"
    target = f"{tmp_path}/{where}" if where else str(tmp_path)
    proc = run_cli(home, "--index", target, "index", "list")
    assert proc.returncode == 1, proc.stdout
    assert proc.stderr.startswith(f"error: --index {target}")
    assert not (tmp_path / "missing-dir").exists()  # no new empty index was made
    env = run_cli(home, "index", "list", env={"ATDATA_INDEX": target})
    assert env.returncode == 1 and not (tmp_path / "missing-dir").exists()


def test_index_naming_a_new_file_in_an_existing_directory_works(tmp_path: Path) -> None:
    proc = run_cli(tmp_path / "home", "--index", str(tmp_path / "team.db"), "index", "list")
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------- CLI hints


def _commands() -> dict[str, frozenset[str]]:
    """Every runnable command (``index list`` and the like) and its long options (root's too)."""
    root = typer.main.get_command(app)
    ctx = typer.Context(root)
    root_flags = {o for p in root.params for o in _names(p) if o.startswith("--")}
    found: dict[str, frozenset[str]] = {}

    def walk(command: Any, path: str) -> None:
        if hasattr(command, "list_commands"):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                walk(sub, f"{path} {name}".strip())
            return
        flags = {o for p in command.params for o in _names(p) if o.startswith("--")}
        found[path] = frozenset(flags | root_flags)

    walk(root, "")
    return found


_FAILURES = [
    PrivateURLError("/data/x.tar is a local path"),
    EntryExistsError("features", None, "SQLite index x.db"),
    KeyError("no dataset named 'x'"),
    FileNotFoundError("no shards found"),
    AuthenticationError("expired"),
    IndexBackendError("Redis index redis://127.0.0.1:1/0: ConnectionError"),
]


@pytest.mark.parametrize("command", sorted(_commands()))
def test_cli_hints_name_only_flags_the_command_has(command: str) -> None:
    flags = _commands()[command]
    for exc in _FAILURES:
        _, hint = explain(exc, flags)
        assert hint
        named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", hint))
        assert named <= flags, f"`atdata {command}`: hint {hint!r} names {named - flags}"
        assert not re.search(r"\b[a-z_]+=", hint), f"a Python argument in {hint!r}"


def test_the_publish_hint_for_a_private_url_leaves_out_copy_to() -> None:
    publish = _commands()["publish"]
    promote = _commands()["promote"]
    assert "--copy-to" not in publish and "--copy-to" in promote
    assert "--copy-to" not in (explain(PrivateURLError("x"), publish)[1] or "")
    assert "--copy-to" in (explain(PrivateURLError("x"), promote)[1] or "")


def test_every_public_error_class_derives_from_atdata_error() -> None:
    """One error tree: ``except atdata.AtdataError`` catches every deliberate error."""
    import importlib
    import pkgutil

    import atdata
    from atdata.errors import AtdataError

    outside = []
    for info in pkgutil.walk_packages(atdata.__path__, "atdata."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue  # private modules: their errors never reach users as such
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                isinstance(obj, type)
                and issubclass(obj, Exception)
                and not issubclass(obj, Warning)
                and obj.__module__ == module.__name__
                and not name.startswith("_")
                and not issubclass(obj, AtdataError)
            ):
                outside.append(f"{module.__name__}.{name}")
    assert outside == []
