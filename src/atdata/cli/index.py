"""``atdata index list``: the datasets in the local index, or an account's published ones."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from atdata.cli._common import JsonOpt, default_index, emit, human_size, out, table

__all__ = ["app", "entry_row"]

app: typer.Typer = typer.Typer(help="Dataset indexes: list what they hold.", no_args_is_help=True)


def entry_row(entry: Any) -> dict[str, Any]:
    """A local index entry as a JSON-able row."""
    sizes = [s.size for s in entry.shards]
    return {
        "name": entry.name,
        "ref": f"@local/{entry.name}",
        "cid": entry.cid,
        "schema_ref": entry.schema_ref,
        "shards": len(entry.data_urls),
        "bytes": sum(sizes) if sizes and None not in sizes else None,
        "created_at": entry.created_at or None,
        "metadata": entry.metadata,
    }


@app.command("list")
def list_entries(
    who: Annotated[
        str | None,
        typer.Argument(
            help="@handle or DID: list the datasets that account published (default: the index).",
            metavar="ACCOUNT",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """List datasets: those in the local index (ATDATA_INDEX), or an account's records."""
    if who is not None:
        from atdata.cli._atmosphere import account_datasets

        rows = account_datasets(who.removeprefix("@"))
        where = f"published by {who}"
    else:
        index = default_index()
        rows = [entry_row(e) for e in index.entries]
        where = f"in {index.provider.location}"
    if emit(rows, json_output):
        return
    if not rows:
        out.print(f"no datasets {where}")
        return
    grid = table("ref", "shards", "size", "schema")
    for row in rows:
        grid.add_row(
            row["ref"], str(row["shards"]), human_size(row.get("bytes")), str(row["schema_ref"])
        )
    out.print(grid)
