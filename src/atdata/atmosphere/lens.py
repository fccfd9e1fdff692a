"""Lens records (``ac.foundation.dataset.lens``): a view between two schemas, by reference.

A lens record names its source and target schemas and points at the code of its
getter (and putter) by repository URL, commit and ``path/to/file.py:function``.
The library never fetches, imports or runs that code: a reader decides whether to
trust the repository, checks it out at the commit and registers the lens itself.

Example::

    uri = LensPublisher(client).publish(
        name="rgb_to_gray", source_schema_uri=rgb_uri, target_schema_uri=gray_uri,
        code_repository="https://github.com/me/lenses", code_commit="4f2c...",
        getter_path="lenses/vision.py:rgb_to_gray")
    for rec in LensLoader(client).find_by_schemas(rgb_uri): print(rec["getterCode"])
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atdata.atmosphere.records import (
    LENS_COLLECTION,
    SCHEMA_COLLECTION,
    Record,
    RecordLoader,
    timestamp,
)
from atdata.atmosphere.uri import AtUri
from atdata.lens import Lens

if TYPE_CHECKING:
    from atdata.atmosphere.client import AtmosphereClient

__all__ = ["CodeReference", "LensLoader", "LensPublisher"]

_COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


@dataclass(frozen=True)
class CodeReference:
    """Where a function lives: ``repository`` URL, full ``commit`` hash, ``path`` (``file.py:func``).

    >>> CodeReference("https://github.com/me/lenses", "a" * 40, "lenses/vision.py:gray").to_record()["path"]
    'lenses/vision.py:gray'
    """

    repository: str
    commit: str
    path: str
    branch: str | None = None

    def __post_init__(self) -> None:
        if not self.repository.startswith(("https://", "http://", "git@", "ssh://")):
            raise ValueError(f"code repository {self.repository!r} is not a repository URL")
        if not _COMMIT.match(self.commit):
            raise ValueError(
                f"code commit {self.commit!r} must be a full lower-case SHA-1 or SHA-256 hash"
            )
        if ":" not in self.path or self.path.startswith("/") or ".." in self.path.split("/"):
            raise ValueError(
                f"code path {self.path!r} must be 'relative/file.py:function' inside the repository"
            )

    def to_record(self) -> dict[str, str]:
        """The ``#codeReference`` object."""
        out = {"repository": self.repository, "commit": self.commit, "path": self.path}
        if self.branch is not None:
            out["branch"] = self.branch
        return out

    @classmethod
    def from_record(cls, value: Mapping[str, Any]) -> CodeReference:
        """From a ``#codeReference`` object of a (checked) lens record."""
        return cls(value["repository"], value["commit"], value["path"], value.get("branch"))


def _check_schema_uri(uri: str | AtUri, what: str) -> str:
    parsed = AtUri.parse(uri)
    if parsed.collection != SCHEMA_COLLECTION:
        raise ValueError(f"{what} {parsed} is not a {SCHEMA_COLLECTION} record")
    return str(parsed)


def function_path(fn: Any, root: str | Path) -> str:
    """``relative/file.py:qualname`` of a function defined in a file under ``root``.

    >>> function_path(function_path, Path(inspect.getfile(function_path)).parents[2])
    'atdata/atmosphere/lens.py:function_path'
    """
    source = inspect.getsourcefile(fn)
    if source is None:
        raise ValueError(f"{fn!r} has no source file")
    try:
        relative = Path(source).resolve().relative_to(Path(root).resolve())
    except ValueError:
        raise ValueError(f"{fn.__qualname__} is defined in {source}, outside {root}") from None
    return f"{relative.as_posix()}:{fn.__qualname__}"


