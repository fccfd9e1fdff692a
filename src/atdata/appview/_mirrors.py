"""Mirror records in the AppView: which copies of a dataset are valid, and is the original current.

A mirror record (``ac.foundation.dataset.mirror``) is indexed like any record; this
module keeps a side table ``mirrors`` (migration 3) with its subject and whether it
was verified: its SHA-256 digests equal those of the original record at the CID it
pins (checked when either record arrives, in the same transaction). Mirrors whose
digests differ are never listed. ``listMirrors`` answers the verified mirrors of a
dataset with an ``originalStatus``: ``current`` (the original still has the pinned
CID), ``changed`` (it was updated since) or ``deleted``.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from atdata.atmosphere.mirrors import MIRROR_COLLECTION, MirrorError, check_mirror
from atdata.atmosphere.records import DATASET_COLLECTION, Record

if TYPE_CHECKING:
    from atdata.appview._store import Changes, SqlStore

__all__ = ["MIGRATION", "index_mirrors", "list_mirrors"]

log = logging.getLogger("atdata.appview")

MIGRATION = """CREATE TABLE mirrors (
    uri TEXT PRIMARY KEY,
    subject_uri TEXT NOT NULL,
    subject_cid TEXT NOT NULL,
    verified INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX mirrors_subject ON mirrors (subject_uri, verified)"""

UNVERIFIED, VALID, INVALID = 0, 1, -1


def _verdict(
    original: tuple[str, str] | None, subject: str, mirror: dict[str, Any], uri: str
) -> int:
    """``VALID`` / ``INVALID`` against the original ``(cid, record JSON)``; ``UNVERIFIED`` if absent."""
    if original is None:
        return UNVERIFIED
    cid, text = original
    try:
        check_mirror(Record(json.loads(text), uri=subject, cid=cid), mirror, uri)
    except MirrorError as exc:
        if "copies version" in str(exc):
            return UNVERIFIED  # another version of the original: cannot compare
        log.warning("mirror %s ignored: %s", uri, exc)
        return INVALID
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        log.warning("mirror %s ignored: %s", uri, exc)
        return INVALID
    return VALID


def index_mirrors(store: SqlStore, cur: Any, changes: Changes) -> None:
    """Record the subject of upserted mirrors and verify them (and mirrors waiting for an original)."""
    sql = store._sql
    for row in changes.upserts:
        if row.collection == MIRROR_COLLECTION:
            subject = row.record.get("subject") or {}
            s_uri, s_cid = str(subject.get("uri", "")), str(subject.get("cid", ""))
            cur.execute(sql("SELECT cid, record FROM records WHERE uri = ?"), (s_uri,))
            found = cur.fetchone()
            verdict = _verdict(
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
                (row.uri, s_uri, s_cid, verdict),
            )
        elif row.collection == DATASET_COLLECTION:
            cur.execute(
                sql(
                    "SELECT m.uri, r.record FROM mirrors m JOIN records r ON r.uri = m.uri "
                    "WHERE m.subject_uri = ? AND m.subject_cid = ? AND m.verified = ?"
                ),
                (row.uri, row.cid, UNVERIFIED),
            )
            original = (row.cid, json.dumps(row.record))
            for m_uri, text in cur.fetchall():
                verdict = _verdict(original, row.uri, json.loads(text), m_uri)
                cur.execute(sql("UPDATE mirrors SET verified = ? WHERE uri = ?"), (verdict, m_uri))


def list_mirrors(store: SqlStore, uri: str, limit: int, cursor: str | None) -> dict[str, Any]:
    """The verified mirrors of the dataset ``uri``, each with its ``originalStatus``."""
    current = store.get_record(uri)
    args: list[Any] = [uri, VALID]
    where = "m.subject_uri = ? AND m.verified = ?"
    if cursor:
        where += " AND r.uri > ?"
        args.append(cursor)
    with store._transaction(write=False) as cur:
        cur.execute(
            store._sql(
                "SELECT r.uri, r.cid, r.did, a.handle, r.record, r.created_at, r.indexed_at, "
                "m.subject_cid FROM mirrors m JOIN records r ON r.uri = m.uri "
                f"JOIN accounts a ON a.did = r.did AND a.active = 1 WHERE {where} "
                "ORDER BY r.uri LIMIT ?"
            ),
            [*args, limit + 1],
        )
        rows = cur.fetchall()
    more = len(rows) > limit
    out = []
    for raw in rows[:limit]:
        row = store._row(raw)
        pinned = raw[7]
        status = (
            "deleted" if current is None else ("current" if current["cid"] == pinned else "changed")
        )
        item = dict(row["record"])
        item.update(
            uri=row["uri"],
            cid=row["cid"],
            did=row["did"],
            handle=row["handle"],
            originalStatus=status,
        )
        out.append(item)
    body: dict[str, Any] = {"mirrors": out}
    if more:
        body["cursor"] = out[-1]["uri"]
    return body
