"""``atdata mirror``: copy someone's published dataset and publish a mirror record for it."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from atdata.cli._common import CliError, JsonOpt, emit, load_client, out, progress

__all__ = ["mirror"]


def mirror(
    ref: Annotated[
        str,
        typer.Argument(
            help="The dataset: its AT-URI or @handle/name.", metavar="REF", show_default=False
        ),
    ],
    blobs: Annotated[
        bool, typer.Option("--blobs", help="Copy the shards as blobs to your PDS (the default).")
    ] = False,
    copy_to: Annotated[
        str | None,
        typer.Option(
            "--copy-to",
            metavar="BUCKET",
            help="Copy the shards to this S3 bucket (AWS_* settings) instead of blobs.",
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Mirror a published dataset: every shard copied and checked against the original's
    SHA-256, then a mirror record on the logged-in account (run again: finds it)."""
    from atdata.atmosphere.mirrors import mirror_dataset

    if blobs and copy_to:
        raise CliError("--blobs and --copy-to both say where the copy goes", hint="choose one")
    store: Any = None
    if copy_to:
        from atdata.local import S3DataStore

        creds = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
        store = S3DataStore(creds, bucket=copy_to)
    client = load_client()
    try:
        with progress("mirroring shards", None) as bar:
            record = mirror_dataset(
                ref, client, data_store=store, on_shard=lambda _shard: bar.advance()
            )
    finally:
        client.close()
    subject = record["subject"]
    storage = record["storage"]
    where = (
        f"{len(storage['blobs'])} blobs"
        if "blobs" in storage
        else f"{len(storage['urls'])} objects in {copy_to}"
    )
    result = {
        "uri": record.uri,
        "cid": record.cid,
        "original": subject["uri"],
        "originalCid": subject["cid"],
        "shards": len(record["sha256"]),
        "storage": where,
    }
    if not emit(result, json_output):
        out.print(f"mirror {record.uri}")
        out.print(f"  of {subject['uri']} (version {subject['cid']})")
        out.print(f"  {result['shards']} shards, {where}, every one checked against the original")
