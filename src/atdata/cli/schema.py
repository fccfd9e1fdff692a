"""``atdata schema list|show``: sample schemas in the index, or published on an account."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

import typer

from atdata.cli._common import CliError, JsonOpt, default_index, emit, out, schema_ref, table

__all__ = ["app", "field_rows"]

app: typer.Typer = typer.Typer(help="Sample schemas: list them, show one.", no_args_is_help=True)


def field_rows(record: Mapping[str, Any], decoded: type | None) -> list[dict[str, Any]]:
    """One row per field: name, type (decoded when possible), optional, default."""
    from atdata.sample import fields_of

    types: dict[str, str] = {}
    if decoded is not None:
        types = {spec.name: spec.type.describe() for spec in fields_of(decoded)}
    rows = []
    for f in record.get("fields") or []:
        if not isinstance(f, Mapping):
            continue
        name = str(f.get("name"))
        row: dict[str, Any] = {
            "name": name,
            "type": types.get(name) or json.dumps(f.get("fieldType"), sort_keys=True),
            "optional": bool(f.get("optional", False)),
        }
        if "default" in f:
            row["default"] = f["default"]
        rows.append(row)
    return rows


def _who(who: str | None) -> str | None:
    return who[1:] if who and who.startswith("@") else who


@app.command("list")
def list_schemas(
    who: Annotated[
        str | None,
        typer.Argument(
            help="@handle or DID: list the schemas that account published (default: the index).",
            metavar="ACCOUNT",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """List schemas: those in the local index, or an account's published ones."""
    if who is not None:
        from atdata.cli._atmosphere import account_schemas

        rows = account_schemas(_who(who) or "")
    else:
        rows = [
            {
                "ref": r["$ref"],
                "name": r.get("name"),
                "version": r.get("version"),
                "fields": len(r.get("fields") or []),
                "description": r.get("description"),
            }
            for r in default_index().list_schemas()
        ]
    if emit(rows, json_output):
        return
    if not rows:
        out.print("no schemas" + (f" published by {who}" if who else " in the index"))
        return
    grid = table("name", "version", "fields", "ref")
    for row in rows:
        grid.add_row(str(row["name"]), str(row["version"]), str(row["fields"]), row["ref"])
    out.print(grid)


@app.command("show")
def show(
    ref: Annotated[
        str,
        typer.Argument(
            metavar="REF",
            help="Name, Name@version, atdata://local/sampleSchema/Name@version or an at:// URI "
            "(no version: the latest).",
            show_default=False,
        ),
    ],
    json_output: JsonOpt = False,
) -> None:
    """Show one schema: its name, version, description and fields."""
    if ref.startswith("at://"):
        from atdata.cli._atmosphere import account_schema

        record, decoded, full = account_schema(ref)
    else:
        index = default_index()
        try:
            record = index.get_schema(schema_ref(ref) or ref)
        except KeyError as exc:
            raise CliError(str(exc.args[0]), hint="`atdata schema list` shows them") from None
        full = record["$ref"]
        try:
            decoded = index.decode_schema(full)
        except Exception:
            decoded = None
    if emit({"ref": full, "record": dict(record)}, json_output):
        return
    out.print(f"{record.get('name')} {record.get('version')}  {full}")
    for key in ("sampleType", "module", "description", "createdAt"):
        if record.get(key):
            out.print(f"  {key}: {record[key]}")
    grid = table("field", "type", "optional", "default")
    for row in field_rows(record, decoded):
        default = json.dumps(row["default"]) if "default" in row else ""
        grid.add_row(row["name"], row["type"], "yes" if row["optional"] else "", default)
    out.print(grid)
