"""``AppViewClient``: find datasets across the federation through an AppView.

An AppView (``atdata appview serve``) indexes every publisher's datasets,
schemas and lenses. This client asks it and returns entries that open as typed
datasets: the sample type is rebuilt from the indexed schema record, the shards
are read from where the record says (blobs verified against their CIDs).

Example::

    view = AppViewClient("https://appview.example")   # or $ATDATA_APPVIEW_URL
    for entry in view.search("cats", tags=["vision"]):
        print(entry.handle, entry.name, entry.load_ref)
    ds = view.search("cats")[0].to_dataset()
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from atdata.atmosphere.client import AtmosphereError, RecordNotFoundError
from atdata.atmosphere.index import AtmosphereIndexEntry
from atdata.atmosphere.records import Record
from atdata.atmosphere.schema import record_to_type, schema_identity

__all__ = ["AppViewClient", "AppViewEntry", "AppViewError", "AppViewPage", "default_appview_url"]

NSID = "ac.foundation.dataset."
_MAX_ANSWER = 16 * 1024 * 1024
_ROW_KEYS = ("uri", "cid", "did", "handle", "lenses")


class AppViewError(AtmosphereError):
    """The AppView refused a query or could not be reached (``status``, ``error`` as it said)."""


def default_appview_url() -> str | None:
    """``$ATDATA_APPVIEW_URL``, if set."""
    return os.environ.get("ATDATA_APPVIEW_URL") or None


@dataclass(frozen=True)
class AppViewEntry:
    """A dataset the AppView indexed: its record, publisher and, for ``find_readable_as``, lenses."""

    uri: str
    cid: str | None
    did: str
    handle: str | None
    record: Mapping[str, Any] = field(repr=False)
    lenses: tuple[str, ...] = ()
    view: AppViewClient | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_row(cls, row: Mapping[str, Any], view: AppViewClient | None = None) -> AppViewEntry:
        """From one row of an AppView answer."""
        record = {k: v for k, v in row.items() if k not in _ROW_KEYS}
        return cls(
            str(row["uri"]),
            row.get("cid"),
            str(row["did"]),
            row.get("handle"),
            record,
            tuple(row.get("lenses") or ()),
            view,
        )

    @property
    def name(self) -> str:
        """The dataset's name."""
        return str(self.record.get("name", ""))

    @property
    def description(self) -> str | None:
        """The description, if any."""
        return self.record.get("description")

    @property
    def tags(self) -> list[str]:
        """The tags (empty if none)."""
        return list(self.record.get("tags") or [])

    @property
    def license(self) -> str | None:
        """SPDX id or URL of the license, if any."""
        return self.record.get("license")

    @property
    def size(self) -> dict[str, int]:
        """``{"samples", "bytes", "shards"}`` as far as recorded."""
        return dict(self.record.get("size") or {})

    @property
    def schema_ref(self) -> str:
        """AT-URI of the sample schema."""
        return str(self.record.get("schemaRef", ""))

    @property
    def load_ref(self) -> str:
        """What to pass to :func:`atdata.load_dataset`: the AT-URI (exact record)."""
        return self.uri

    @property
    def index_entry(self) -> AtmosphereIndexEntry:
        """The same record as an :class:`~atdata.atmosphere.AtmosphereIndexEntry`."""
        return AtmosphereIndexEntry.from_record(Record(self.record, uri=self.uri, cid=self.cid))

    def sample_type(self) -> type:
        """The sample type rebuilt from the indexed schema record (the PDS is asked if needed)."""
        if self.view is not None:
            try:
                schema = self.view.get_schema(self.schema_ref)
            except RecordNotFoundError:
                schema = None
            if schema is not None:
                return record_to_type(schema, uri=self.schema_ref)
        from atdata.atmosphere.resolve import decode_schema

        return decode_schema(self.schema_ref)

    def to_dataset(self, sample_type: type | None = None, **options: Any) -> Any:
        """A typed :class:`~atdata.Dataset` over the shards (type rebuilt unless given)."""
        from atdata.atmosphere.datasets import open_record
        from atdata.atmosphere.resolve import reader_index

        record = Record(self.record, uri=self.uri, cid=self.cid)
        idx = reader_index()
        return open_record(idx.client, record, sample_type or self.sample_type(), **options)


class AppViewPage(list[AppViewEntry]):
    """A page of entries; ``cursor`` fetches the next one (None at the end)."""

    cursor: str | None = None


