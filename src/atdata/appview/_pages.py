"""The AppView's web pages and its Croissant endpoint.

Server-rendered HTML from the Jinja2 templates in ``atdata/appview/templates``
(autoescaped: every value from a record is shown as text), one stylesheet, no
JavaScript. Each dataset page embeds its Croissant document in a
``<script type="application/ld+json">`` for crawlers; ``/croissant/{did}/{rkey}``
serves the same document as ``application/ld+json``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from atdata._croissant_entries import CroissantError
from atdata.appview._display import (
    dataset_path,
    load_snippet,
    record_path,
    safe_link,
    schema_rows,
    shard_rows,
    size_summary,
    version_key,
)
from atdata.appview._mirrors import list_mirrors
from atdata.appview._query import BadParam, SearchParams, parse_text_query
from atdata.appview._store import DATASET, LENS, SCHEMA, StoreError
from atdata.atmosphere.uri import is_valid_did, is_valid_handle, is_valid_rkey
from atdata.croissant import spdx_url, to_croissant
from atdata.errors import AtdataError

if TYPE_CHECKING:
    from atdata.appview._service import AppView

__all__ = ["page_routes", "script_json"]

log = logging.getLogger("atdata.appview")

PAGE_SIZE = 20
_LIST_LIMIT = 50
_MAX_READABLE_LISTINGS = 50
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class _PageError(Exception):
    """Answered with an error page of ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@cache
