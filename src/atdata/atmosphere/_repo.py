"""Record calls of the client: create, put, get, delete, list and batched writes.

Every record is checked before it is sent (data-model rules, size, record key and,
for atdata's collections, the shipped lexicons). A create whose response was lost is
not repeated blindly: the retry first looks whether the record already landed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from atdata.atmosphere._errors import AtmosphereError, BatchWriteError, RecordNotFoundError
from atdata.atmosphere._lexicon import record_size, to_record_json, validate_record
from atdata.atmosphere._session import MAX_REQUEST_BYTES, XrpcSession
from atdata.atmosphere.uri import AtUri, make_tid

__all__ = ["MAX_BATCH_WRITES", "RepoCalls", "batch_writes"]

MAX_BATCH_WRITES = 200
"""Most writes the reference PDS accepts in one ``applyWrites`` call."""
_BATCH_BODY_BUDGET = MAX_REQUEST_BYTES - 16_384


def batch_writes(ops: Iterable[tuple[dict[str, Any], int]]) -> list[list[dict[str, Any]]]:
    """Group ``(operation, size)`` pairs, in order, into ``applyWrites`` batches.

    A batch holds at most :data:`MAX_BATCH_WRITES` operations and about 1 MB.

    >>> [len(b) for b in batch_writes([({"n": i}, 10) for i in range(450)])]
    [200, 200, 50]
    """
    batches: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    current_size = 0
    for op, size in ops:
        if current and (
            len(current) >= MAX_BATCH_WRITES or current_size + size > _BATCH_BODY_BUDGET
        ):
            batches.append(current)
            current, current_size = [], 0
        current.append(op)
        current_size += size
    if current:
        batches.append(current)
    return batches


class RepoCalls(XrpcSession):
    """The ``com.atproto.repo`` record calls of :class:`~atdata.atmosphere.AtmosphereClient`."""

    def _prepare(
        self, collection: str, record: Mapping[str, Any], rkey: str | None, validate: bool
    ) -> dict[str, Any]:
        prepared = to_record_json(dict(record))
        validate_record(collection, prepared, rkey=rkey, lexicon=validate)
        return prepared

    def _existing_record(self, uri: AtUri, value: Mapping[str, Any]) -> dict[str, Any] | None:
        """If ``uri`` already holds exactly ``value`` (an earlier attempt landed), describe it."""
        try:
            entry = self.get_record_entry(uri)
        except RecordNotFoundError:
            return None
        if entry["value"] == value:
            return {"uri": entry["uri"], "cid": entry["cid"]}
        return None

    def create_record(
        self,
        collection: str,
        record: Mapping[str, Any],
        *,
        rkey: str | None = None,
        validate: bool = True,
    ) -> AtUri:
        """Create a record in the logged-in account's repository; returns its URI (with CID).

        The record needs ``"$type": collection``; Python ``bytes`` values are encoded as
        ``{"$bytes": ...}``. Without ``rkey`` a TID is generated here, which makes a
        retry after a lost response safe. ``validate=False`` skips the lexicon check
        (the data-model checks always run).

        Example::

            uri = client.create_record("ac.foundation.dataset.sampleSchema", schema)
            print(uri.rkey, uri.cid)
        """
        session = self._require_session()
        rkey = rkey or make_tid()
        value = self._prepare(collection, record, rkey, validate)
        uri = AtUri(session.did, collection, rkey)
        body = {"repo": session.did, "collection": collection, "rkey": rkey, "record": value}
        try:
            out = self._procedure(
                "com.atproto.repo.createRecord",
                body,
                what="create record",
                target=str(uri),
                recover=lambda: self._existing_record(uri, value),
            )
        except AtmosphereError as exc:
            # The reference PDS answers a duplicate record key with a bare 500.
            if exc.status == 500 and self._record_exists(uri):
                raise AtmosphereError(
                    f"create record {uri}: a record with this key already exists (use put_record to replace it)",
                    status=exc.status,
                    error="RecordAlreadyExists",
                    target=str(uri),
                ) from None
            raise
        return AtUri.parse(out["uri"]).with_cid(out.get("cid"))

    def _record_exists(self, uri: AtUri) -> bool:
        try:
            self.get_record_entry(uri)
        except AtmosphereError:
            return False
        return True

    def put_record(
        self,
        collection: str,
        rkey: str,
        record: Mapping[str, Any],
        *,
        validate: bool = True,
        swap_record: str | None = None,
        swap_commit: str | None = None,
    ) -> AtUri:
        """Create or replace the record ``collection/rkey``; returns its URI (with CID).

        ``swap_record`` (a CID) makes the write fail unless the current version matches.

        Example::

            client.put_record("ac.foundation.dataset.record", "my-dataset", record)
        """
        session = self._require_session()
        value = self._prepare(collection, record, rkey, validate)
        uri = AtUri(session.did, collection, rkey)
        body: dict[str, Any] = {
            "repo": session.did,
            "collection": collection,
            "rkey": rkey,
            "record": value,
        }
        if swap_record is not None:
            body["swapRecord"] = swap_record
        if swap_commit is not None:
            body["swapCommit"] = swap_commit
        out = self._procedure(
            "com.atproto.repo.putRecord", body, what="put record", target=str(uri)
        )
        return AtUri.parse(out["uri"]).with_cid(out.get("cid"))

    def get_record_entry(self, uri: str | AtUri) -> dict[str, Any]:
        """``{"uri", "cid", "value"}`` of any account's record, read from that account's PDS.

        Example::

            entry = client.get_record_entry("at://alice.bsky.social/ac.foundation.dataset.record/3k...")
            print(entry["cid"], entry["value"]["name"])
        """
        parsed = AtUri.parse(uri)
        did = self.resolve_did(parsed.authority)
        reader = self._reader_for(did)
        data = self._query(
            reader,
            "com.atproto.repo.getRecord",
            {"repo": did, "collection": parsed.collection, "rkey": parsed.rkey},
            what="get record",
            target=str(parsed),
        )
        return {
            "uri": data.get("uri", str(parsed)),
            "cid": data.get("cid"),
            "value": data.get("value", {}),
        }

    def get_record(self, uri: str | AtUri) -> dict[str, Any]:
        """The value of a record, from its owner's PDS (``RecordNotFoundError`` if absent).

        Example::

            schema = client.get_record("at://did:plc:abc/ac.foundation.dataset.sampleSchema/3k...")
        """
        return dict(self.get_record_entry(uri)["value"])

    def delete_record(
        self, uri: str | AtUri, *, swap_record: str | None = None, swap_commit: str | None = None
    ) -> None:
        """Delete one of the logged-in account's records (no error if it is already gone).

        Example::

            client.delete_record(uri)
        """
        session = self._require_session()
        parsed = AtUri.parse(uri)
        if self.resolve_did(parsed.authority) != session.did:
            raise AtmosphereError(
                f"delete record {parsed}: not in the repository of {session.did}",
                target=str(parsed),
            )
        body: dict[str, Any] = {
            "repo": session.did,
            "collection": parsed.collection,
            "rkey": parsed.rkey,
        }
        if swap_record is not None:
            body["swapRecord"] = swap_record
        if swap_commit is not None:
            body["swapCommit"] = swap_commit
        self._procedure(
            "com.atproto.repo.deleteRecord", body, what="delete record", target=str(parsed)
        )

    def list_records(
        self,
        collection: str,
        *,
        repo: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        reverse: bool = False,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a collection: ``([{"uri", "cid", "value"}, ...], next_cursor)``.

        ``repo`` is a DID or handle (default: the logged-in account); ``limit`` is
        clamped to 1-100. ``next_cursor`` is None on the last page. Use
        :meth:`iter_records` to walk every page.

        Example::

            page, cursor = client.list_records("ac.foundation.dataset.record", limit=50)
        """
        did = self.resolve_did(repo) if repo is not None else self.did
        reader = self._reader_for(did)
        params: dict[str, Any] = {
            "repo": did,
            "collection": collection,
            "limit": max(1, min(int(limit), 100)),
            "cursor": cursor,
        }
        if reverse:
            params["reverse"] = True
        data = self._query(
            reader,
            "com.atproto.repo.listRecords",
            params,
            what="list records of",
            target=f"{collection} in {did}",
        )
        records = [
            {"uri": r.get("uri"), "cid": r.get("cid"), "value": r.get("value", {})}
            for r in data.get("records", [])
        ]
        next_cursor = data.get("cursor") or None
        if not records:
            next_cursor = None
        return records, next_cursor

    def iter_records(
        self,
        collection: str,
        *,
        repo: str | None = None,
        page_size: int = 100,
        reverse: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Every record of a collection, ``{"uri", "cid", "value"}``, page after page.

        Example::

            uris = [r["uri"] for r in client.iter_records("ac.foundation.dataset.record")]
        """
        cursor: str | None = None
        while True:
            page, cursor = self.list_records(
                collection, repo=repo, limit=page_size, cursor=cursor, reverse=reverse
            )
            yield from page
            if cursor is None:
                return

    def apply_writes(
        self,
        creates: Iterable[
            tuple[str, Mapping[str, Any]] | tuple[str, Mapping[str, Any], str | None]
        ],
        *,
        validate: bool = True,
    ) -> list[AtUri]:
        """Create many records with few requests; returns their URIs (with CIDs) in order.

        ``creates`` holds ``(collection, record)`` or ``(collection, record, rkey)``
        tuples. Every record is checked first; nothing is sent if one is invalid. Writes
        go in batches of at most 200 records and about 1 MB each; each batch is atomic.
        If a batch fails, :class:`BatchWriteError` says how many records were written
        (``written``).

        Example::

            uris = client.apply_writes([("ac.foundation.dataset.record", rec) for rec in records])
        """
        session = self._require_session()
        ops: list[tuple[dict[str, Any], int]] = []
        for i, item in enumerate(creates):
            if len(item) not in (2, 3):
                raise ValueError(f"apply_writes item {i} must be (collection, record[, rkey])")
            collection, record = item[0], item[1]
            rkey = (item[2] if len(item) == 3 else None) or make_tid()
            value = self._prepare(collection, record, rkey, validate)
            op = {
                "$type": "com.atproto.repo.applyWrites#create",
                "collection": collection,
                "rkey": rkey,
                "value": value,
            }
            ops.append((op, record_size(op) + 1))
        batches = batch_writes(ops)

        written: list[AtUri] = []
        for number, batch in enumerate(batches, 1):
            uris = [AtUri(session.did, op["collection"], op["rkey"]) for op in batch]
            target = f"batch {number}/{len(batches)} ({len(batch)} records, first {uris[0]})"

            def recover(
                batch: list[dict[str, Any]] = batch, uris: list[AtUri] = uris
            ) -> dict[str, Any] | None:
                # A batch is atomic: if its first record is there, all of it landed.
                if self._existing_record(uris[0], batch[0]["value"]) is None:
                    return None
                results = [{"uri": str(u), "cid": self.get_record_entry(u)["cid"]} for u in uris]
                return {"results": results}

            try:
                out = self._procedure(
                    "com.atproto.repo.applyWrites",
                    {"repo": session.did, "writes": batch},
                    what="apply writes",
                    target=target,
                    recover=recover,
                )
            except AtmosphereError as exc:
                raise BatchWriteError(
                    f"{exc} ({len(written)} of {len(ops)} records were written before this batch)",
                    written=written,
                    status=exc.status,
                    error=exc.error,
                    target=exc.target,
                ) from None
            results = out.get("results") or []
            for uri, result in zip(uris, results + [{}] * (len(uris) - len(results))):
                written.append(uri.with_cid(result.get("cid")))
        return written
