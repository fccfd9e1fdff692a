"""``atdata inspect`` and ``atdata preview``: look at any dataset ``load_dataset`` can open."""

from __future__ import annotations

import os
from typing import Annotated, Any

import numpy as np
import typer

from atdata.cli._common import JsonOpt, emit, human_size, out, progress, schema_ref, table

__all__ = ["describe_value", "inspect_ref", "preview", "shard_size"]

RefArg = Annotated[
    str,
    typer.Argument(
        help="A file, directory, glob, brace pattern, URL, @local/name, @handle/name or at:// URI.",
        metavar="REF",
        show_default=False,
    ),
]
SplitOpt = Annotated[str | None, typer.Option("--split", "-s", help="Only this split.")]
TypeOpt = Annotated[
    str | None,
    typer.Option(
        "--type",
        "-t",
        help="Read samples as this schema: Name or Name@version in the index, or an at:// URI.",
    ),
]


def _open(ref: str, sample_type: str | None, split: str | None) -> Any:
    from atdata.load import load_dataset

    splits = load_dataset(ref, schema_ref(sample_type))
    if split is not None and split not in splits:
        raise ValueError(f"split {split!r} not found; available splits: {sorted(splits)}")
    return splits, ([split] if split is not None else list(splits))


# --------------------------------------------------------------------------- values


