"""``atdata publish`` and ``atdata promote``: put a dataset on the logged-in ATProto account."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from atdata.cli._common import (
    CliError,
    JsonOpt,
    default_index,
    emit,
    err,
    load_client,
    out,
    progress,
    schema_ref,
)

__all__ = ["promote", "publish"]

TagOpt = Annotated[
    list[str] | None, typer.Option("--tag", help="A discovery tag (repeat for more).")
]
DescriptionOpt = Annotated[str | None, typer.Option("--description", help="What the data is.")]
LicenseOpt = Annotated[str | None, typer.Option("--license", help="SPDX id (MIT) or a URL.")]
BlobsOpt = Annotated[
    bool,
    typer.Option(
        "--blobs", help="Upload the shards as blobs to your PDS (default: publish their URLs)."
    ),
]
PublicUrlsOpt = Annotated[
    bool,
    typer.Option(
        "--public-urls-only",
        help="Refuse URLs others likely cannot read (local paths, private hosts) instead of "
        "publishing them with a warning.",
    ),
]


@contextlib.contextmanager
def _count_uploads(client: Any, bar: Any) -> Iterator[list[dict[str, Any]]]:
    """Advance ``bar`` by each blob's size as its upload finishes; yield the refs uploaded."""
    original = client.upload_blob
    uploaded: list[dict[str, Any]] = []

    def counted(data: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        ref = original(data, *args, **kwargs)
        uploaded.append(ref)
        bar.advance(int(ref.get("size") or 0))
        return ref  # type: ignore[no-any-return]

    client.upload_blob = counted
    try:
        yield uploaded
    finally:
        del client.upload_blob  # back to the class's method


@contextlib.contextmanager
def _no_count(client: Any, bar: Any) -> Iterator[list[dict[str, Any]]]:
    yield []


def _interrupted(
    client: Any,
    exc: BaseException,
    target: str,
    cid: str | None,
    schemas_before: set[str],
    uploaded: list[dict[str, Any]],
    copy_to: str | None,
) -> list[str]:
    """What an interrupted promotion did and did not publish, checked in the account."""
    from atdata.atmosphere.records import SCHEMA_COLLECTION, iter_records
    from atdata.promote import already_promoted

    lines = ["interrupted:"]
    try:
        uri = already_promoted(client, target, cid) if cid else None
        schemas = [r.uri for r in iter_records(client, SCHEMA_COLLECTION)]
    except Exception as failed:  # the account cannot be read now: say so, and what is known
        lines.append(f"  could not check the account ({failed}); run the same command again")
        return lines
    if uri is not None:
        lines.append(f"  the dataset record was published: {uri}")
        return lines
    lines.append(f"  the dataset record was NOT published (nothing points at {target!r})")
    new = [u for u in schemas if str(u) not in schemas_before]
    for schema in new:
        lines.append(f"  the schema record was published: {schema} (a rerun reuses it)")
    if uploaded:
        lines.append(
            f"  {len(uploaded)} blob(s) were uploaded but no record references them; "
            "the PDS deletes them"
        )
    if copy_to:
        lines.append(f"  the copies made in bucket {copy_to} were removed")
    lines += [f"  {note}" for note in getattr(exc, "__notes__", [])]
    lines.append("run the same command again to publish it")
    return lines


@contextlib.contextmanager
def _url_warnings() -> Iterator[None]:
    """Show each ``PrivateURLWarning`` as a ``warning:`` line with what to do about it."""
    from atdata.errors import PrivateURLWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PrivateURLWarning)
        try:
            yield
        finally:
            for w in caught:
                if issubclass(w.category, PrivateURLWarning):
                    err.print(f"warning: {w.message}")
                    err.print(
                        "  hint: --blobs (or --copy-to BUCKET for promote) copies the shards "
                        "where others can read them; --public-urls-only refuses instead"
                    )
                else:
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def _total_bytes(ds: Any) -> int | None:
    from atdata.cli.datasets import shard_size

    sizes = [shard_size(ds, s) for s in ds.list_shards()]
    return None if None in sizes else sum(s for s in sizes if s is not None)


def _result(client: Any, entry: Any) -> dict[str, Any]:
    return {
        "uri": entry.uri,
        "name": entry.name,
        "ref": f"@{client.handle}/{entry.name}",
        "schema_ref": entry.schema_ref,
        "storage": entry.storage_type,
        "shards": len(entry.data_urls),
        "data_urls": entry.data_urls,
    }


def _print_result(result: dict[str, Any]) -> None:
    out.print(f"published {result['ref']}")
    out.print(f"  uri     {result['uri']}")
    out.print(f"  schema  {result['schema_ref']}")
    out.print(f"  shards  {result['shards']} ({result['storage']})")
    out.print(f"read it with: atdata inspect {result['ref']}")


