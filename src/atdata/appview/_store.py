"""The AppView's store: the provider contract and the SQL that SQLite and PostgreSQL share.

One table holds every indexed record (any ``ac.foundation.dataset.*`` collection),
with the columns the queries filter on pulled out of the record; tags sit in a
side table; each provider adds its own full-text index. Writes arrive as one
:class:`Changes` per transaction, which also carries the host cursor they
advance, so a crash can neither lose nor double an event.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from atdata.appview._mirrors import UNVERIFIED, VALID, verdict
from atdata.appview._query import SearchParams, decode_cursor, encode_cursor
from atdata.atmosphere.mirrors import MIRROR_COLLECTION
from atdata.errors import AtdataError

MAX_LENS_HOPS = 8
"""The longest lens chain ``findReadableAs`` and the schema pages follow."""
MAX_READABLE_SCHEMAS = 500
"""At most this many schemas are read as one through lenses."""

__all__ = [
    "DATASET",
    "LENS",
    "SCHEMA",
    "Account",
    "AppViewStore",
    "Changes",
    "Page",
    "RecordRow",
    "SqlStore",
    "StoreError",
]

DATASET = "ac.foundation.dataset.record"
SCHEMA = "ac.foundation.dataset.sampleSchema"
LENS = "ac.foundation.dataset.lens"
COLLECTION_PREFIX = "ac.foundation.dataset."


class StoreError(AtdataError):
    """The AppView's database cannot be opened, migrated or read."""


@dataclass(frozen=True)
class RecordRow:
    """One indexed record (JSON form) with where it lives."""

    uri: str
    did: str
    collection: str
    rkey: str
    cid: str
    record: dict[str, Any]


@dataclass(frozen=True)
class Account:
    """A repository's state: handle (verified), whether it is visible, last applied revision."""

    did: str
    handle: str | None = None
    active: bool = True
    status: str | None = None
    rev: str | None = None
    host: str | None = None


@dataclass
class Changes:
    """Everything one transaction writes.

    ``replace`` names repositories whose records are replaced wholesale by the
    ``upserts`` (a backfill); ``cursor`` is ``(host, seq)`` to store with them.
    """

    upserts: list[RecordRow] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    accounts: list[Account] = field(default_factory=list)
    replace: set[str] = field(default_factory=set)
    cursor: tuple[str, int] | None = None
    backfilled: str | None = None


@dataclass(frozen=True)
class Page:
    """Rows of a listing and the cursor of the next page (None at the end)."""

    rows: list[dict[str, Any]]
    cursor: str | None


def _columns(row: RecordRow) -> dict[str, Any]:
    """The queryable columns of a record."""
    rec = row.record
    tags = rec.get("tags") if row.collection == DATASET else None
    text = " ".join(
        str(v) for v in (rec.get("description"), " ".join(tags or ())) if isinstance(v, str) and v
    )
    return {
        "uri": row.uri,
        "did": row.did,
        "collection": row.collection,
        "rkey": row.rkey,
        "cid": row.cid,
        "record": json.dumps(rec, separators=(",", ":"), ensure_ascii=False),
        "name": rec.get("name") if isinstance(rec.get("name"), str) else None,
        "version": rec.get("version") if row.collection == SCHEMA else None,
        "schema_ref": rec.get("schemaRef") if row.collection == DATASET else None,
        "source_schema": rec.get("sourceSchema") if row.collection == LENS else None,
        "target_schema": rec.get("targetSchema") if row.collection == LENS else None,
        "license": rec.get("license") if row.collection == DATASET else None,
        "created_at": str(rec.get("createdAt") or ""),
        "indexed_at": time.time(),
        "search_text": text,
        "tags": sorted({t for t in tags or () if isinstance(t, str)}),
    }


