"""``load_dataset``: open a dataset by path, pattern, URL, index name or AT-URI, Hugging Face style.

Path forms:

* a local file, a directory (every ``*.tar`` under it), a glob (``data/*.tar``),
  a brace pattern (``{train,test}-{000..009}.tar``), an ``http(s)://`` or
  ``s3://`` URL (``s3://`` globs are listed in the bucket);
* ``@local/name``: a dataset in the default index (see :func:`get_default_index`)
  or in ``index=``;
* ``@handle/name`` or ``@did:plc:.../name``: a dataset record of that account,
  read from its own PDS;
* ``at://did/ac.foundation.dataset.record/rkey``: a dataset record;
* ``at://did/blob/cid``: PDS blobs as shards (brace patterns allowed).

Splits are detected from file names (``train``/``training``, ``test``/``testing``/
``eval``, ``validation``/``valid``/``val``/``dev``), looking only below the fixed
part of the path, and default to ``train``.

>>> import atdata, tempfile
>>> @atdata.packable
... class Row:
...     value: int
>>> out = tempfile.mkdtemp()
>>> for split in ("train", "test"):
...     _ = atdata.write_samples([Row(1), Row(2)], f"{out}/{split}-000000.tar")
>>> splits = load_dataset(f"{out}/{{train,test}}-000000.tar", Row)
>>> sorted(splits)
['test', 'train']
>>> [r.value for r in load_dataset(out, Row, split="test")]
[1, 2]
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, overload
from urllib.parse import urlsplit

from atdata.dataset import Dataset
from atdata.dict_sample import DictSample
from atdata.sources import expand_urls, redact_url

__all__ = [
    "DatasetDict",
    "detect_split",
    "get_default_index",
    "index_from_env",
    "load_dataset",
    "set_default_index",
]

_SPLITS = (
    ("train", r"train|training"),
    ("test", r"test|testing|eval|evaluation"),
    ("validation", r"validation|valid|val|dev|development"),
)
_SPLIT_RE = [
    (name, re.compile(rf"(?:^|[/_.\-])(?:{words})(?=$|[/_.\-\d])", re.IGNORECASE))
    for name, words in _SPLITS
]
_PATTERN_CHARS = re.compile(r"[{*?\[]")
_default_index: Any = None
T = TypeVar("T")

DataFiles = str | Sequence[str] | Mapping[str, str | Sequence[str]]


class DatasetDict(dict[str, Dataset[Any]]):
    """Datasets by split name; ``entry`` is the index entry they were read from, if any.

    With ``sample_type``, splits of another type are viewed as it (through
    :meth:`Dataset.as_type`); with ``streaming``, they read remote shards as
    streams, with no download into the shard cache first (as
    ``load_dataset(..., streaming=True)`` does). With one split, ``ordered``,
    ``shuffled``, ``as_type``, ``list_shards`` and ``head`` reach that split.

    >>> DatasetDict().num_shards
    {}
    """

    _DATASET_METHODS = frozenset({"ordered", "shuffled", "as_type", "list_shards", "head"})

    def __init__(
        self,
        splits: Mapping[str, Dataset[Any]] | None = None,
        sample_type: type | None = None,
        streaming: bool = False,
        *,
        entry: Any = None,
    ):
        items = dict(splits or {})
        for name, ds in items.items():
            if sample_type is not None and ds.sample_type is not sample_type:
                ds = ds.as_type(sample_type)
            items[name] = _streaming(ds) if streaming else ds
        super().__init__(items)
        self._sample_type = sample_type
        self.streaming = streaming
        self.entry = entry

    @property
    def sample_type(self) -> type | None:
        """The sample type given, else that of the splits (of the first one)."""
        if self._sample_type is not None:
            return self._sample_type
        return next(iter(self.values())).sample_type if self else None

    def __getattr__(self, name: str) -> Any:
        if name in DatasetDict._DATASET_METHODS:
            if len(self) == 1:
                return getattr(next(iter(self.values())), name)
            raise AttributeError(
                f"this DatasetDict has {len(self)} splits {sorted(self)}; "
                f"pick one first, e.g. splits[{next(iter(self), 'train')!r}].{name}()"
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def num_shards(self) -> dict[str, int]:
        """Number of shards per split."""
        return {name: len(ds.list_shards()) for name, ds in self.items()}


def _streaming(ds: Dataset[Any]) -> Dataset[Any]:
    """``ds`` reading remote shards as streams: no shard cache, no download step."""
    return ds.streaming()


# --------------------------------------------------------------------------- default index


def set_default_index(index: Any) -> None:
    """Set the index that ``@local/name`` resolves in (``None``: back to the default)."""
    global _default_index
    _default_index = index


def index_from_env(environ: Mapping[str, str] | None = None) -> Any:
    """The index the environment describes.

    ``ATDATA_INDEX`` is a ``redis://`` URL, a ``postgresql://`` DSN, or a SQLite
    file (path or ``sqlite:///path``); unset, ``$ATDATA_HOME/index.db``.
    ``ATDATA_BUCKET`` makes an :class:`~atdata.local.S3DataStore` on that bucket
    (``AWS_*`` variables for endpoint and keys) the data store; unset, shards go to
    ``$ATDATA_HOME/data``.
    """
    from atdata.local import LocalIndex, S3DataStore

    env = os.environ if environ is None else environ
    store = None
    bucket = env.get("ATDATA_BUCKET")
    if bucket:
        creds = {k: v for k, v in env.items() if k.startswith("AWS_")}
        store = S3DataStore(creds, bucket=bucket)
    where = env.get("ATDATA_INDEX", "").strip()
    if where.startswith(("redis://", "rediss://", "unix://")):
        return LocalIndex(redis=where, data_store=store)
    if where.startswith(("postgresql://", "postgres://")):
        return LocalIndex(dsn=where, data_store=store)
    if where:
        return LocalIndex(path=where.removeprefix("sqlite://"), data_store=store)
    return LocalIndex(data_store=store)


def get_default_index() -> Any:
    """The index of ``@local/name``: the one set with :func:`set_default_index`, else
    :func:`index_from_env` (made once)."""
    global _default_index
    if _default_index is None:
        _default_index = index_from_env()
    return _default_index


# --------------------------------------------------------------------------- splits


def detect_split(path: str) -> str:
    """The split a shard belongs to, from its file name first, then its directories.

    >>> detect_split("mnist/validation/shard-000.tar"), detect_split("train-000.tar")
    ('validation', 'train')
    """
    name = path.rstrip("/").rsplit("/", 1)[-1]
    for target in (name, path):
        for split, pattern in _SPLIT_RE:
            if pattern.search(target):
                return split
    return "train"


def _fixed_dir(pattern: str) -> str:
    """The directory part of ``pattern`` before any brace or glob character."""
    m = _PATTERN_CHARS.search(pattern)
    if m is None and not urlsplit(pattern).scheme and os.path.isdir(pattern):
        return pattern
    prefix = pattern if m is None else pattern[: m.start()]
    return prefix.rsplit("/", 1)[0] if "/" in prefix else ""


def _below(base: str, url: str) -> str:
    """The part of ``url`` under ``base``: what split detection looks at."""
    if not base:
        return url
    if urlsplit(url).scheme and len(urlsplit(url).scheme) > 1:
        return url[len(base) :] if url.startswith(base) else url
    rel = os.path.relpath(os.path.normpath(url), os.path.normpath(base))
    return url if rel.startswith("..") else rel.replace(os.sep, "/")


# --------------------------------------------------------------------------- expansion


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _expand(path: str) -> list[tuple[str, str]]:
    """``(shard, name under the fixed directory)`` for every shard ``path`` names, in order.

    A brace pattern must name existing files: a missing one raises
    ``FileNotFoundError`` rather than quietly shrinking the dataset.
    """
    base = _fixed_dir(path)
    out: list[tuple[str, str]] = []
    missing: list[str] = []
    for item in expand_urls(path):
        scheme = urlsplit(item).scheme
        if scheme == "s3":
            found = _s3_glob(item) if _is_glob(item) else [item]
        elif scheme in ("http", "https"):
            if _is_glob(item):
                raise ValueError(
                    f"HTTP URLs cannot be listed, so the glob in {redact_url(item)!r} "
                    "cannot be expanded; name the shards or use a brace pattern"
                )
            found = [item]
        elif scheme in ("", "file") or len(scheme) == 1:
            local = item[len("file://") :] if scheme == "file" else item
            if os.path.isdir(local):
                found = sorted(str(p) for p in Path(local).rglob("*.tar") if p.is_file())
            elif _is_glob(local):
                found = sorted(p for p in glob.glob(local, recursive=True) if os.path.isfile(p))
            elif os.path.exists(local):
                found = [item]
            else:
                missing.append(item)
                found = []
        else:
            found = [item]
        out.extend((u, _below(base, u)) for u in found)
    if missing and (out or len(missing) > 1):
        shown = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        raise FileNotFoundError(f"{path!r} names shards that do not exist: {shown}")
    unique: dict[str, str] = {}
    for url, rel in out:
        unique.setdefault(url, rel)
    return list(unique.items())


def _s3_glob(url: str) -> list[str]:
    """The objects an ``s3://bucket/glob`` names (``AWS_*`` settings from the environment)."""
    from atdata.sources import make_s3_client

    parts = urlsplit(url)
    pattern = parts.path.lstrip("/")
    prefix = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
    client = make_s3_client(
        os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT"),
        os.environ.get("AWS_ACCESS_KEY_ID"),
        os.environ.get("AWS_SECRET_ACCESS_KEY"),
    )
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=parts.netloc, Prefix=prefix
    ):
        keys.extend(
            o["Key"] for o in page.get("Contents", []) if fnmatch.fnmatchcase(o["Key"], pattern)
        )
    return [f"s3://{parts.netloc}/{k}" for k in sorted(keys)]