class LensPublisher:
    """Publish lens records that reference code by repository, commit and path.

    Example::

        uri = LensPublisher(client).publish(
            name="rgb_to_gray", source_schema_uri=rgb_uri, target_schema_uri=gray_uri,
            code_repository="https://github.com/me/lenses", code_commit=commit,
            getter_path="lenses/vision.py:rgb_to_gray", putter_path="lenses/vision.py:gray_to_rgb")
    """

    def __init__(self, client: AtmosphereClient) -> None:
        self.client = client

    def publish(
        self,
        *,
        name: str,
        source_schema_uri: str | AtUri,
        target_schema_uri: str | AtUri,
        description: str | None = None,
        code_repository: str | None = None,
        code_commit: str | None = None,
        getter_path: str | None = None,
        putter_path: str | None = None,
        branch: str | None = None,
        language: str = "python",
        metadata: Mapping[str, Any] | None = None,
        rkey: str | None = None,
    ) -> AtUri:
        """Create a lens record; return its AT-URI.

        Code references need ``code_repository``, ``code_commit`` (a full hash)
        and ``getter_path``; all three or none of them.
        """
        given = [code_repository, code_commit, getter_path]
        if any(v is not None for v in given) and not all(v is not None for v in given):
            raise ValueError(
                "a code reference needs code_repository, code_commit and getter_path together"
            )
        if putter_path is not None and getter_path is None:
            raise ValueError("putter_path needs a getter_path (and the repository and commit)")
        record: dict[str, Any] = {
            "$type": LENS_COLLECTION,
            "name": name,
            "sourceSchema": _check_schema_uri(source_schema_uri, "source_schema_uri"),
            "targetSchema": _check_schema_uri(target_schema_uri, "target_schema_uri"),
            "language": language,
            "createdAt": timestamp(),
        }
        if description is not None:
            record["description"] = description
        if getter_path is not None:
            assert code_repository is not None and code_commit is not None
            record["getterCode"] = CodeReference(
                code_repository, code_commit, getter_path, branch
            ).to_record()
            if putter_path is not None:
                record["putterCode"] = CodeReference(
                    code_repository, code_commit, putter_path, branch
                ).to_record()
        if metadata is not None:
            record["metadata"] = dict(metadata)
        return self.client.create_record(LENS_COLLECTION, record, rkey=rkey)

    def publish_from_lens(
        self,
        lens: Lens[Any, Any],
        *,
        source_schema_uri: str | AtUri,
        target_schema_uri: str | AtUri,
        code_repository: str,
        code_commit: str,
        repository_root: str | Path,
        name: str | None = None,
        description: str | None = None,
        putter: Any = None,
    ) -> AtUri:
        """Publish a :class:`~atdata.Lens` whose code is committed under ``repository_root``.

        The getter's (and ``putter``'s) file paths are taken relative to
        ``repository_root``, the local checkout of ``code_repository`` at ``code_commit``.
        """
        getter = inspect.unwrap(lens)
        return self.publish(
            name=name or getattr(lens, "__name__", "lens"),
            source_schema_uri=source_schema_uri,
            target_schema_uri=target_schema_uri,
            description=description if description is not None else inspect.getdoc(getter),
            code_repository=code_repository,
            code_commit=code_commit,
            getter_path=function_path(getter, repository_root),
            putter_path=function_path(putter, repository_root) if putter is not None else None,
        )


class LensLoader(RecordLoader):
    """Read lens records; the code they reference is never fetched or run.

    Example::

        for rec in LensLoader(client).find_by_schemas(source_uri, target_uri):
            ref = LensLoader.code(rec)   # CodeReference or None
            print(ref.repository, ref.commit, ref.path)
    """

    collection = LENS_COLLECTION

    def find_by_schemas(
        self,
        source_uri: str | AtUri,
        target_uri: str | AtUri | None = None,
        *,
        repo: str | None = None,
    ) -> list[Record]:
        """Lenses from ``source_uri`` (to ``target_uri`` if given), scanning every page."""
        source, target = str(source_uri), None if target_uri is None else str(target_uri)
        return [
            r
            for r in self.iter_all(repo=repo)
            if r["sourceSchema"] == source and (target is None or r["targetSchema"] == target)
        ]

    @staticmethod
    def code(record: Mapping[str, Any], which: str = "getter") -> CodeReference | None:
        """The getter's (or ``which="putter"``'s) code reference, or None (nothing is fetched)."""
        if which not in ("getter", "putter"):
            raise ValueError(f"which must be 'getter' or 'putter', not {which!r}")
        value = record.get(f"{which}Code")
        return CodeReference.from_record(value) if isinstance(value, Mapping) else None