def describe_value(value: Any) -> Any:
    """A JSON-able summary of a field value: arrays as dtype and shape, long values cut."""
    if isinstance(value, np.ndarray):
        return {"dtype": str(value.dtype), "shape": list(value.shape)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": len(value)}
    if isinstance(value, str):
        return value if len(value) <= 200 else value[:200] + "..."
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        items = [describe_value(v) for v in value[:8]]
        return items + ([f"... {len(value)} items"] if len(value) > 8 else [])
    if isinstance(value, dict):
        keys = list(value)[:8]
        shown = {str(k): describe_value(value[k]) for k in keys}
        if len(value) > 8:
            shown["..."] = f"{len(value)} keys"
        return shown
    fields = _sample_fields(value)
    if fields is not None:
        return {k: describe_value(v) for k, v in fields.items()}
    return value


def _text(value: Any) -> str:
    """One-line text of a :func:`describe_value` result."""
    if isinstance(value, dict) and set(value) == {"dtype", "shape"}:
        return f"ndarray {value['dtype']} {tuple(value['shape'])}"
    if isinstance(value, dict) and set(value) == {"bytes"}:
        return f"bytes[{value['bytes']}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _sample_fields(sample: Any) -> dict[str, Any] | None:
    from atdata.dict_sample import DictSample
    from atdata.sample import fields_of, is_packable

    if isinstance(sample, DictSample):
        return sample.to_dict()
    if is_packable(type(sample)):
        return {f.name: getattr(sample, f.name) for f in fields_of(type(sample))}
    return None


def _fields(sample_type: type, first: Any) -> list[dict[str, Any]]:
    """Field names and types: from the sample type, or from the first sample when untyped."""
    from atdata.sample import fields_of, is_packable

    values = _sample_fields(first) if first is not None else None
    rows: list[dict[str, Any]] = []
    if is_packable(sample_type):
        for spec in fields_of(sample_type):
            row: dict[str, Any] = {"name": spec.name, "type": spec.type.describe()}
            value = (values or {}).get(spec.name)
            if isinstance(value, np.ndarray):
                row["example_shape"] = list(value.shape)
            rows.append(row)
        return rows
    for name, value in (values or {}).items():
        if isinstance(value, np.ndarray):
            rows.append(
                {
                    "name": name,
                    "type": f"ndarray[{value.dtype}]",
                    "example_shape": list(value.shape),
                }
            )
        else:
            rows.append({"name": name, "type": type(value).__name__})
    return rows


# --------------------------------------------------------------------------- sizes


def _s3_source(source: Any) -> Any:
    from atdata.sources import S3Source

    while source is not None and not isinstance(source, S3Source):
        source = getattr(source, "inner", None)
    return source


def shard_size(ds: Any, shard: str, entry: Any = None) -> int | None:
    """The size of a shard in bytes, from the index, the file system, S3, HTTP or the cache."""
    from atdata.cache import ShardCache
    from atdata.sources import local_path

    recorded = {s.url: s.size for s in getattr(entry, "shards", ()) or ()}
    if recorded.get(shard) is not None:
        return int(recorded[shard])  # type: ignore[arg-type]
    path = local_path(shard)
    if path is not None:
        try:
            return os.path.getsize(path)
        except OSError:
            return None
    cached = ShardCache().path(shard)
    if cached.exists():
        return cached.stat().st_size
    s3 = _s3_source(ds.source)
    if shard.startswith("s3://") and s3 is not None:
        bucket, _, key = shard[len("s3://") :].partition("/")
        try:
            return int(s3.client.head_object(Bucket=bucket, Key=key)["ContentLength"])
        except Exception:
            return None
    if shard.startswith(("http://", "https://")):
        import httpx

        from atdata._urls import checked_http_client
        from atdata.errors import PrivateURLError

        policy = _url_policy(ds.source)  # a record's URLs: the reader's URL policy
        http = (
            httpx.Client(timeout=10, follow_redirects=True)
            if policy is None
            else checked_http_client(policy, timeout=10)
        )
        try:
            with http:
                response = http.head(shard)
            length = response.headers.get("content-length")
            return int(length) if response.status_code == 200 and length else None
        except (httpx.HTTPError, ValueError, PrivateURLError):
            return None
    return None


def _url_policy(source: Any) -> Any:
    """The read policy of a record's URL source (through wrappers), or None for yours."""
    while source is not None and getattr(source, "policy", None) is None:
        source = getattr(source, "inner", None)
    return None if source is None else source.policy


def _shown(shard: str) -> str:
    from atdata.sources import redact_url

    return redact_url(shard)


# --------------------------------------------------------------------------- commands


def inspect_ref(
    ref: RefArg,
    split: SplitOpt = None,
    sample_type: TypeOpt = None,
    count: Annotated[
        bool,
        typer.Option(
            "--count/--no-count",
            help="Count samples (reads every shard's headers; remote shards are downloaded).",
        ),
    ] = True,
    all_shards: Annotated[
        bool, typer.Option("--all-shards", help="List every shard (default: the first 10).")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Describe a dataset: splits, shards, sample counts, fields and types, sizes."""
    splits, names = _open(ref, sample_type, split)
    entry = getattr(splits, "entry", None)
    report: dict[str, Any] = {"ref": ref, "sample_type": _type_name(splits.sample_type)}
    if entry is not None:
        report["entry"] = {
            k: str(getattr(entry, k))
            for k in ("name", "cid", "uri", "schema_ref")
            if getattr(entry, k, None)
        }
    report["splits"] = {}
    first = None
    for name in names:
        ds = splits[name]
        shards = ds.list_shards()
        counts: list[int | None] = [None] * len(shards)
        if count:
            with progress(f"counting {name}", len(shards)) as bar:
                for i, shard in enumerate(shards):
                    counts[i] = len(ds.shard_index(shard))
                    bar.advance()
        sizes = [shard_size(ds, s, entry) for s in shards]
        if first is None:
            head = ds.head(1)
            first = head[0] if head else None
        report["splits"][name] = {
            "shards": len(shards),
            "samples": sum(c for c in counts if c is not None) if count else None,
            "bytes": sum(s for s in sizes if s is not None) if None not in sizes else None,
            "shard_list": [
                {"url": _shown(s), "samples": c, "bytes": b}
                for s, c, b in zip(shards, counts, sizes)
            ],
        }
    report["fields"] = _fields(splits.sample_type, first)
    if emit(report, json_output):
        return
    _print_report(report, all_shards)


def _type_name(sample_type: type | None) -> str | None:
    return None if sample_type is None else sample_type.__name__


def _print_report(report: dict[str, Any], all_shards: bool) -> None:
    out.print(f"{report['ref']}  samples of type {report['sample_type']}")
    for key, value in (report.get("entry") or {}).items():
        out.print(f"  {key:<10} {value}")
    grid = table("field", "type", "shape (first sample)")
    for row in report["fields"]:
        shape = row.get("example_shape")
        grid.add_row(row["name"], row["type"], str(tuple(shape)) if shape is not None else "")
    out.print(grid)
    for name, info in report["splits"].items():
        samples = "?" if info["samples"] is None else f"{info['samples']:,}"
        out.print(
            f"split {name}: {info['shards']} shard(s), {samples} samples, "
            f"{human_size(info['bytes'])}"
        )
        listed = info["shard_list"] if all_shards else info["shard_list"][:10]
        for shard in listed:
            n = "?" if shard["samples"] is None else f"{shard['samples']:,}"
            out.print(f"  {shard['url']}  {n} samples  {human_size(shard['bytes'])}")
        if len(listed) < len(info["shard_list"]):
            out.print(f"  ... {len(info['shard_list']) - len(listed)} more (--all-shards)")


def preview(
    ref: RefArg,
    n: Annotated[int, typer.Option("-n", "--samples", min=1, help="How many samples.")] = 5,
    split: SplitOpt = None,
    sample_type: TypeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Print the first samples of a dataset (arrays shown as dtype and shape)."""
    splits, names = _open(ref, sample_type, split)
    chosen = split or ("train" if "train" in names else names[0])
    samples = [describe_value(s) for s in splits[chosen].head(n)]
    if emit(
        {
            "ref": ref,
            "split": chosen,
            "sample_type": _type_name(splits.sample_type),
            "samples": samples,
        },
        json_output,
    ):
        return
    others = [s for s in names if s != chosen]
    note = f" (other splits: {', '.join(others)}; --split to choose)" if others else ""
    out.print(f"{ref} split {chosen}, first {len(samples)} sample(s){note}")
    for i, sample in enumerate(samples):
        out.print(f"#{i}")
        for key, value in sample.items():
            out.print(f"  {key}: {_text(value)}")
