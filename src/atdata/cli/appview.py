"""``atdata appview serve`` and ``atdata search``: run an AppView, and search one."""

from __future__ import annotations

import logging
import os
import threading
from typing import Annotated, Any

import typer

from atdata.cli._common import CliError, JsonOpt, emit, human_size, out, table

__all__ = ["app", "search"]

app = typer.Typer(
    help="The AppView: index every publisher's datasets and search them.", no_args_is_help=True
)


def _watch_parent() -> None:
    """Exit when the process named by ``ATDATA_APPVIEW_PARENT_PID`` is gone (test servers)."""
    pid = int(os.environ.get("ATDATA_APPVIEW_PARENT_PID") or 0)
    if pid <= 0:
        return

    def watch() -> None:
        import time

        while True:
            time.sleep(2)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:
                pass

    threading.Thread(target=watch, daemon=True).start()


@app.command("serve")
def serve(
    host: Annotated[
        list[str],
        typer.Option(
            "--host", help="Relay or PDS to follow (repeatable), e.g. https://bsky.network."
        ),
    ],
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="sqlite:////absolute/path.db or postgresql://... "
            "(default: $ATDATA_HOME/appview.db).",
        ),
    ] = None,
    listen: Annotated[
        str, typer.Option("--listen", help="HOST:PORT to serve on.")
    ] = "127.0.0.1:2590",
    plc_url: Annotated[
        str | None,
        typer.Option("--plc", envvar="ATDATA_PLC_URL", help="PLC directory for did:plc."),
    ] = None,
    service_did: Annotated[
        str | None,
        typer.Option("--did", help="did:web of this service (for /.well-known/did.json)."),
    ] = None,
    public_url: Annotated[
        str | None, typer.Option("--public-url", help="URL clients reach this service at.")
    ] = None,
) -> None:
    """Follow HOSTs, index their ac.foundation.dataset.* records, and serve XRPC queries."""
    from atdata.appview import serve as run

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    _watch_parent()
    try:
        run(
            host, db, listen=listen, plc_url=plc_url, service_did=service_did, public_url=public_url
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _row(entry: Any) -> dict[str, Any]:
    return {
        "uri": entry.uri,
        "cid": entry.cid,
        "did": entry.did,
        "handle": entry.handle,
        "name": entry.name,
        "description": entry.description,
        "license": entry.license,
        "tags": entry.tags,
        "size": entry.size,
        "schema": entry.schema_ref,
        "load": f'atdata.load_dataset("{entry.load_ref}")',
    }


def search(
    query: Annotated[str, typer.Argument(help='Words and "quoted phrases"; all must match.')] = "",
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Required tag (repeatable).")
    ] = None,
    schema: Annotated[
        str | None, typer.Option("--schema", help="Schema AT-URI the datasets use.")
    ] = None,
    repo: Annotated[
        str | None, typer.Option("--repo", help="Only this publisher (handle or DID).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="Results to show (1-100).")] = 25,
    appview: Annotated[
        str | None,
        typer.Option(
            "--appview", envvar="ATDATA_APPVIEW_URL", help="AppView URL.", show_envvar=True
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Search the datasets every publisher has published, through an AppView."""
    from atdata.atmosphere.appview import AppViewClient, AppViewError

    if not appview:
        raise CliError("no AppView configured", hint="set ATDATA_APPVIEW_URL or pass --appview URL")
    with AppViewClient(appview) as view:
        try:
            hits = view.search(query or None, tags=tag or (), schema=schema, repo=repo, limit=limit)
        except AppViewError as exc:
            raise CliError(str(exc)) from None
    rows = [_row(e) for e in hits]
    if emit({"appview": appview, "results": rows, "cursor": hits.cursor}, json_output):
        return
    if not rows:
        out.print("no datasets found")
        return
    grid = table("publisher", "name", "size", "license", "load with")
    for e, r in zip(hits, rows):
        size = e.size
        shown = human_size(size.get("bytes")) if size.get("bytes") is not None else "?"
        if size.get("samples") is not None:
            shown += f", {size['samples']:,} samples"
        grid.add_row(e.handle or e.did, e.name, shown, e.license or "-", r["load"])
    out.print(grid)