class AppViewStore(ABC):
    """Where the AppView keeps records, accounts and host cursors."""

    location: str

    @abstractmethod
    def apply(self, changes: Changes) -> None:
        """Write ``changes`` in one transaction (all or nothing)."""

    @abstractmethod
    def account(self, did: str) -> Account | None:
        """The stored state of ``did``, if any."""

    @abstractmethod
    def hosts(self) -> dict[str, dict[str, Any]]:
        """``{host: {"cursor", "backfilled", "updatedAt"}}``."""

    @abstractmethod
    def get_record(self, uri: str) -> dict[str, Any] | None:
        """The row of one visible record."""

    @abstractmethod
    def search(self, params: SearchParams) -> Page:
        """Datasets matching ``params``, by relevance then recency."""

    @abstractmethod
    def list_records(
        self,
        collection: str,
        *,
        repo: str | None = None,
        limit: int,
        cursor: str | None,
        where: Sequence[tuple[str, str]] = (),
    ) -> Page:
        """Records of ``collection``, newest first, optionally filtered by column equality."""

    @abstractmethod
    def mirrors(self, uri: str, *, limit: int, cursor: str | None) -> Page:
        """The verified mirrors of the dataset ``uri`` by AT-URI, rows as :meth:`get_record`'s
        plus ``pinned``, the CID of the original each one copies."""

    @abstractmethod
    def lens_edges(self) -> list[tuple[str, str, str]]:
        """Every visible lens as ``(uri, source schema, target schema)``."""

    def readable_paths(self, schema: str) -> dict[str, list[str]]:
        """Schemas whose samples read as ``schema`` through published lenses, each with its
        lens path (lens AT-URIs, source first); ``schema`` itself maps to ``[]``.

        A breadth-first walk backwards over :meth:`lens_edges`, bounded in hops and schemas.
        """
        into: dict[str, list[tuple[str, str]]] = {}
        for uri, source, target in self.lens_edges():
            if source and target:
                into.setdefault(target, []).append((uri, source))
        paths: dict[str, list[str]] = {schema: []}
        queue = deque([schema])
        while queue and len(paths) < MAX_READABLE_SCHEMAS:
            current = queue.popleft()
            if len(paths[current]) >= MAX_LENS_HOPS:
                continue
            for lens_uri, source in into.get(current, ()):
                if source not in paths:
                    paths[source] = [lens_uri, *paths[current]]
                    queue.append(source)
        return paths

    @abstractmethod
    def did_for_handle(self, handle: str) -> str | None:
        """The DID whose verified handle is ``handle``."""

    @abstractmethod
    def counts(self) -> dict[str, int]:
        """Visible records per collection, plus ``accounts``."""

    def maintain(self) -> None:  # noqa: B027 - stores without upkeep keep this no-op
        """Refresh statistics and indexes after bulk writes (a backfill)."""

    def close(self) -> None:  # noqa: B027 - stores without resources keep this no-op
        """Release connections."""