def _from_files(path: str | None, data_files: DataFiles | None, sample_type: type) -> DatasetDict:
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
                groups.setdefault(split, []).extend(u for u, _ in _expand(full))
    else:
        assert path is not None
        for url, rel in _expand(path):
            groups.setdefault(detect_split(rel), []).append(url)
    groups = {k: v for k, v in groups.items() if v}
    if not groups:
        raise FileNotFoundError(
            f"no shards found for {path!r}"
            + (f" with data_files={data_files!r}" if data_files else "")
        )
    return DatasetDict({split: Dataset[sample_type](urls) for split, urls in groups.items()})  # type: ignore[valid-type]


# --------------------------------------------------------------------------- indexes


def _from_index(
    ref: str, sample_type: type | None, index: Any, allow_private: bool | None
) -> DatasetDict:
    authority, _, name = ref[1:].partition("/")
    if not authority or not name:
        raise ValueError(f"{ref!r} is not of the form @local/name, @handle/name or @did/name")
    if authority == "local":  # the team's own index: its entries are trusted
        idx = index if index is not None else get_default_index()
        return _entry_splits(idx, idx.get_dataset(name), sample_type)
    from atdata.atmosphere.resolve import find_dataset

    idx, entry = find_dataset(authority, name, index=index)
    return _entry_splits(idx, entry, sample_type, allow_private_urls=allow_private)


