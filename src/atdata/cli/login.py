"""``atdata login``, ``logout`` and ``whoami``: an ATProto session kept in ``$ATDATA_HOME``.

The app password is read from ``ATDATA_APP_PASSWORD``, from standard input when
that is not a terminal, or from a prompt that does not echo it. The session
(tokens, never the password) is stored in ``$ATDATA_HOME/session`` with mode 0600.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from typing import Annotated

import typer

from atdata.cli._common import (
    CliError,
    JsonOpt,
    emit,
    load_client,
    load_login,
    out,
    session_paths,
    write_private,
)

__all__ = ["login", "logout", "read_password", "whoami"]


def read_password() -> str:
    """The app password: ``ATDATA_APP_PASSWORD``, one line of piped stdin, or a silent prompt."""
    password = os.environ.get("ATDATA_APP_PASSWORD")
    if not password:
        if sys.stdin is not None and not sys.stdin.isatty():
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = getpass.getpass("App password: ")
    if not password:
        raise CliError(
            "no app password given",
            hint="pipe it on stdin, type it at the prompt, or set ATDATA_APP_PASSWORD",
        )
    return password


def login(
    handle: Annotated[
        str | None,
        typer.Argument(
            help="Your handle (alice.bsky.social) or DID; default $ATDATA_HANDLE.",
            metavar="HANDLE",
            show_default=False,
        ),
    ] = None,
    pds: Annotated[
        str | None,
        typer.Option(
            "--pds",
            envvar="ATDATA_PDS_URL",
            show_envvar=True,
            help="PDS or entryway to log in at (default https://bsky.social).",
        ),
    ] = None,
    plc: Annotated[
        str | None,
        typer.Option(
            "--plc",
            envvar="ATDATA_PLC_URL",
            show_envvar=True,
            help="PLC directory for did:plc (default https://plc.directory).",
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Log in with an app password; the session is stored owner-only in $ATDATA_HOME/session."""
    from atdata.atmosphere import AtmosphereClient

    handle = handle or os.environ.get("ATDATA_HANDLE")
    if not handle:
        if not sys.stdin.isatty():
            raise CliError("no handle given", hint="atdata login HANDLE (or set ATDATA_HANDLE)")
        handle = str(typer.prompt("Handle"))
    password = read_password()
    session, meta = session_paths()
    pending = session.with_name(".session.pending")
    pending.unlink(missing_ok=True)
    client = AtmosphereClient(pds, plc_url=plc, session_path=pending)
    try:
        client.login(handle, password)
        if not pending.exists():  # the SDK reports the new session; write it if it did not
            write_private(pending, client.export_session())
        os.replace(pending, session)
        os.chmod(session, 0o600)
    finally:
        pending.unlink(missing_ok=True)
        client.close()
    info = {
        "handle": client.handle,
        "did": client.did,
        "pds_url": client.pds_url,
        "plc_url": client.plc_url,
        "session": str(session),
    }
    write_private(meta, json.dumps(info, indent=2))
    if emit(info, json_output):
        return
    out.print(f"logged in as {info['handle']} ({info['did']}) on {info['pds_url']}")
    out.print(f"session stored in {session} (owner-only)")


def logout(json_output: JsonOpt = False) -> None:
    """Forget the stored session."""
    removed = []
    for path in session_paths():
        if path.exists():
            path.unlink()
            removed.append(str(path))
    if emit({"removed": removed}, json_output):
        return
    out.print("logged out" if removed else "not logged in")


def whoami(json_output: JsonOpt = False) -> None:
    """Show the account of the stored session (resumed, so the tokens are checked)."""
    client = load_client(required=True)
    try:
        info = {
            "handle": client.handle,
            "did": client.did,
            "pds_url": client.pds_url,
            "plc_url": client.plc_url or load_login().get("plc_url"),
        }
    finally:
        client.close()
    if emit(info, json_output):
        return
    out.print(f"{info['handle']} ({info['did']}) on {info['pds_url']}")
