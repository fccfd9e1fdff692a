"""What the CLI reads from the atmosphere: an account's schemas and datasets, one schema."""

from __future__ import annotations

import os
from typing import Any

from atdata.cli._common import load_client, load_login

__all__ = ["account_datasets", "account_schema", "account_schemas", "reader"]


def reader() -> Any:
    """The logged-in client, else an anonymous one at ``ATDATA_PDS_URL`` (reads need no login)."""
    from atdata.atmosphere import AtmosphereClient

    client = load_client(required=False)
    if client is not None:
        return client
    plc = os.environ.get("ATDATA_PLC_URL") or load_login().get("plc_url")
    return AtmosphereClient(os.environ.get("ATDATA_PDS_URL"), plc_url=plc)


def account_schemas(who: str) -> list[dict[str, Any]]:
    """The schema records ``who`` (a handle or DID) published, newest first."""
    from atdata.atmosphere.schema import SchemaLoader

    client = reader()
    try:
        return [
            {
                "ref": r.uri,
                "name": r.get("name"),
                "version": r.get("version"),
                "fields": len(r.get("fields") or []),
                "description": r.get("description"),
                "module": r.get("module"),
            }
            for r in SchemaLoader(client).iter_all(repo=who)
        ]
    finally:
        client.close()


def account_schema(uri: str) -> tuple[dict[str, Any], type | None, str]:
    """``(record, decoded type or None, uri)`` of a published schema."""
    from atdata.atmosphere.schema import SchemaLoader, record_to_type

    client = reader()
    try:
        record = SchemaLoader(client).get(uri)
    finally:
        client.close()
    try:
        decoded = record_to_type(record, uri=record.uri)
    except Exception:
        decoded = None
    return dict(record), decoded, record.uri


def account_datasets(who: str) -> list[dict[str, Any]]:
    """The dataset records ``who`` (a handle or DID) published, newest first."""
    from atdata.atmosphere.datasets import DatasetLoader, storage_type

    client = reader()
    try:
        rows = []
        for r in DatasetLoader(client).iter_all(repo=who):
            size = r.get("size") or {}
            rows.append(
                {
                    "name": r.get("name"),
                    "ref": f"@{who}/{r.get('name')}",
                    "uri": r.uri,
                    "storage": storage_type(r, r.uri),
                    "shards": size.get("shards"),
                    "samples": size.get("samples"),
                    "bytes": size.get("bytes"),
                    "schema_ref": r.get("schemaRef"),
                    "tags": r.get("tags") or [],
                    "description": r.get("description"),
                }
            )
        return rows
    finally:
        client.close()