def _entry_splits(idx: Any, entry: Any, sample_type: type | None, **options: Any) -> DatasetDict:
    if sample_type is None:
        sample_type = idx.decode_schema(entry.schema_ref)
    make = getattr(idx, "dataset_for", None)
    ds = (
        make(entry, sample_type, **options)
        if make is not None
        else Dataset[sample_type](entry.data_urls)
    )  # type: ignore[valid-type]
    return DatasetDict({"train": ds}, entry=entry)


def _from_blobs(path: str, sample_type: type | None, allow_private: bool | None) -> DatasetDict:
    """Blob shard ids ``at://{did}/blob/{cid}`` (brace patterns allowed): one ``train`` split."""
    from atdata.atmosphere.blobs import BlobSource

    source = BlobSource.from_urls(expand_urls(path), allow_private_urls=allow_private)
    return DatasetDict({"train": Dataset[sample_type or DictSample](source)})  # type: ignore[misc]


def _sample_type(spec: type | str | None, index: Any) -> type | None:
    """A sample type, or the type a schema reference (``atdata://``, ``at://``) decodes to."""
    if spec is None or isinstance(spec, type):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"sample_type must be a type or a schema reference, not {spec!r}")
    if spec.startswith("at://"):
        from atdata.atmosphere.resolve import decode_schema

        return decode_schema(spec, index=index)  # type: ignore[no-any-return]
    idx = index if index is not None else get_default_index()
    return idx.decode_schema(spec)  # type: ignore[no-any-return]


_SCHEMES = ("at", "file", "http", "https", "s3")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")


