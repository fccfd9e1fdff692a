"""The AppView's HTTP side: XRPC queries, ``/health`` and ``/.well-known/did.json`` on Starlette.

Each query has a lexicon in ``atdata/appview/lexicons/``. Errors are XRPC-shaped
(``{"error": ..., "message": ...}``): 400 ``InvalidRequest`` for bad parameters,
404 ``RecordNotFound``, 500 ``InternalServerError`` (no details) otherwise.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from atdata.appview._display import version_key
from atdata.appview._mirrors import list_mirrors
from atdata.appview._pages import page_routes
from atdata.appview._query import BadParam, SearchParams, parse_limit, parse_text_query
from atdata.appview._store import DATASET, LENS, SCHEMA, Page, StoreError
from atdata.atmosphere.uri import AtUri, is_valid_did, is_valid_handle

if TYPE_CHECKING:
    from atdata.appview._service import AppView

__all__ = ["NSID_PREFIX", "build_app", "query_lexicons"]

log = logging.getLogger("atdata.appview")

NSID_PREFIX = "ac.foundation.dataset."


class NotFound(Exception):
    """Answered with 404 ``RecordNotFound``."""


@cache
def query_lexicons() -> dict[str, dict[str, Any]]:
    """The query lexicons shipped with the AppView, by NSID."""
    out = {}
    folder = resources.files("atdata.appview") / "lexicons"
    for entry in folder.iterdir():
        if entry.name.endswith(".json"):
            doc = json.loads(entry.read_text(encoding="utf-8"))
            out[doc["id"]] = doc
    return out


def _error(status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status)


class _Params:
    """Query parameters, each checked against what the lexicon allows."""

    def __init__(self, request: Request, nsid: str) -> None:
        self._query = request.query_params
        allowed = query_lexicons()[nsid]["defs"]["main"].get("parameters", {}).get("properties", {})
        self._arrays = {k for k, v in allowed.items() if v.get("type") == "array"}
        unknown = sorted(set(self._query.keys()) - set(allowed))
        if unknown:
            raise BadParam(f"unknown parameter {unknown[0][:40]!r}")

    def one(self, name: str, *, required: bool = False, max_len: int = 1000) -> str | None:
        values = self._query.getlist(name)
        if len(values) > 1:
            raise BadParam(f"{name}: given more than once")
        if not values or values[0] == "":
            if required:
                raise BadParam(f"{name}: required")
            return None
        if len(values[0]) > max_len:
            raise BadParam(f"{name}: longer than {max_len} characters")
        return values[0]

    def many(self, name: str, max_items: int = 30) -> tuple[str, ...]:
        values = [v for v in self._query.getlist(name) if v]
        if len(values) > max_items:
            raise BadParam(f"{name}: more than {max_items} values")
        if any(len(v) > 200 for v in values):
            raise BadParam(f"{name}: a value is longer than 200 characters")
        return tuple(values)

    def uri(
        self, name: str, collection: str | None = None, *, required: bool = False
    ) -> str | None:
        value = self.one(name, required=required, max_len=600)
        if value is None:
            return None
        try:
            parsed = AtUri.parse(value)
        except ValueError:
            raise BadParam(f"{name}: {value[:80]!r} is not an AT-URI") from None
        if collection and (parsed.collection != collection or not parsed.rkey):
            raise BadParam(f"{name}: {value[:80]!r} is not an {collection} record URI")
        return value


def _flatten(row: dict[str, Any], **extra: Any) -> dict[str, Any]:
    out = dict(row["record"])
    out.update(uri=row["uri"], cid=row["cid"], did=row["did"], handle=row["handle"])
    out.update(extra)
    return out


def _page(key: str, page: Page) -> dict[str, Any]:
    body: dict[str, Any] = {key: [_flatten(r) for r in page.rows]}
    if page.cursor:
        body["cursor"] = page.cursor
    return body


def build_app(view: AppView) -> Starlette:
    """The Starlette application of ``view`` (its lifespan starts and stops ingestion)."""
    store = view.store

    def resolve_repo(value: str | None, *, strict: bool = False) -> str | None:
        """The DID for a handle or DID; for listings an unknown handle matches nothing ("")."""
        if value is None:
            return None
        if value.startswith("did:"):
            if not is_valid_did(value):
                raise BadParam(f"repo: {value[:80]!r} is not a DID")
            return value
        handle = value.lower().removeprefix("@")
        if not is_valid_handle(handle):
            raise BadParam(f"repo: {value[:80]!r} is neither a DID nor a handle")
        did = store.did_for_handle(handle)
        if did is None and strict:
            raise NotFound(f"no indexed repository has the handle {handle!r}")
        return did or ""

    def search_datasets(p: _Params) -> dict[str, Any]:
        params = SearchParams(
            text=parse_text_query(p.one("q", max_len=500) or ""),
            tags=p.many("tags"),
            schema=p.uri("schema", SCHEMA),
            repo=resolve_repo(p.one("repo", max_len=300)),
            license=p.one("license", max_len=200),
            limit=parse_limit(p.one("limit")),
            cursor=p.one("cursor", max_len=2048),
        )
        return _page("datasets", store.search(params))

    def get_record(p: _Params, collection: str) -> dict[str, Any]:
        uri = p.uri("uri", collection, required=True)
        assert uri is not None
        row = store.get_record(uri)
        if row is None:
            raise NotFound(f"{uri} is not indexed")
        return _flatten(row)

    def get_dataset(p: _Params) -> dict[str, Any]:
        body = get_record(p, DATASET)
        body["mirrors"] = list_mirrors(store, body["uri"], 100, None)["mirrors"]
        return body

    def list_of(collection: str, key: str) -> Callable[[_Params], dict[str, Any]]:
        def handler(p: _Params) -> dict[str, Any]:
            where = []
            if collection == SCHEMA and p.one("name", max_len=200):
                where.append(("name", p.one("name", max_len=200)))
            page = store.list_records(
                collection,
                repo=resolve_repo(p.one("repo", max_len=300)),
                limit=parse_limit(p.one("limit")),
                cursor=p.one("cursor", max_len=2048),
                where=where,
            )
            return _page(key, page)

        return handler

    def resolve_schema(p: _Params) -> dict[str, Any]:
        did = resolve_repo(p.one("repo", required=True, max_len=300), strict=True)
        name = p.one("name", required=True, max_len=200)
        version = p.one("version", max_len=100)
        rows: list[dict[str, Any]] = []
        cursor = None
        for _ in range(20):  # at most 2,000 versions of one schema
            page = store.list_records(
                SCHEMA, repo=did, limit=100, cursor=cursor, where=[("name", str(name))]
            )
            rows.extend(page.rows)
            cursor = page.cursor
            if cursor is None:
                break
        if version is not None:
            rows = [r for r in rows if r["record"].get("version") == version]
        if not rows:
            wanted = f"{name}@{version}" if version else str(name)
            raise NotFound(f"no schema {wanted!r} published by {did}")
        best = max(
            rows,
            key=lambda r: (
                version_key(str(r["record"].get("version", ""))),
                r["record"].get("createdAt", ""),
            ),
        )
        return _flatten(best)

    def list_lenses(p: _Params) -> dict[str, Any]:
        where = []
        source = p.uri("source", SCHEMA)
        target = p.uri("target", SCHEMA)
        if source:
            where.append(("source_schema", source))
        if target:
            where.append(("target_schema", target))
        page = store.list_records(
            LENS,
            limit=parse_limit(p.one("limit")),
            cursor=p.one("cursor", max_len=2048),
            where=where,
        )
        return _page("lenses", page)

    def find_readable_as(p: _Params) -> dict[str, Any]:
        schema = p.uri("schema", SCHEMA, required=True)
        assert schema is not None
        paths = store.readable_paths(schema)
        page = store.search(
            SearchParams(
                schemas=tuple(paths),
                limit=parse_limit(p.one("limit")),
                cursor=p.one("cursor", max_len=2048),
            )
        )
        body: dict[str, Any] = {
            "datasets": [
                _flatten(r, lenses=paths.get(r["record"].get("schemaRef"), [])) for r in page.rows
            ]
        }
        if page.cursor:
            body["cursor"] = page.cursor
        return body

    handlers: dict[str, Callable[[_Params], dict[str, Any]]] = {
        "searchDatasets": search_datasets,
        "getDataset": get_dataset,
        "listMirrors": lambda p: list_mirrors(
            store,
            str(p.uri("uri", DATASET, required=True)),
            parse_limit(p.one("limit")),
            p.one("cursor", max_len=600),
        ),
        "listDatasets": list_of(DATASET, "datasets"),
        "getSchema": lambda p: get_record(p, SCHEMA),
        "listSchemas": list_of(SCHEMA, "schemas"),
        "resolveSchema": resolve_schema,
        "listLenses": list_lenses,
        "findReadableAs": find_readable_as,
        "describeService": lambda p: view.describe(),
    }
    missing = {NSID_PREFIX + k for k in handlers} ^ set(query_lexicons())
    if missing:
        raise RuntimeError(f"queries and shipped lexicons differ: {sorted(missing)}")

    def xrpc(request: Request) -> JSONResponse:
        nsid = request.path_params["nsid"]
        handler = (
            handlers.get(nsid.removeprefix(NSID_PREFIX)) if nsid.startswith(NSID_PREFIX) else None
        )
        if handler is None:
            return _error(404, "MethodNotImplemented", f"{nsid[:100]} is not served here")
        try:
            return JSONResponse(handler(_Params(request, nsid)))
        except BadParam as exc:
            return _error(400, "InvalidRequest", str(exc))
        except NotFound as exc:
            return _error(404, "RecordNotFound", str(exc))
        except StoreError:
            log.exception("store error answering %s", nsid)
            return _error(500, "InternalServerError", "the index is unavailable")

    def health(request: Request) -> JSONResponse:
        try:
            store.hosts()
        except StoreError:
            return JSONResponse({"status": "error", "message": "store unavailable"}, 503)
        return JSONResponse({"status": "ok", "version": view.version})

    def did_json(request: Request) -> JSONResponse:
        did = view.service_did or f"did:web:{request.url.netloc.replace(':', '%3A')}"
        base = view.public_url or f"{request.url.scheme}://{request.url.netloc}"
        return JSONResponse(
            {
                "@context": ["https://www.w3.org/ns/did/v1"],
                "id": did,
                "service": [
                    {"id": "#atdata_appview", "type": "AtdataAppView", "serviceEndpoint": base}
                ],
            }
        )

    return Starlette(
        routes=[
            Route("/xrpc/{nsid}", xrpc, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/xrpc/_health", health, methods=["GET"]),
            Route("/.well-known/did.json", did_json, methods=["GET"]),
            *page_routes(view),
        ],
        lifespan=view.lifespan,
    )