def publish(
    ref: Annotated[
        str,
        typer.Argument(
            help="Any dataset load_dataset opens (a path, pattern, URL or @local/name).",
            metavar="REF",
            show_default=False,
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="Name of the published dataset.")],
    blobs: BlobsOpt = False,
    split: Annotated[
        str | None, typer.Option("--split", "-s", help="The split to publish.")
    ] = None,
    sample_type: Annotated[
        str | None,
        typer.Option(
            "--type",
            "-t",
            help="Schema of the samples: Name or Name@version in the index, or at://.",
        ),
    ] = None,
    schema_version: Annotated[
        str, typer.Option("--schema-version", help="Version of the published schema.")
    ] = "1.0.0",
    description: DescriptionOpt = None,
    tag: TagOpt = None,
    license: LicenseOpt = None,
    public_urls_only: PublicUrlsOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Publish a dataset to the logged-in account: its schema, then a dataset record."""
    from atdata.atmosphere import AtmosphereIndex, PDSBlobStore
    from atdata.dict_sample import DictSample
    from atdata.load import load_dataset

    splits = load_dataset(ref, schema_ref(sample_type))
    if split is None:
        if len(splits) > 1:
            raise CliError(
                f"{ref} has the splits {sorted(splits)}; a record holds one",
                hint="publish them one at a time with --split NAME",
            )
        split = next(iter(splits))
    elif split not in splits:
        raise ValueError(f"split {split!r} not found; available splits: {sorted(splits)}")
    ds = splits[split]
    if ds.sample_type is DictSample:
        raise CliError(
            "these samples have no type, so there is no schema to publish",
            hint="pass --type atdata://local/sampleSchema/Name (see `atdata schema list`)",
        )
    client = load_client()
    try:
        store = PDSBlobStore(client) if blobs else None
        index = AtmosphereIndex(client, data_store=store, require_public_urls=public_urls_only)
        index.check_urls(ds, name=name)  # a refusal before the schema record is published
        schema_uri = index.publish_schema(ds.sample_type, version=schema_version)
        total = _total_bytes(ds) if blobs else None
        with (
            _url_warnings(),
            progress(f"uploading {name}", total, unit="bytes") as bar,
            _count_uploads(client, bar),
        ):
            entry = index.insert_dataset(
                ds,
                name=name,
                schema_ref=schema_uri,
                description=description,
                tags=tag or None,
                license=license,
            )
        result = _result(client, entry)
    finally:
        client.close()
    if not emit(result, json_output):
        _print_result(result)


class _CountingIndex:
    """The local index, but the datasets it opens count the bytes read on a progress bar."""

    def __init__(self, index: Any, bar: Any) -> None:
        self._index = index
        self._bar = bar

    def __getattr__(self, name: str) -> Any:
        return getattr(self._index, name)

    def dataset_for(self, *args: Any, **kwargs: Any) -> Any:
        from atdata.cli._common import ProgressSource
        from atdata.dataset import Dataset

        ds = self._index.dataset_for(*args, **kwargs)
        return Dataset[ds.sample_type](ProgressSource(ds.source, self._bar))


def promote(
    name: Annotated[
        str,
        typer.Argument(
            help="Dataset in the local index (name, @local/name or CID).",
            metavar="NAME",
            show_default=False,
        ),
    ],
    new_name: Annotated[
        str | None, typer.Option("--name", help="Published name (default: the same).")
    ] = None,
    blobs: BlobsOpt = False,
    copy_to: Annotated[
        str | None,
        typer.Option(
            "--copy-to",
            metavar="BUCKET",
            help="Copy the shards to this S3 bucket first (AWS_* settings) and publish those URLs.",
        ),
    ] = None,
    description: DescriptionOpt = None,
    tag: TagOpt = None,
    license: LicenseOpt = None,
    public_urls_only: PublicUrlsOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Promote a dataset of the local index to the logged-in account (schema deduplicated)."""
    import os

    from atdata.atmosphere import AtmosphereIndex, PDSBlobStore
    from atdata.atmosphere.records import SCHEMA_COLLECTION, iter_records
    from atdata.local import S3DataStore
    from atdata.promote import already_promoted, promote_to_atmosphere

    if blobs and copy_to:
        raise CliError("--blobs and --copy-to both say where the shards go", hint="choose one")
    local_index = default_index()
    entry = local_index.get_dataset(name.removeprefix("@local/"))
    client = load_client()
    target = new_name or entry.name
    try:
        already = already_promoted(client, target, entry.cid) if entry.cid else None
        if already is not None:
            result = {**_result(client, AtmosphereIndex(client).get_dataset(already)), "new": False}
            if not emit(result, json_output):
                out.print(f"already published: {result['ref']} ({already}); nothing to do")
            return
        schemas_before = {str(r.uri) for r in iter_records(client, SCHEMA_COLLECTION)}
        store: Any = None
        if blobs:
            store = PDSBlobStore(client)
        elif copy_to:
            creds = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
            store = S3DataStore(creds, bucket=copy_to)
        sizes = [s.size for s in entry.shards]
        total = sum(sizes) if sizes and None not in sizes else None
        counting = _count_uploads if blobs else _no_count
        with (
            _url_warnings(),
            progress(f"promoting {entry.name}", total, unit="bytes") as bar,
            counting(client, bar) as uploaded,
        ):
            try:
                uri = promote_to_atmosphere(
                    entry,
                    _CountingIndex(local_index, bar) if copy_to else local_index,
                    client,
                    data_store=store,
                    name=new_name,
                    description=description,
                    tags=tag or None,
                    license=license,
                    require_public_urls=public_urls_only,
                )
            except KeyboardInterrupt as exc:
                report = _interrupted(
                    client, exc, target, entry.cid, schemas_before, uploaded, copy_to
                )
                err.print("\n".join(report))
                raise typer.Exit(130) from None
        published = AtmosphereIndex(client).get_dataset(str(uri))
        result = {**_result(client, published), "new": True}
    finally:
        client.close()
    if not emit(result, json_output):
        _print_result(result)