class SqlStore(AppViewStore):
    """The SQL shared by the providers; subclasses supply connections, DDL and full-text search."""

    _placeholder = "?"
    _migrations: Sequence[str] = ()

    # -- provided by subclasses

    def _transaction(self, write: bool = True) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _fts_delete(self, cur: Any, uris: Sequence[str]) -> None:
        """Drop the full-text rows of ``uris`` (before their records go)."""

    def _fts_insert(self, cur: Any, uris: Sequence[str]) -> None:
        """Index the records ``uris`` (after they are written)."""

    def _ranked_sql(self, params: SearchParams) -> tuple[str, list[Any]]:
        """``SELECT uri, created_at, rank`` of the text matches (lower rank is better)."""
        raise NotImplementedError

    def _search_sql(self, params: SearchParams, key: list[Any] | None) -> tuple[str, list[Any]]:
        """The ranked page: sort narrow rows (uri, rank, date), then fetch the records of the page."""
        ranked, args = self._ranked_sql(params)
        page = f"SELECT * FROM ({ranked}) AS m"
        if key is not None:
            page += (
                " WHERE m.rank > ? OR (m.rank = ? AND (m.created_at < ? OR "
                "(m.created_at = ? AND m.uri > ?)))"
            )
            args += [key[0], key[0], key[1], key[1], key[2]]
        page += " ORDER BY m.rank, m.created_at DESC, m.uri LIMIT ?"
        sql = (
            "SELECT r.uri, r.cid, r.did, a.handle, r.record, r.created_at, r.indexed_at, t.rank "
            f"FROM ({page}) AS t JOIN records r ON r.uri = t.uri JOIN accounts a ON a.did = r.did "
            "ORDER BY t.rank, t.created_at DESC, t.uri"
        )
        return sql, [*args, params.limit + 1]

    # -- shared

    def _sql(self, text: str) -> str:
        return text if self._placeholder == "?" else text.replace("?", self._placeholder)

    def _migrate(self) -> None:
        with self._transaction() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS appview_meta (key TEXT PRIMARY KEY, value TEXT)"
            )
            cur.execute(self._sql("SELECT value FROM appview_meta WHERE key = ?"), ("version",))
            row = cur.fetchone()
            current = int(row[0]) if row else 0
            if current > len(self._migrations):
                raise StoreError(
                    f"{self.location}: schema version {current} is newer than this atdata "
                    f"({len(self._migrations)}); upgrade atdata"
                )
            for version in range(current + 1, len(self._migrations) + 1):
                for statement in self._migrations[version - 1].split(";\n"):
                    if statement.strip():
                        cur.execute(statement)
            cur.execute(
                self._sql(
                    "INSERT INTO appview_meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                ),
                ("version", str(len(self._migrations))),
            )

    def schema_version(self) -> int:
        """The applied migration number."""
        with self._transaction(write=False) as cur:
            cur.execute(self._sql("SELECT value FROM appview_meta WHERE key = ?"), ("version",))
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def apply(self, changes: Changes) -> None:
        sql = self._sql
        with self._transaction() as cur:
            for did in changes.replace:
                cur.execute(sql("SELECT uri FROM records WHERE did = ?"), (did,))
                gone = [r[0] for r in cur.fetchall()]
                self._delete(cur, gone)
            self._delete(cur, changes.deletes)
            if changes.upserts:
                rows = [_columns(r) for r in changes.upserts]
                self._delete(cur, [r["uri"] for r in rows])
                cur.executemany(
                    sql(
                        "INSERT INTO records (uri, did, collection, rkey, cid, record, name, "
                        "version, schema_ref, source_schema, target_schema, license, created_at, "
                        "indexed_at, search_text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    ),
                    [
                        (
                            r["uri"],
                            r["did"],
                            r["collection"],
                            r["rkey"],
                            r["cid"],
                            r["record"],
                            r["name"],
                            r["version"],
                            r["schema_ref"],
                            r["source_schema"],
                            r["target_schema"],
                            r["license"],
                            r["created_at"],
                            r["indexed_at"],
                            r["search_text"],
                        )
                        for r in rows
                    ],
                )
                tags = [(r["uri"], t, r["created_at"]) for r in rows for t in r["tags"]]
                if tags:
                    cur.executemany(
                        sql("INSERT INTO record_tags (uri, tag, created_at) VALUES (?, ?, ?)"), tags
                    )
                self._fts_insert(cur, [r["uri"] for r in rows])
            for acc in changes.accounts:
                cur.execute(
                    sql(
                        "INSERT INTO accounts (did, handle, active, status, rev, host) "
                        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (did) DO UPDATE SET "
                        "handle = excluded.handle, active = excluded.active, "
                        "status = excluded.status, rev = excluded.rev, host = excluded.host"
                    ),
                    (acc.did, acc.handle, int(acc.active), acc.status, acc.rev, acc.host),
                )
            if changes.cursor is not None:
                host, seq = changes.cursor
                cur.execute(
                    sql(
                        "INSERT INTO hosts (host, cursor, backfilled, updated_at) VALUES (?, ?, 0, ?) "
                        "ON CONFLICT (host) DO UPDATE SET cursor = excluded.cursor, "
                        "updated_at = excluded.updated_at"
                    ),
                    (host, seq, time.time()),
                )
            self._index_mirrors(cur, changes)
            if changes.backfilled is not None:
                cur.execute(
                    sql(
                        "INSERT INTO hosts (host, cursor, backfilled, updated_at) VALUES (?, NULL, 1, ?) "
                        "ON CONFLICT (host) DO UPDATE SET backfilled = 1"
                    ),
                    (changes.backfilled, time.time()),
                )

    def _delete(self, cur: Any, uris: Sequence[str]) -> None:
        if not uris:
            return
        self._fts_delete(cur, uris)
        params = [(u,) for u in uris]
        cur.executemany(self._sql("DELETE FROM record_tags WHERE uri = ?"), params)
        cur.executemany(self._sql("DELETE FROM records WHERE uri = ?"), params)

    def _index_mirrors(self, cur: Any, changes: Changes) -> None:
        """Record the subject of upserted mirrors and verify them (and mirrors waiting for an original)."""
        sql = self._sql
        for row in changes.upserts:
            if row.collection == MIRROR_COLLECTION:
                subject = row.record.get("subject") or {}
                s_uri, s_cid = str(subject.get("uri", "")), str(subject.get("cid", ""))
                cur.execute(sql("SELECT cid, record FROM records WHERE uri = ?"), (s_uri,))
                found = cur.fetchone()
                checked = verdict(
                    (found[0], found[1]) if found and found[0] == s_cid else None,
                    s_uri,
                    row.record,
                    row.uri,
                )
                cur.execute(
                    sql(
                        "INSERT INTO mirrors (uri, subject_uri, subject_cid, verified) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (uri) DO UPDATE SET subject_uri = excluded.subject_uri, "
                        "subject_cid = excluded.subject_cid, verified = excluded.verified"
                    ),
                    (row.uri, s_uri, s_cid, checked),
                )
            elif row.collection == DATASET:
                cur.execute(
                    sql(
                        "SELECT m.uri, r.record FROM mirrors m JOIN records r ON r.uri = m.uri "
                        "WHERE m.subject_uri = ? AND m.subject_cid = ? AND m.verified = ?"
                    ),
                    (row.uri, row.cid, UNVERIFIED),
                )
                original = (row.cid, json.dumps(row.record))
                for m_uri, text in cur.fetchall():
                    checked = verdict(original, row.uri, json.loads(text), m_uri)
                    cur.execute(
                        sql("UPDATE mirrors SET verified = ? WHERE uri = ?"), (checked, m_uri)
                    )

    def account(self, did: str) -> Account | None:
        with self._transaction(write=False) as cur:
            cur.execute(
                self._sql(
                    "SELECT did, handle, active, status, rev, host FROM accounts WHERE did = ?"
                ),
                (did,),
            )
            row = cur.fetchone()
        if row is None:
            return None
        return Account(row[0], row[1], bool(row[2]), row[3], row[4], row[5])

    def hosts(self) -> dict[str, dict[str, Any]]:
        with self._transaction(write=False) as cur:
            cur.execute("SELECT host, cursor, backfilled, updated_at FROM hosts ORDER BY host")
            return {
                r[0]: {"cursor": r[1], "backfilled": bool(r[2]), "updatedAt": r[3]}
                for r in cur.fetchall()
            }

    _ROW = (
        "r.uri, r.cid, r.did, a.handle, r.record, r.created_at, r.indexed_at "
        "FROM records r JOIN accounts a ON a.did = r.did AND a.active = 1"
    )

    @staticmethod
    def _row(row: Sequence[Any]) -> dict[str, Any]:
        return {
            "uri": row[0],
            "cid": row[1],
            "did": row[2],
            "handle": row[3],
            "record": json.loads(row[4]),
            "indexedAt": row[6],
        }

    def get_record(self, uri: str) -> dict[str, Any] | None:
        with self._transaction(write=False) as cur:
            cur.execute(self._sql(f"SELECT {self._ROW} WHERE r.uri = ?"), (uri,))
            row = cur.fetchone()
        return self._row(row) if row else None

    def mirrors(self, uri: str, *, limit: int, cursor: str | None) -> Page:
        args: list[Any] = [uri, VALID]
        where = "m.subject_uri = ? AND m.verified = ?"
        if cursor:
            where += " AND r.uri > ?"
            args.append(cursor)
        with self._transaction(write=False) as cur:
            cur.execute(
                self._sql(
                    "SELECT r.uri, r.cid, r.did, a.handle, r.record, r.created_at, r.indexed_at, "
                    "m.subject_cid FROM mirrors m JOIN records r ON r.uri = m.uri "
                    f"JOIN accounts a ON a.did = r.did AND a.active = 1 WHERE {where} "
                    "ORDER BY r.uri LIMIT ?"
                ),
                [*args, limit + 1],
            )
            rows = cur.fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(
            [{**self._row(raw), "pinned": raw[7]} for raw in rows], rows[-1][0] if more else None
        )

    def _filters(self, params: SearchParams, *, skip_tags: int = 0) -> tuple[str, list[Any]]:
        clauses = ["r.collection = ?"]
        args: list[Any] = [DATASET]
        if params.schema:
            clauses.append("r.schema_ref = ?")
            args.append(params.schema)
        if params.schemas:
            clauses.append("r.schema_ref IN (" + ", ".join("?" * len(params.schemas)) + ")")
            args.extend(params.schemas)
        if params.repo is not None:
            clauses.append("r.did = ?")
            args.append(params.repo)
        if params.license:
            clauses.append("r.license = ?")
            args.append(params.license)
        for tag in params.tags[skip_tags:]:
            # A keyed probe per candidate row (primary key tag, uri), not a list of the tag's rows.
            clauses.append("EXISTS (SELECT 1 FROM record_tags x WHERE x.tag = ? AND x.uri = r.uri)")
            args.append(tag)
        return " AND ".join(clauses), args

    def search(self, params: SearchParams) -> Page:
        if params.text is None:
            # With a tag, walk that tag's (created_at, uri) index: newest first, no sort.
            tag = params.tags[0] if params.tags else None
            where, args = self._filters(params, skip_tags=1 if tag else 0)
            key = decode_cursor(params.cursor, "recent", (str, str))
            return self._recent(where, args, params.limit, key, tag=tag)
        key = decode_cursor(params.cursor, "rank", (float, str, str))
        query, args = self._search_sql(params, key)
        with self._transaction(write=False) as cur:
            cur.execute(self._sql(query), args)
            rows = cur.fetchall()
        more = len(rows) > params.limit
        rows = rows[: params.limit]
        cursor = None
        if more:
            last = rows[-1]
            cursor = encode_cursor("rank", [float(last[7]), last[5], last[0]])
        return Page([self._row(r) for r in rows], cursor)

    def _recent(
        self, where: str, args: list[Any], limit: int, key: list[Any] | None, tag: str | None = None
    ) -> Page:
        # Order and cut narrow rows first; fetch the records of the page only.
        src = "t0" if tag else "r"
        if key is not None:
            where += f" AND ({src}.created_at < ? OR ({src}.created_at = ? AND {src}.uri > ?))"
            args = [*args, key[0], key[0], key[1]]
        if tag:
            where = f"t0.tag = ? AND {where}"
            args = [tag, *args]
        page = (
            f"SELECT {src}.uri AS uri, {src}.created_at AS created_at FROM "
            + ("record_tags t0 JOIN records r ON r.uri = t0.uri " if tag else "records r ")
            + "JOIN accounts a ON a.did = r.did AND a.active = 1 "
            f"WHERE {where} ORDER BY {src}.created_at DESC, {src}.uri LIMIT ?"
        )
        query = (
            f"SELECT r.uri, r.cid, r.did, a.handle, r.record, r.created_at, r.indexed_at "
            f"FROM ({page}) AS t JOIN records r ON r.uri = t.uri JOIN accounts a ON a.did = r.did "
            "ORDER BY t.created_at DESC, t.uri"
        )
        with self._transaction(write=False) as cur:
            cur.execute(self._sql(query), [*args, limit + 1])
            rows = cur.fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = encode_cursor("recent", [rows[-1][5], rows[-1][0]]) if more else None
        return Page([self._row(r) for r in rows], cursor)

    def list_records(
        self,
        collection: str,
        *,
        repo: str | None = None,
        limit: int,
        cursor: str | None,
        where: Sequence[tuple[str, str]] = (),
    ) -> Page:
        clauses = ["r.collection = ?"]
        args: list[Any] = [collection]
        if repo is not None:
            clauses.append("r.did = ?")
            args.append(repo)
        for column, value in where:
            clauses.append(f"r.{column} = ?")
            args.append(value)
        key = decode_cursor(cursor, "recent", (str, str))
        return self._recent(" AND ".join(clauses), args, limit, key)

    def lens_edges(self) -> list[tuple[str, str, str]]:
        with self._transaction(write=False) as cur:
            cur.execute(
                self._sql(
                    "SELECT r.uri, r.source_schema, r.target_schema FROM records r "
                    "JOIN accounts a ON a.did = r.did AND a.active = 1 WHERE r.collection = ?"
                ),
                (LENS,),
            )
            return [(r[0], r[1], r[2]) for r in cur.fetchall()]

    def did_for_handle(self, handle: str) -> str | None:
        with self._transaction(write=False) as cur:
            cur.execute(self._sql("SELECT did FROM accounts WHERE handle = ?"), (handle.lower(),))
            row = cur.fetchone()
        return row[0] if row else None

    def counts(self) -> dict[str, int]:
        with self._transaction(write=False) as cur:
            cur.execute(
                "SELECT collection, COUNT(*) FROM records WHERE did NOT IN "
                "(SELECT did FROM accounts WHERE active = 0) GROUP BY collection"
            )
            out = {r[0]: int(r[1]) for r in cur.fetchall()}
            cur.execute("SELECT COUNT(*) FROM accounts")
            out["accounts"] = int(cur.fetchone()[0])
        return out