def _templates() -> Environment:
    env = Environment(
        loader=PackageLoader("atdata.appview", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["urlencode"] = lambda params: urlencode(params, doseq=True)
    return env


@cache
def _stylesheet() -> bytes:
    return (resources.files("atdata.appview") / "static" / "atdata.css").read_bytes()


def script_json(doc: Any) -> Markup:
    """``doc`` as JSON safe inside ``<script>``: ``<``, ``>``, ``&`` and line separators escaped.

    >>> str(script_json({"name": "</script><script>alert(1)</script>"}))
    '{"name":"\\\\u003c/script\\\\u003e\\\\u003cscript\\\\u003ealert(1)\\\\u003c/script\\\\u003e"}'
    """
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return Markup(text)  # every markup character is escaped above


def _one(request: Request, name: str, max_len: int = 500) -> str | None:
    value = request.query_params.get(name) or None
    if value is not None and len(value) > max_len:
        raise BadParam(f"{name}: longer than {max_len} characters")
    return value


def _record_uri(request: Request, collection: str) -> str:
    did, rkey = request.path_params["did"], request.path_params["rkey"]
    if not is_valid_did(did) or not is_valid_rkey(rkey):
        raise _PageError(404, "no such record: the address is not a DID and record key")
    return f"at://{did}/{collection}/{rkey}"


def _getrecord(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"uri": row["uri"], "cid": row["cid"], "value": row["record"]}


def _text(value: Any, limit: int = 5000) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _tags(record: Mapping[str, Any]) -> list[str]:
    tags = record.get("tags")
    return [t[:150] for t in tags[:30] if isinstance(t, str)] if isinstance(tags, list) else []


def _license(record: Mapping[str, Any]) -> dict[str, Any] | None:
    text = _text(record.get("license"), 200)
    if not text:
        return None
    return {"text": text, "href": safe_link(spdx_url(text)) or safe_link(text)}


def _publisher(row: Mapping[str, Any]) -> dict[str, Any]:
    handle = row.get("handle")
    return {
        "did": row["did"],
        "handle": handle,
        "path": "/publisher/" + quote(handle or row["did"], safe=":"),
    }


def _summary(row: Mapping[str, Any]) -> dict[str, Any]:
    """A dataset as a result row."""
    rec = row["record"]
    description = _text(rec.get("description"))
    return {
        "name": _text(rec.get("name"), 200) or "(unnamed)",
        "path": dataset_path(row["uri"]),
        "uri": row["uri"],
        "publisher": _publisher(row),
        "description": description[:300] + ("…" if len(description) > 300 else ""),
        "size": size_summary(rec),
        "license": _license(rec),
        "tags": _tags(rec),
        "created": _text(rec.get("createdAt"), 40),
    }


def _schema_link(row: Mapping[str, Any]) -> dict[str, Any]:
    rec = row["record"]
    return {
        "name": _text(rec.get("name"), 200),
        "version": _text(rec.get("version"), 100),
        "path": record_path("schema", row["uri"]),
        "uri": row["uri"],
        "publisher": _publisher(row),
        "created": _text(rec.get("createdAt"), 40),
    }


def _lens(row: Mapping[str, Any], schema_names: Mapping[str, str]) -> dict[str, Any]:
    rec = row["record"]
    code = rec.get("getterCode")
    repo = _text(code.get("repository"), 500) if isinstance(code, Mapping) else ""
    source, target = _text(rec.get("sourceSchema"), 500), _text(rec.get("targetSchema"), 500)
    return {
        "name": _text(rec.get("name"), 100),
        "uri": row["uri"],
        "description": _text(rec.get("description")),
        "publisher": _publisher(row),
        "source": {
            "uri": source,
            "path": record_path("schema", source),
            "name": schema_names.get(source),
        },
        "target": {
            "uri": target,
            "path": record_path("schema", target),
            "name": schema_names.get(target),
        },
        "code": {"href": safe_link(repo), "text": repo} if repo else None,
    }


@dataclass(frozen=True)
class _DatasetContext:
    """An indexed dataset with what its page and its Croissant document need."""

    row: dict[str, Any]
    schema: dict[str, Any] | None
    lenses: list[dict[str, Any]]
    pds: str | None
    page_url: str

    def croissant(self) -> dict[str, Any]:
        """Its Croissant document (:class:`CroissantError` if the record cannot be described)."""
        return to_croissant(
            _getrecord(self.row),
            schema=_getrecord(self.schema) if self.schema else None,
            lenses=[{"uri": lens["uri"], "value": lens["record"]} for lens in self.lenses],
            creator={"did": self.row["did"], "handle": self.row["handle"] or ""},
            url=self.page_url,
            pds=self.pds,
        )


class _Pages:
    """The page handlers of one AppView."""

    def __init__(self, view: AppView) -> None:
        self.view = view
        self.store = view.store

    # -- helpers

    def _base(self, request: Request) -> str:
        return (self.view.public_url or f"{request.url.scheme}://{request.url.netloc}").rstrip("/")

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        """``template`` rendered with ``context``, sent with the security headers."""
        context.setdefault("q", "")
        context.setdefault("title", "")
        html = _templates().get_template(template).render(**context)
        return HTMLResponse(html, status_code=status, headers=_HEADERS)

    def _did_of(self, who: str) -> str:
        """The DID of a visible publisher named by handle or DID (404 otherwise)."""
        if who.startswith("did:"):
            did: str | None = who if is_valid_did(who) else None
        elif is_valid_handle(who.lower().removeprefix("@")):
            did = self.store.did_for_handle(who.lower().removeprefix("@"))
        else:
            did = None
        account = self.store.account(did) if did else None
        if account is None or not account.active:
            raise _PageError(404, f"no indexed publisher {who[:100]!r}")
        return account.did

    def _pds(self, did: str) -> str | None:
        """The PDS serving ``did``'s blobs, from the identity cache (resolved at ingest)."""
        try:
            return self.view.identities.get(did).pds
        except AtdataError:
            return None

    def _schema_names(self, uris: set[str]) -> dict[str, str]:
        out = {}
        for uri in list(uris)[:100]:
            row = self.store.get_record(uri) if record_path("schema", uri) else None
            if row is not None:
                rec = row["record"]
                out[uri] = f"{_text(rec.get('name'), 200)}@{_text(rec.get('version'), 100)}"
        return out

    def _names(self, uris: set[str]) -> dict[str, str]:
        """Display names of lens records, by AT-URI."""
        out = {}
        for uri in list(uris)[:200]:
            row = self.store.get_record(uri) if record_path("lens", uri) else None
            if row is not None:
                out[uri] = _text(row["record"].get("name"), 100) or uri
        return out

    def _dataset_context(self, request: Request) -> _DatasetContext:
        uri = _record_uri(request, DATASET)
        row = self.store.get_record(uri)
        if row is None:
            raise _PageError(404, f"{uri} is not indexed")
        ref = _text(row["record"].get("schemaRef"), 500)
        schema = self.store.get_record(ref) if record_path("schema", ref) else None
        storage = row["record"].get("storage")
        blobs = isinstance(storage, Mapping) and isinstance(storage.get("blobs"), list)
        return _DatasetContext(
            row=row,
            schema=schema,
            lenses=self._lens_rows(schema["uri"]) if schema else [],
            pds=self._pds(row["did"]) if blobs else None,
            page_url=self._base(request) + (dataset_path(uri) or ""),
        )

    def _lens_display(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ends = {
            _text(r["record"].get(k), 500) for r in rows for k in ("sourceSchema", "targetSchema")
        }
        names = self._schema_names(ends)
        return [_lens(r, names) for r in rows]

    def _lens_rows(self, schema_uri: str) -> list[dict[str, Any]]:
        rows = []
        for column in ("source_schema", "target_schema"):
            rows += self.store.list_records(
                LENS, limit=_LIST_LIMIT, cursor=None, where=[(column, schema_uri)]
            ).rows
        return rows

    def _readable(self, schema: str) -> list[dict[str, Any]]:
        """The newest datasets of other schemas that reach ``schema`` through lenses."""
        paths = self.store.readable_paths(schema)
        found: list[tuple[dict[str, Any], list[str]]] = []
        # One indexed listing per source schema (an IN list would scan in date order).
        for source in list(paths)[:_MAX_READABLE_LISTINGS]:
            rows = self.store.search(SearchParams(schema=source, limit=PAGE_SIZE)).rows
            found += [(r, paths[source]) for r in rows]
        found.sort(key=lambda rv: rv[0]["uri"])
        found.sort(key=lambda rv: _text(rv[0]["record"].get("createdAt"), 40), reverse=True)
        found = found[:PAGE_SIZE]
        names = self._names({lens for _, via in found for lens in via})
        return [{**_summary(r), "via": [names.get(u, u) for u in via]} for r, via in found]

    # -- pages

    def home(self, request: Request) -> Response:
        recent = self.store.search(SearchParams(limit=PAGE_SIZE))
        return self.render(
            "home.html", title="Datasets", datasets=[_summary(r) for r in recent.rows]
        )

    def search(self, request: Request) -> Response:
        q = _one(request, "q") or ""
        tags = tuple(t[:200] for t in request.query_params.getlist("tag") if t)[:30]
        schema = _one(request, "schema", 600)
        if schema and not record_path("schema", schema):
            raise BadParam(f"schema: {schema[:80]!r} is not a schema AT-URI")
        publisher = _one(request, "publisher", 300)
        license = _one(request, "license", 200)
        cursor = _one(request, "cursor", 2048)
        repo = None
        if publisher:
            try:
                repo = self._did_of(publisher)
            except _PageError:
                repo = ""  # matches nothing
        page = self.store.search(
            SearchParams(
                text=parse_text_query(q),
                tags=tags,
                schema=schema,
                repo=repo,
                license=license,
                limit=PAGE_SIZE,
                cursor=cursor,
            )
        )
        params: dict[str, Any] = {"q": q, "tag": list(tags)}
        for key, value in (("schema", schema), ("publisher", publisher), ("license", license)):
            if value:
                params[key] = value
        next_href = None
        if page.cursor:
            next_href = "/search?" + urlencode({**params, "cursor": page.cursor}, doseq=True)
        return self.render(
            "search.html",
            title=f"Search: {q}" if q else "Search",
            q=q,
            tags=list(tags),
            filters=[(k, v) for k, v in params.items() if k not in ("q", "tag")],
            datasets=[_summary(r) for r in page.rows],
            next_href=next_href,
            first_href="/search?" + urlencode(params, doseq=True) if cursor else None,
        )

    def dataset(self, request: Request) -> Response:
        ctx = self._dataset_context(request)
        row, schema = ctx.row, ctx.schema
        rec = row["record"]
        uri = row["uri"]
        problems = []
        try:
            shards, nshards, splits = shard_rows(uri, rec, ctx.pds)
        except CroissantError as exc:
            shards, nshards, splits = [], 0, []
            problems.append(str(exc))
        jsonld = None
        try:
            jsonld = script_json(ctx.croissant())
        except CroissantError as exc:
            problems.append(f"no Croissant metadata: {exc}")
        schema_uri = schema["uri"] if schema else None
        lenses = self._lens_display(ctx.lenses)
        name = _text(rec.get("name"), 200)
        return self.render(
            "dataset.html",
            title=name,
            name=name,
            uri=uri,
            cid=row["cid"],
            publisher=_publisher(row),
            description=_text(rec.get("description")),
            license=_license(rec),
            tags=_tags(rec),
            size=size_summary(rec),
            created=_text(rec.get("createdAt"), 40),
            schema_ref=_text(rec.get("schemaRef"), 500),
            schema=_schema_link(schema) if schema else None,
            fields=schema_rows(schema["record"]) if schema else [],
            shards=shards,
            nshards=nshards,
            splits=[
                {"name": n, "shards": idx[:50], "more": max(0, len(idx) - 50)} for n, idx in splits
            ],
            mirrors=[
                _mirror(m) for m in list_mirrors(self.store, uri, _LIST_LIMIT, None)["mirrors"]
            ],
            lenses_from=[ln for ln in lenses if ln["source"]["uri"] == schema_uri],
            lenses_to=[ln for ln in lenses if ln["target"]["uri"] == schema_uri],
            snippet=load_snippet(row["handle"], row["did"], name, [n for n, _ in splits]),
            croissant_path="/croissant" + (dataset_path(uri) or "").removeprefix("/dataset"),
            jsonld=jsonld,
            page_url=ctx.page_url,
            problems=problems,
        )

    def schema(self, request: Request) -> Response:
        uri = _record_uri(request, SCHEMA)
        row = self.store.get_record(uri)
        if row is None:
            raise _PageError(404, f"{uri} is not indexed")
        rec = row["record"]
        name = _text(rec.get("name"), 200)
        versions = self.store.list_records(
            SCHEMA, repo=row["did"], limit=100, cursor=None, where=[("name", name)]
        ).rows
        versions.sort(
            key=lambda r: version_key(_text(r["record"].get("version"), 100)), reverse=True
        )
        using = self.store.search(SearchParams(schema=uri, limit=PAGE_SIZE))
        readable = self._readable(uri)
        lenses = self._lens_display(self._lens_rows(uri))
        return self.render(
            "schema.html",
            title=f"{name}@{_text(rec.get('version'), 100)}",
            schema=_schema_link(row),
            description=_text(rec.get("description"), 10000),
            module=_text(rec.get("module"), 500),
            cid=row["cid"],
            fields=schema_rows(rec),
            versions=[_schema_link(v) for v in versions],
            using=[_summary(r) for r in using.rows],
            using_more="/search?" + urlencode({"schema": uri}) if using.cursor else None,
            readable=readable,
            lenses_from=[ln for ln in lenses if ln["source"]["uri"] == uri],
            lenses_to=[ln for ln in lenses if ln["target"]["uri"] == uri],
        )

    def publisher(self, request: Request) -> Response:
        who = request.path_params["who"][:300]
        did = self._did_of(who)
        account = self.store.account(did)
        handle = account.handle if account else None
        cursor = _one(request, "cursor", 2048)
        datasets = self.store.list_records(DATASET, repo=did, limit=PAGE_SIZE, cursor=cursor)
        schemas = self.store.list_records(SCHEMA, repo=did, limit=_LIST_LIMIT, cursor=None)
        lenses = self.store.list_records(LENS, repo=did, limit=_LIST_LIMIT, cursor=None)
        here = "/publisher/" + quote(handle or did, safe=":")
        return self.render(
            "publisher.html",
            title=handle or did,
            did=did,
            handle=handle,
            datasets=[_summary(r) for r in datasets.rows],
            next_href=f"{here}?{urlencode({'cursor': datasets.cursor})}"
            if datasets.cursor
            else None,
            first_href=here if cursor else None,
            schemas=[_schema_link(r) for r in schemas.rows],
            lenses=[_lens(r, {}) for r in lenses.rows],
        )

    def croissant(self, request: Request) -> Response:
        try:
            doc = self._dataset_context(request).croissant()
        except _PageError as exc:
            return JSONResponse({"error": "RecordNotFound", "message": str(exc)}, 404)
        except CroissantError as exc:
            return JSONResponse({"error": "InvalidRecord", "message": str(exc)}, 422)
        return JSONResponse(
            doc,
            media_type="application/ld+json",
            headers={"Access-Control-Allow-Origin": "*", "X-Content-Type-Options": "nosniff"},
        )

    def stylesheet(self, request: Request) -> Response:
        return Response(
            _stylesheet(),
            media_type="text/css",
            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )


def page_routes(view: AppView) -> list[BaseRoute]:
    """The routes of the web pages, the Croissant endpoint and the stylesheet."""
    pages = _Pages(view)

    def guarded(handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            try:
                return handler(request)
            except _PageError as exc:
                status, message = exc.status, str(exc)
            except BadParam as exc:
                status, message = 400, str(exc)
            except StoreError:
                log.exception("store error answering %s", request.url.path)
                status, message = 503, "the index is unavailable"
            return pages.render(
                "error.html",
                status=status,
                title=f"Error {status}",
                code=status,
                message=message,
            )

        return endpoint

    return [
        Route("/", guarded(pages.home), methods=["GET"]),
        Route("/search", guarded(pages.search), methods=["GET"]),
        Route("/dataset/{did}/{rkey}", guarded(pages.dataset), methods=["GET"]),
        Route("/schema/{did}/{rkey}", guarded(pages.schema), methods=["GET"]),
        Route("/publisher/{who}", guarded(pages.publisher), methods=["GET"]),
        Route("/croissant/{did}/{rkey}", pages.croissant, methods=["GET"]),
        Route("/static/atdata.css", pages.stylesheet, methods=["GET"]),
    ]


_MIRROR_STATUS = {
    "current": "an exact copy of this version",
    "changed": "a copy of an earlier version (the original changed since)",
    "deleted": "the original record is deleted; this copy is kept",
}


def _mirror(row: Mapping[str, Any]) -> dict[str, Any]:
    """A verified mirror as the dataset page shows it: holder, record, storage, status."""
    storage, subject = row.get("storage"), row.get("subject")
    blobs = isinstance(storage, Mapping) and isinstance(storage.get("blobs"), list)
    pinned = subject.get("cid") if isinstance(subject, Mapping) else None
    sha256 = row.get("sha256")
    return {
        "holder": _publisher(row),
        "uri": _text(row.get("uri"), 500),
        "storage": "PDS blobs" if blobs else "external URLs",
        "shards": len(sha256) if isinstance(sha256, list) else 0,
        "created": _text(row.get("createdAt"), 40),
        "status": _MIRROR_STATUS.get(str(row.get("originalStatus")), "unknown"),
        "pinned": _text(pinned, 200),
    }
