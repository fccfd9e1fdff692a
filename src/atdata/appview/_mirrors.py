"""Mirror records in the AppView: which copies of a dataset are valid, and is the original current.

A mirror record (``ac.foundation.dataset.mirror``) is indexed like any record; the
store keeps a side table ``mirrors`` (:data:`MIGRATION`, migration 3) with its
subject and this module's :func:`verdict`: its SHA-256 digests equal those of the
original record at the CID it pins (checked when either record arrives, in the same
transaction). Mirrors whose digests differ are never listed. :func:`list_mirrors`
answers the verified mirrors of a dataset with an ``originalStatus``: ``current``
(the original still has the pinned CID), ``changed`` (it was updated since) or
``deleted``.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from atdata.atmosphere.mirrors import MirrorError, check_mirror
from atdata.atmosphere.records import Record

if TYPE_CHECKING:
    from atdata.appview._store import AppViewStore

__all__ = ["INVALID", "MIGRATION", "UNVERIFIED", "VALID", "list_mirrors", "verdict"]

log = logging.getLogger("atdata.appview")

MIGRATION = """CREATE TABLE mirrors (
    uri TEXT PRIMARY KEY,
    subject_uri TEXT NOT NULL,
    subject_cid TEXT NOT NULL,
    verified INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX mirrors_subject ON mirrors (subject_uri, verified)"""

UNVERIFIED, VALID, INVALID = 0, 1, -1
"""The ``verified`` column: not checked yet (the original is absent), digests equal, digests differ."""


def verdict(
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


def list_mirrors(store: AppViewStore, uri: str, limit: int, cursor: str | None) -> dict[str, Any]:
    """The ``listMirrors`` answer: the verified mirrors of the dataset ``uri``, each with its
    ``originalStatus``, and the cursor of the next page when there is one."""
    current = store.get_record(uri)
    page = store.mirrors(uri, limit=limit, cursor=cursor)
    out = []
    for row in page.rows:
        pinned = row["pinned"]
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
    if page.cursor:
        body["cursor"] = page.cursor
    return body