def _check_uri(path: str) -> None:
    """Refuse a malformed URI now (``at:/x``, ``s3:bucket``), not as a missing file later."""
    m = _SCHEME.match(path)
    if m is None:
        return  # a path (a one-letter scheme is a Windows drive)
    scheme, rest = m[1].lower(), path[m.end() :]
    if scheme not in _SCHEMES:
        if rest.startswith("//"):
            raise ValueError(
                f"{path!r}: unsupported URL scheme {m[1]!r} "
                f"(use {', '.join(s + '://' for s in _SCHEMES)} or a path)"
            )
        return  # a relative path with a colon in it
    if not rest.startswith("//") or (scheme != "file" and not rest[2:].split("/", 1)[0]):
        form = {"at": "at://DID-OR-HANDLE/...", "s3": "s3://BUCKET/KEY"}.get(
            scheme, f"{scheme}://HOST/..."
        )
        raise ValueError(f"{path!r} is not a valid {scheme}:// URL (expected {form})")


@overload
def load_dataset(
    path: str | os.PathLike[str],
    sample_type: type[T],
    *,
    split: str,
    data_files: DataFiles | None = None,
    index: Any = None,
    streaming: bool = False,
    allow_private_urls: bool | None = None,
    mirrors: Sequence[str] | None = None,
) -> Dataset[T]: ...
@overload
def load_dataset(
    path: str | os.PathLike[str],
    sample_type: str | None = None,
    *,
    split: str,
    data_files: DataFiles | None = None,
    index: Any = None,
    streaming: bool = False,
    allow_private_urls: bool | None = None,
    mirrors: Sequence[str] | None = None,
) -> Dataset[Any]: ...
@overload
def load_dataset(
    path: str | os.PathLike[str],
    sample_type: type | str | None = None,
    *,
    split: None = None,
    data_files: DataFiles | None = None,
    index: Any = None,
    streaming: bool = False,
    allow_private_urls: bool | None = None,
    mirrors: Sequence[str] | None = None,
) -> DatasetDict: ...
def load_dataset(
    path: str | os.PathLike[str],
    sample_type: type | str | None = None,
    *,
    split: str | None = None,
    data_files: DataFiles | None = None,
    index: Any = None,
    streaming: bool = False,
    allow_private_urls: bool | None = None,
    mirrors: Sequence[str] | None = None,
) -> Dataset[Any] | DatasetDict:
    """Open a dataset: a :class:`Dataset` for ``split``, else a :class:`DatasetDict` of splits.

    ``sample_type`` is a ``@packable`` type or a schema reference
    (``atdata://local/sampleSchema/Name@1.0.0``; without ``@version`` the latest).
    It defaults to the stored schema for index names and AT-URIs, and to
    :class:`~atdata.DictSample` for files. ``data_files`` (a path, a list, or
    ``{split: paths}``) names the shards relative to ``path``. ``index`` is the
    index ``@local/name`` and schema references resolve in (default:
    :func:`get_default_index`), or an ``AtmosphereIndex`` for ``@handle/name``.
    ``streaming=True`` (the Hugging Face keyword) reads remote shards as streams
    while they are iterated, with no download step into the shard cache; local
    shards are read in place either way.

    A published record is someone else's data: its shard URLs (and the PDS of its
    blobs) must be public ``http(s)``, ``s3://`` or ``at://`` addresses, checked on
    every connection and redirect, unless ``allow_private_urls=True`` (default: the
    ``index``'s setting, else ``$ATDATA_ALLOW_PRIVATE_URLS``). Paths you type and
    ``@local`` entries are yours and are not restricted.
    """
    path = os.fspath(path)
    _check_uri(path)
    wanted = _sample_type(sample_type, index)
    if path.startswith("@"):
        splits = _from_index(path, wanted, index, allow_private_urls)
    elif path.startswith("at://") and "/blob/" in path:
        splits = _from_blobs(path, wanted, allow_private_urls)
    elif path.startswith("at://") and (
        mirrors or os.environ.get("ATDATA_APPVIEW_URL") or "/ac.foundation.dataset.mirror/" in path
    ):
        from atdata.atmosphere.mirrors import open_mirrored

        splits = DatasetDict(
            {
                "train": open_mirrored(
                    path,
                    wanted,
                    mirrors=mirrors or (),
                    index=index,
                    allow_private_urls=allow_private_urls,
                )
            }
        )
    elif path.startswith("at://"):
        from atdata.atmosphere.resolve import get_dataset_entry

        idx, entry = get_dataset_entry(path, index=index)
        splits = _entry_splits(idx, entry, wanted, allow_private_urls=allow_private_urls)
    else:
        splits = _from_files(path, data_files, wanted or DictSample)
    if streaming:
        splits = DatasetDict(splits, streaming=True, entry=splits.entry)
    if split is None:
        return splits
    if split not in splits:
        raise ValueError(f"split {split!r} not found; available splits: {sorted(splits)}")
    return splits[split]
