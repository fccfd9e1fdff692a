"""``atdata publish`` and ``atdata promote``: put a dataset on the logged-in ATProto account."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from atdata.cli._common import CliError, JsonOpt, emit, load_client, out

__all__ = ["promote", "publish"]

TagOpt = Annotated[list[str] | None, typer.Option("--tag", help="A discovery tag (repeatable).")]
DescriptionOpt = Annotated[str | None, typer.Option("--description", help="What the data is.")]
LicenseOpt = Annotated[str | None, typer.Option("--license", help="SPDX id, e.g. MIT.")]


def publish(
    ref: Annotated[str, typer.Argument(help="Any dataset load_dataset opens.", show_default=False)],
    name: Annotated[str, typer.Option("--name", help="Name of the published dataset.")],
    json_output: JsonOpt = False,
) -> None:
    """Publish a dataset (schema and dataset records) to the logged-in account."""
    raise CliError("not available yet", hint=None)


def promote(
    name: Annotated[
        str, typer.Argument(help="Dataset name in the local index.", show_default=False)
    ],
    json_output: JsonOpt = False,
) -> None:
    """Promote a dataset of the local index to the logged-in account."""
    raise CliError("not available yet", hint=None)


_unused: Any = (emit, load_client, out, TagOpt, DescriptionOpt, LicenseOpt)
