"""The root ``atdata`` command: global options, the command groups, and error handling."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

import atdata.cli.appview as appview
import atdata.cli.croissant as croissant
import atdata.cli.datasets as datasets
import atdata.cli.diagnose as diagnose
import atdata.cli.index as index
import atdata.cli.login as login
import atdata.cli.mirror as mirror
import atdata.cli.publish as publish
import atdata.cli.schema as schema
import atdata.cli.stack as stack
from atdata.cli._common import CliError, err, settings
from atdata.cli._errors import explain

__all__ = ["app", "run"]

app: typer.Typer = typer.Typer(
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
    ctx: typer.Context,
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
    settings.flags = _flags(ctx)
    if index_url:
        _check_index_path(index_url)
        os.environ["ATDATA_INDEX"] = index_url
    if bucket:
        os.environ["ATDATA_BUCKET"] = bucket


_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def _check_index_path(where: str) -> None:
    """A SQLite ``--index`` must be a file in an existing folder: a typo is not a new index."""
    if where.startswith(("redis://", "rediss://", "unix://", "postgresql://", "postgres://")):
        return
    path = Path(where.removeprefix("sqlite://")).expanduser()
    if path.is_dir() or where.endswith(("/", os.sep)):
        raise CliError(
            f"--index {where} names a directory, not an index file",
            hint=f"name the SQLite file, e.g. --index {path / 'index.db'}",
        )
    if not path.parent.is_dir():
        raise CliError(
            f"--index {where}: the directory {path.parent} does not exist",
            hint="check the path, or create the directory first",
        )
    if not path.exists() and path.suffix not in _SQLITE_SUFFIXES:
        raise CliError(
            f"--index {where} does not exist",
            hint=f"check the path; a new SQLite index is a file named like {path.name}.db",
        )


def _names(param: Any) -> list[str]:
    return [*param.opts, *getattr(param, "secondary_opts", ())]


def _flags(ctx: typer.Context) -> frozenset[str]:
    """The long options of the subcommand about to run (of a group: of all its commands)."""

    def options(command: Any) -> set[str]:
        found = {o for p in command.params for o in _names(p) if o.startswith("--")}
        for name in command.list_commands(ctx) if hasattr(command, "list_commands") else ():
            sub = command.get_command(ctx, name)
            if sub is not None:
                found |= options(sub)
        return found

    group = ctx.command
    root = {o for p in group.params for o in _names(p) if o.startswith("--")}
    sub = None
    if isinstance(group, TyperGroup) and ctx.invoked_subcommand:
        sub = group.get_command(ctx, ctx.invoked_subcommand)
    return frozenset(root | (options(sub) if sub is not None else set()))


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
app.command("mirror")(mirror.mirror)
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
        message, hint = explain(exc, settings.flags)
        print(f"error: {message}", file=sys.stderr)
        if hint:
            print(f"hint: {hint}", file=sys.stderr)
        return exc.code if isinstance(exc, CliError) else 1
    return 0
