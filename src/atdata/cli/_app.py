"""The root ``atdata`` command: global options, the command groups, and error handling."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated

import typer

from atdata.cli import appview, croissant, datasets, diagnose, index, login, publish, schema, stack
from atdata.cli._common import CliError, err, settings
from atdata.cli._errors import explain

__all__ = ["app", "run"]

app = typer.Typer(
    name="atdata",
    help="Typed, sharded datasets: inspect them, publish them to the AT Protocol, "
    "and run a local stack to try it all.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from atdata import __version__

        typer.echo(f"atdata {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    json_output: Annotated[
        bool, typer.Option("--json", help="Print machine-readable JSON (every command).")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an error.", envvar="ATDATA_DEBUG")
    ] = False,
    index_url: Annotated[
        str | None,
        typer.Option(
            "--index",
            envvar="ATDATA_INDEX",
            help="Index for @local/name: redis:// URL, postgresql:// DSN or SQLite file "
            "(default $ATDATA_HOME/index.db).",
            show_envvar=True,
        ),
    ] = None,
    bucket: Annotated[
        str | None,
        typer.Option(
            "--bucket",
            envvar="ATDATA_BUCKET",
            help="S3 bucket the index stores shards in (AWS_* settings from the environment).",
            show_envvar=True,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Options that apply to every command."""
    settings.json = json_output
    settings.debug = debug
    if index_url:
        os.environ["ATDATA_INDEX"] = index_url
    if bucket:
        os.environ["ATDATA_BUCKET"] = bucket


app.command("inspect")(datasets.inspect_ref)
app.command("preview")(datasets.preview)
app.command("croissant")(croissant.croissant)
app.add_typer(schema.app, name="schema")
app.add_typer(index.app, name="index")
app.command("login")(login.login)
app.command("logout")(login.logout)
app.command("whoami")(login.whoami)
app.command("publish")(publish.publish)
app.command("promote")(publish.promote)
app.command("diagnose")(diagnose.diagnose)
app.add_typer(stack.app, name="stack")
app.add_typer(appview.app, name="appview")
app.command("search")(appview.search)


def run(argv: list[str]) -> int:
    """Run the command line; return the exit status (errors printed as one line and a hint)."""
    cut = argv.index("--") if "--" in argv else len(argv)
    debug = "--debug" in argv[:cut] or os.environ.get("ATDATA_DEBUG", "") not in ("", "0")
    if "--debug" in argv[:cut]:  # accepted anywhere, not only before the command
        argv = ["--debug", *[a for a in argv[:cut] if a != "--debug"], *argv[cut:]]
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="atdata", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:
        err.print("aborted")
        return 130
    except Exception as exc:
        if debug or settings.debug:
            traceback.print_exc()
        message, hint = explain(exc)
        print(f"error: {message}", file=sys.stderr)
        if hint:
            print(f"hint: {hint}", file=sys.stderr)
        return exc.code if isinstance(exc, CliError) else 1
    return 0
