"""``load_dataset``: open a dataset by path, pattern, URL, index name or AT-URI, Hugging Face style.

Path forms:

* a local file, a directory (every ``*.tar`` under it), a glob (``data/*.tar``),
  a brace pattern (``{train,test}-{000..009}.tar``), an ``http(s)://`` or
  ``s3://`` URL (``s3://`` globs are listed in the bucket);
* ``@local/name``: a dataset in the default local index (or ``index=``);
* ``@handle/name`` or ``@did:plc:.../name``: a dataset record of that account,
  read from its own PDS;
* ``at://did/ac.foundation.dataset.record/rkey``: a dataset record.

Splits are detected from file names (``train``/``training``, ``test``/``testing``,
``validation``/``valid``/``val``/``dev``) and default to ``train``.

>>> # ds = load_dataset("data/{train,test}-{000..009}.tar", split="train")
>>> # splits = load_dataset("@local/mnist")          # DatasetDict
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from atdata.dataset import Dataset
from atdata.dict_sample import DictSample
from atdata.sources import expand_urls

__all__ = ["DatasetDict", "detect_split", "load_dataset", "set_default_index"]

_SPLITS = (
    ("train", r"train|training"),
    ("test", r"test|testing|eval|evaluation"),
    ("validation", r"validation|valid|val|dev|development"),
)
_SPLIT_RE = [
    (name, re.compile(rf"(?:^|[/_.\-])(?:{words})(?=$|[/_.\-\d])", re.IGNORECASE))
    for name, words in _SPLITS
]
_default_index: Any = None


class DatasetDict(dict[str, Dataset[Any]]):
    """Datasets by split name.

    >>> DatasetDict().num_shards
    {}
    """

    @property
    def sample_type(self) -> type | None:
        """The sample type of the splits (of the first one)."""
        return next(iter(self.values())).sample_type if self else None

    @property
    def num_shards(self) -> dict[str, int]:
        """Number of shards per split."""
        return {name: len(ds.list_shards()) for name, ds in self.items()}


def set_default_index(index: Any) -> None:
    """Set the index that ``@local/name`` resolves in (default: ``atdata.local.LocalIndex()``)."""
    global _default_index
    _default_index = index


def _get_default_index() -> Any:
    global _default_index
    if _default_index is None:
        from atdata.local import LocalIndex

        _default_index = LocalIndex()
    return _default_index


def detect_split(path: str) -> str:
    """The split a shard belongs to, from its file name first, then its directories."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    for target in (name, path):
        for split, pattern in _SPLIT_RE:
            if pattern.search(target):
                return split
    return "train"


def _group(urls: Sequence[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for u in urls:
        groups.setdefault(detect_split(u), []).append(u)
    return groups


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _expand(path: str) -> list[str]:
    """Every shard a path, pattern, directory or URL names, in sorted order."""
    out: list[str] = []
    for item in expand_urls(path):
        scheme = urlsplit(item).scheme
        if scheme == "s3" and _is_glob(item):
            out.extend(_s3_glob(item))
        elif scheme in ("http", "https"):
            if _is_glob(item):
                raise ValueError(
                    f"HTTP URLs cannot be listed, so the glob in {item!r} cannot be expanded"
                )
            out.append(item)
        elif scheme in ("", "file") or len(scheme) == 1:
            local = item[len("file://") :] if scheme == "file" else item
            if os.path.isdir(local):
                out.extend(sorted(str(p) for p in Path(local).rglob("*.tar")))
            elif _is_glob(local):
                out.extend(sorted(glob.glob(local, recursive=True)))
            elif os.path.exists(local):
                out.append(item)
        else:
            out.append(item)
    return out


def _s3_glob(url: str) -> list[str]:
    import fnmatch

    from atdata.sources import make_s3_client

    parts = urlsplit(url)
    pattern = parts.path.lstrip("/")
    prefix = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
    client = make_s3_client(os.environ.get("AWS_ENDPOINT_URL"))
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=parts.netloc, Prefix=prefix
    ):
        keys.extend(
            o["Key"] for o in page.get("Contents", []) if fnmatch.fnmatchcase(o["Key"], pattern)
        )
    return [f"s3://{parts.netloc}/{k}" for k in sorted(keys)]


def _from_files(
    path: str | None,
    data_files: str | Sequence[str] | Mapping[str, str | Sequence[str]] | None,
    sample_type: type,
) -> DatasetDict:
    groups: dict[str, list[str]] = {}
    if data_files is not None:
        base = path or ""
        spec = data_files if isinstance(data_files, Mapping) else {"train": data_files}
        for split, files in spec.items():
            items = [files] if isinstance(files, str) else list(files)
            for f in items:
                full = (
                    f
                    if (urlsplit(f).scheme or os.path.isabs(f) or not base)
                    else os.path.join(base, f)
                )
                groups.setdefault(split, []).extend(_expand(full))
    else:
        assert path is not None
        groups = _group(_expand(path))
    groups = {k: v for k, v in groups.items() if v}
    if not groups:
        raise FileNotFoundError(
            f"no shards found for {path!r}"
            + (f" with data_files={data_files!r}" if data_files else "")
        )
    return DatasetDict({split: Dataset[sample_type](urls) for split, urls in groups.items()})  # type: ignore[valid-type]


def _from_index(ref: str, sample_type: type | None, index: Any) -> DatasetDict:
    authority, _, name = ref[1:].partition("/")
    if not name:
        raise ValueError(f"{ref!r} is not of the form @local/name, @handle/name or @did/name")
    if authority == "local":
        idx = index if index is not None else _get_default_index()
        entry = idx.get_dataset(name)
    else:
        from atdata.atmosphere.resolve import find_dataset

        idx, entry = find_dataset(authority, name, index=index)
    return _entry_splits(idx, entry, sample_type)


def _entry_splits(idx: Any, entry: Any, sample_type: type | None) -> DatasetDict:
    if sample_type is None:
        sample_type = idx.decode_schema(entry.schema_ref)
    make = getattr(idx, "dataset_for", None)
    if make is not None:
        ds = make(entry, sample_type)
        return DatasetDict({"train": ds})
    return DatasetDict({"train": Dataset[sample_type](entry.data_urls)})  # type: ignore[valid-type]


def load_dataset(
    path: str,
    sample_type: type | None = None,
    *,
    split: str | None = None,
    data_files: str | Sequence[str] | Mapping[str, str | Sequence[str]] | None = None,
    index: Any = None,
) -> Any:
    """Open a dataset: a :class:`Dataset` for ``split``, else a :class:`DatasetDict` of splits.

    ``sample_type`` defaults to the stored schema for index names and
    AT-URIs, and to :class:`~atdata.DictSample` for files.
    """
    if path.startswith("@"):
        splits = _from_index(path, sample_type, index)
    elif path.startswith("at://"):
        from atdata.atmosphere.resolve import get_dataset_entry

        idx, entry = get_dataset_entry(path, index=index)
        splits = _entry_splits(idx, entry, sample_type)
    else:
        splits = _from_files(path, data_files, sample_type or DictSample)
    if split is None:
        return splits
    if split not in splits:
        raise ValueError(f"split {split!r} not found; available splits: {sorted(splits)}")
    return splits[split]