class AppViewClient:
    """Queries to an AppView (``url``, default ``$ATDATA_APPVIEW_URL``).

    Example::

        view = AppViewClient("http://127.0.0.1:2590")
        hits = view.search("mnist", tags=["vision"])
        ds = hits[0].to_dataset()
    """

    def __init__(self, url: str | None = None, *, timeout: float = 15.0) -> None:
        url = url or default_appview_url()
        if not url:
            raise AppViewError("no AppView configured: pass its URL or set ATDATA_APPVIEW_URL")
        self.url: str = url.rstrip("/")
        self._http = httpx.Client(timeout=timeout, follow_redirects=False)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def __enter__(self) -> AppViewClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AppViewClient({self.url!r})"

    def query(self, method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Call ``ac.foundation.dataset.{method}`` and return its JSON answer."""
        url = f"{self.url}/xrpc/{NSID}{method}"
        clean = {k: v for k, v in (params or {}).items() if v is not None and v != ()}
        try:
            with self._http.stream("GET", url, params=clean) as response:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > _MAX_ANSWER:
                        raise AppViewError(f"{url}: answer larger than {_MAX_ANSWER:,} bytes")
                status = response.status_code
        except httpx.HTTPError as exc:
            raise AppViewError(
                f"cannot reach the AppView at {self.url}: {type(exc).__name__}"
            ) from None
        try:
            data = json.loads(body)
        except ValueError:
            raise AppViewError(f"{url}: HTTP {status}, answer is not JSON", status=status) from None
        if status != 200 or not isinstance(data, dict):
            error = data.get("error", "") if isinstance(data, dict) else ""
            message = data.get("message", "") if isinstance(data, dict) else ""
            cls = RecordNotFoundError if error == "RecordNotFound" else AppViewError
            raise cls(
                f"{method}: {error or f'HTTP {status}'}: {message}", status=status, error=error
            )
        return data

    def _page(self, data: dict[str, Any], key: str) -> AppViewPage:
        page = AppViewPage(AppViewEntry.from_row(r, self) for r in data.get(key) or [])
        page.cursor = data.get("cursor")
        return page

    def search(
        self,
        q: str | None = None,
        *,
        tags: Iterable[str] = (),
        schema: str | None = None,
        repo: str | None = None,
        license: str | None = None,
        limit: int = 25,
        cursor: str | None = None,
    ) -> AppViewPage:
        """Datasets matching words / ``"phrases"`` in ``q`` and every filter, best first."""
        data = self.query(
            "searchDatasets",
            {
                "q": q,
                "tags": tuple(tags),
                "schema": schema,
                "repo": repo,
                "license": license,
                "limit": limit,
                "cursor": cursor,
            },
        )
        return self._page(data, "datasets")

    def list_datasets(
        self, repo: str | None = None, *, limit: int = 25, cursor: str | None = None
    ) -> AppViewPage:
        """Datasets, newest first (of one publisher when ``repo`` is given)."""
        data = self.query("listDatasets", {"repo": repo, "limit": limit, "cursor": cursor})
        return self._page(data, "datasets")

    def get_dataset(self, uri: str) -> AppViewEntry:
        """One dataset by AT-URI (:class:`~atdata.atmosphere.RecordNotFoundError` if not indexed)."""
        return AppViewEntry.from_row(self.query("getDataset", {"uri": str(uri)}), self)

    def get_schema(self, uri: str) -> Record:
        """One schema record by AT-URI."""
        return self._record(self.query("getSchema", {"uri": str(uri)}))

    def resolve_schema(self, repo: str, name: str, version: str | None = None) -> Record:
        """A publisher's schema by name (latest version unless ``version``)."""
        return self._record(
            self.query("resolveSchema", {"repo": repo, "name": name, "version": version})
        )

    def list_schemas(
        self,
        repo: str | None = None,
        *,
        name: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> list[Record]:
        """Schema records, newest first."""
        data = self.query(
            "listSchemas", {"repo": repo, "name": name, "limit": limit, "cursor": cursor}
        )
        return [self._record(r) for r in data.get("schemas") or []]

    def list_lenses(
        self, *, source: str | None = None, target: str | None = None, limit: int = 100
    ) -> list[Record]:
        """Lens records by source and/or target schema AT-URI."""
        data = self.query("listLenses", {"source": source, "target": target, "limit": limit})
        return [self._record(r) for r in data.get("lenses") or []]

    def find_readable_as(self, schema: type | str, *, limit: int = 100) -> AppViewPage:
        """Datasets whose samples are, or become through published lenses, of ``schema``.

        ``schema`` is a schema AT-URI or a sample type (every indexed schema with the
        type's name and ``{module}.{class}`` identity counts). Each entry's ``lenses``
        lists the lens records to apply, in order (empty when no lens is needed).
        """
        if isinstance(schema, str):
            uris = [schema]
        else:
            identity = schema_identity(schema)
            uris = [
                r.uri
                for r in self.list_schemas(name=schema.__name__)
                if r.get("module") in (None, identity)
            ]
        page = AppViewPage()
        seen: set[str] = set()
        for uri in uris:
            for entry in self._page(
                self.query("findReadableAs", {"schema": uri, "limit": limit}), "datasets"
            ):
                if entry.uri not in seen:
                    seen.add(entry.uri)
                    page.append(entry)
        return page

    def describe(self) -> dict[str, Any]:
        """``describeService``: counts, hosts with cursor and lag, drop counters."""
        return self.query("describeService")

    def health(self) -> dict[str, Any]:
        """The ``/health`` answer (raises :class:`AppViewError` when unhealthy or unreachable)."""
        try:
            response = self._http.get(f"{self.url}/health")
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise AppViewError(
                f"cannot reach the AppView at {self.url}: {type(exc).__name__}"
            ) from None
        if response.status_code != 200:
            raise AppViewError(
                f"{self.url}/health: HTTP {response.status_code}", status=response.status_code
            )
        return data

    @staticmethod
    def _record(row: Mapping[str, Any]) -> Record:
        value = {k: v for k, v in row.items() if k not in _ROW_KEYS}
        return Record(value, uri=str(row["uri"]), cid=row.get("cid"))
