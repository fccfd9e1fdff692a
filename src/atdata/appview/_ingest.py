"""Ingestion: follow hosts' ``com.atproto.sync.subscribeRepos`` and backfill their repositories.

Each host gets a :class:`HostFollower` thread. Frames are decoded with the
``atproto`` SDK's subscription frame parser (DAG-CBOR); commits that touch an
``ac.foundation.dataset.*`` collection are verified (signature against the DID
document's key, every record proven through the MST from the signed root,
every block hashed against its CID) and their records validated against the
shipped lexicons. What fails is dropped, counted and logged; the stream goes on.
Each event is applied in one transaction together with the host's cursor.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

from atdata.appview._identity import Identities, Identity
from atdata.appview._repo import (
    MAX_CAR_BYTES,
    Blocks,
    Commit,
    RepoVerificationError,
    cid_str,
    mst_get,
    mst_walk,
    read_car,
    verify_commit,
)
from atdata.appview._store import (
    COLLECTION_PREFIX,
    Account,
    AppViewStore,
    Changes,
    RecordRow,
    StoreError,
)
from atdata.atmosphere._identity import IdentityError
from atdata.atmosphere._lexicon import (
    LexiconValidationError,
    get_lexicon,
    lexicon_ids,
    validate_record,
)
from atdata.errors import AtdataError

__all__ = ["HostFollower", "Ingester", "indexed_collections", "to_json_form"]

log = logging.getLogger("atdata.appview")

MAX_FRAME_BYTES = 5 * 1024 * 1024
"""Largest firehose frame accepted (the reference relay's limit is 2 MB of blocks)."""

_BACKOFF_MAX = 30.0
_MAX_TRIES = 6
"""Attempts at an event whose identity lookup fails transiently (about a minute with backoff)."""
_PAGE = 500


class RetryLater(AtdataError):
    """A transient failure (identity directory or PDS unreachable, 5xx): retry, never drop."""


_PERMANENT = re.compile(r"HTTP 4\d\d|not a DID|not JSON|malformed|names no|no #atproto|only did:")


def indexed_collections() -> frozenset[str]:
    """The shipped ``ac.foundation.dataset.*`` record lexicons: what the AppView keeps."""
    return frozenset(
        nsid
        for nsid in lexicon_ids()
        if nsid.startswith(COLLECTION_PREFIX)
        and get_lexicon(nsid)["defs"].get("main", {}).get("type") == "record"
    )


def to_json_form(value: Any, *, blob: bool = False) -> Any:
    """A decoded DAG-CBOR record in the JSON form the lexicon validator reads.

    Bytes become ``{"$bytes": ...}``, except a blob's ``ref``, which is a CID link.
    """
    if isinstance(value, dict):
        is_blob = value.get("$type") == "blob"
        return {
            k: (
                {"$link": cid_str(v)}
                if is_blob and k == "ref" and isinstance(v, bytes)
                else to_json_form(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [to_json_form(v) for v in value]
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode().rstrip("=")}
    return value


class Ingester:
    """Verifies repository data and writes it to the store; shared by every host follower."""

    store: AppViewStore
    identities: Identities
    collections: frozenset[str]
    """The collections kept (:func:`indexed_collections`)."""
    counters: Counter[str]
    """Dropped items by reason."""
    http: httpx.Client

    def __init__(self, store: AppViewStore, identities: Identities) -> None:
        self.store = store
        self.identities = identities
        self.collections = indexed_collections()
        self.counters = Counter()
        self._write = threading.Lock()
        self.http = httpx.Client(timeout=60.0, follow_redirects=True)

    def count(self, what: str, message: str) -> None:
        """Count a dropped item and log why."""
        self.counters[what] += 1
        log.warning("dropped (%s): %s", what, message)

    # -- records

    def _record(self, blocks: Blocks, did: str, path: str, cid: bytes) -> RecordRow | None:
        collection, _, rkey = path.partition("/")
        uri = f"at://{did}/{path}"
        try:
            value = blocks.get(cid)
            record = to_json_form(value)
            validate_record(collection, record, rkey=rkey)
        except RepoVerificationError as exc:
            self.count("unverified_records", f"{uri}: {exc}")
            return None
        except LexiconValidationError as exc:
            self.count("invalid_records", f"{uri}: {exc}")
            return None
        return RecordRow(uri, did, collection, rkey, cid_str(cid), record)

    def identity(self, did: str, refresh: bool = False) -> Identity | None:
        """The identity of ``did``, or None (counted) when it cannot be resolved."""
        try:
            return self.identities.get(did, refresh=refresh)
        except (IdentityError, httpx.HTTPError) as exc:
            if not _PERMANENT.search(str(exc)):
                raise RetryLater(f"cannot resolve {did} now: {exc}") from None
            self.count("unresolved_identities", f"{did}: {exc}")
            return None

    def _verified(
        self, blocks: Blocks, commit_cid: bytes, did: str
    ) -> tuple[Commit, Identity] | None:
        ident = self.identity(did)
        if ident is None:
            return None
        try:
            return verify_commit(blocks, commit_cid, did, ident.did_key), ident
        except RepoVerificationError:
            # The key may have rotated since it was cached: fetch the document once more.
            ident = self.identity(did, refresh=True)
            if ident is None:
                return None
            try:
                return verify_commit(blocks, commit_cid, did, ident.did_key), ident
            except RepoVerificationError as exc:
                self.count("bad_commits", str(exc))
                return None

    def account_state(self, did: str, ident: Identity | None, host: str, **changes: Any) -> Account:
        """The stored state of ``did`` with ``changes`` and, if given, the identity's handle."""
        old = self.store.account(did) or Account(did)
        fields = {
            "did": did,
            "handle": ident.handle if ident else old.handle,
            "active": old.active,
            "status": old.status,
            "rev": old.rev,
            "host": host,
        }
        fields.update(changes)
        return Account(**fields)

    # -- firehose events

    def commit_changes(self, host: str, body: dict[str, Any]) -> Changes | None:
        """The changes a ``#commit`` event carries for our collections (None: nothing to apply)."""
        did = body.get("repo")
        ops = body.get("ops")
        if not isinstance(did, str) or not isinstance(ops, list):
            raise RepoVerificationError(f"{host}: #commit without repo or ops")
        ours = [
            op
            for op in ops
            if isinstance(op, dict)
            and isinstance(op.get("path"), str)
            and op["path"].split("/", 1)[0] in self.collections
        ]
        if not ours:
            return None
        if body.get("tooBig"):
            return Changes()  # resync below
        where = f"{host} #commit seq {body.get('seq')} of {did}"
        blocks = read_car(body.get("blocks") or b"", where)
        commit_cid = body.get("commit")
        if not isinstance(commit_cid, bytes):
            raise RepoVerificationError(f"{where}: no commit CID")
        verified = self._verified(blocks, commit_cid, did)
        if verified is None:
            return None
        commit, ident = verified
        old = self.store.account(did)
        if old is not None and old.rev and commit.rev <= old.rev:
            self.counters["duplicate_commits"] += 1
            return None
        changes = Changes(accounts=[self.account_state(did, ident, host, rev=commit.rev)])
        for op in ours:
            path, action = op["path"], op.get("action")
            try:
                proven = mst_get(blocks, commit.data, path)
            except RepoVerificationError as exc:
                self.count("unverified_records", f"at://{did}/{path}: {exc}")
                continue
            if action in ("create", "update"):
                if proven is None or proven != op.get("cid"):
                    self.count("unverified_records", f"at://{did}/{path}: not in the signed tree")
                    continue
                row = self._record(blocks, did, path, proven)
                if row is not None:
                    changes.upserts.append(row)
            elif action == "delete":
                if proven is not None:
                    self.count("unverified_records", f"at://{did}/{path}: delete of a kept record")
                    continue
                changes.deletes.append(f"at://{did}/{path}")
        return changes

    # -- backfill

    def _get(self, url: str, params: dict[str, Any], limit: int) -> bytes:
        with self.http.stream("GET", url, params=params) as response:
            if response.status_code == 429 or response.status_code >= 500:
                raise RetryLater(f"{url}: HTTP {response.status_code}")
            if response.status_code != 200:
                raise AtdataError(f"{url}: HTTP {response.status_code}")
            out = bytearray()
            for chunk in response.iter_bytes():
                out += chunk
                if len(out) > limit:
                    raise AtdataError(f"{url}: answer larger than {limit:,} bytes")
        return bytes(out)

    def list_repos(self, host: str) -> Iterator[dict[str, Any]]:
        """Every repository a host lists (``com.atproto.sync.listRepos``, paged)."""
        cursor = None
        for _ in range(100_000):
            params: dict[str, Any] = {"limit": _PAGE}
            if cursor:
                params["cursor"] = cursor
            data = json.loads(
                self._get(f"{host}/xrpc/com.atproto.sync.listRepos", params, 10 * 1024 * 1024)
            )
            repos = data.get("repos") if isinstance(data, dict) else None
            if not isinstance(repos, list):
                raise AtdataError(f"{host}: listRepos answer has no repos")
            yield from (r for r in repos if isinstance(r, dict) and isinstance(r.get("did"), str))
            cursor = data.get("cursor")
            if not cursor or not repos:
                return

    def backfill_repo(
        self, host: str, did: str, *, active: bool = True, status: str | None = None
    ) -> int:
        """Replace ``did``'s records with its current, verified repository; returns the record count."""
        ident = self.identity(did)
        if ident is None:
            return 0
        if not active:
            with self._write:
                self.store.apply(
                    Changes(
                        accounts=[self.account_state(did, ident, host, active=False, status=status)]
                    )
                )
            return 0
        source = ident.pds or host
        for _attempt in range(3):
            car = self._get(f"{source}/xrpc/com.atproto.sync.getRepo", {"did": did}, MAX_CAR_BYTES)
            blocks = read_car(car, f"getRepo {did} from {source}")
            if not blocks.roots:
                raise RepoVerificationError(f"getRepo {did} from {source}: CAR has no root")
            verified = self._verified(blocks, blocks.roots[0], did)
            if verified is None:
                return 0
            commit, ident = verified
            rows = []
            for path, cid in mst_walk(blocks, commit.data, COLLECTION_PREFIX):
                if path.split("/", 1)[0] in self.collections:
                    row = self._record(blocks, did, path, cid)
                    if row is not None:
                        rows.append(row)
            with self._write:
                old = self.store.account(did)
                if old is not None and old.rev and commit.rev < old.rev:
                    continue  # a newer commit was applied meanwhile: fetch again
                self.store.apply(
                    Changes(
                        upserts=rows,
                        replace={did},
                        accounts=[
                            self.account_state(
                                did, ident, host, rev=commit.rev, active=True, status=None
                            )
                        ],
                    )
                )
            return len(rows)
        return 0

    def backfill_host(self, host: str, stop: threading.Event) -> None:
        """Backfill every repository ``host`` lists, then mark the host as backfilled.

        A repository that fails for a transient reason leaves the host unmarked, so the
        next connection backfills again (repositories already stored are simply replaced).
        """
        transient = 0
        for repo in self.list_repos(host):
            if stop.is_set():
                return
            try:
                self.backfill_repo(
                    host,
                    repo["did"],
                    active=repo.get("active", True) is not False,
                    status=repo.get("status"),
                )
            except (RetryLater, httpx.HTTPError) as exc:
                transient += 1
                self.count("backfill_errors", f"{repo['did']} on {host}: {exc}")
            except (AtdataError, ValueError) as exc:
                self.count("backfill_errors", f"{repo['did']} on {host}: {exc}")
        if transient:
            log.warning("%s: %d repositories to retry; backfill again later", host, transient)
            return
        with self._write:
            self.store.apply(Changes(backfilled=host))
            self.store.maintain()
        log.info("backfilled %s", host)

    def apply(self, changes: Changes) -> None:
        """Write ``changes`` (serialised with the rev checks of the other writers)."""
        with self._write:
            self.store.apply(changes)

    def close(self) -> None:
        """Close the HTTP client."""
        self.http.close()


def _ws_url(host: str, cursor: int | None) -> str:
    parts = urlsplit(host)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    query = urlencode({"cursor": cursor}) if cursor is not None else ""
    return urlunsplit(
        (
            scheme,
            parts.netloc,
            parts.path.rstrip("/") + "/xrpc/com.atproto.sync.subscribeRepos",
            query,
            "",
        )
    )


def _event_time(body: dict[str, Any]) -> float | None:
    text = body.get("time")
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class HostFollower:
    """One host's firehose, in a thread: reconnects with backoff, backfills on first sight."""

    ingester: Ingester
    host: str
    stop_event: threading.Event
    counters: Counter[str]
    """Events applied, disconnects, retries and errors."""
    connected: bool
    last_event: float | None
    """When the last event was applied (Unix time)."""
    lag: float | None
    """Seconds between the last event's ``time`` and its application."""

    def __init__(self, ingester: Ingester, host: str) -> None:
        self.ingester = ingester
        self.host = host.rstrip("/")
        self.stop_event = threading.Event()
        self.counters = Counter()
        self.connected = False
        self.last_event = None
        self.lag = None
        self._thread = threading.Thread(target=self._run, name=f"appview-{self.host}", daemon=True)
        self._backfill: threading.Thread | None = None
        self._resyncs: list[threading.Thread] = []
        self._retries: tuple[int, int] = (-1, 0)

    def start(self) -> None:
        """Start following in a background thread."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to finish and wait for it."""
        self.stop_event.set()
        self._thread.join(timeout)
        for thread in [self._backfill, *self._resyncs]:
            if thread is not None:
                thread.join(timeout)

    def _start_backfill(self) -> None:
        if self._backfill is not None and self._backfill.is_alive():
            return

        def run() -> None:
            try:
                self.ingester.backfill_host(self.host, self.stop_event)
            except (AtdataError, httpx.HTTPError, ValueError) as exc:
                self.ingester.count("backfill_errors", f"{self.host}: {exc}")

        self._backfill = threading.Thread(target=run, name=f"backfill-{self.host}", daemon=True)
        self._backfill.start()

    def _run(self) -> None:
        from websockets.exceptions import WebSocketException
        from websockets.sync.client import connect

        delay = 0.5
        while not self.stop_event.is_set():
            state = self.ingester.store.hosts().get(self.host, {})
            cursor = state.get("cursor")
            if cursor is None and state.get("backfilled"):
                # Backfilled, but no event seen yet: a reconnect without a cursor would
                # start at the live tail and skip what the host sequenced meanwhile (while
                # this process was down). Replay the host's retained history instead;
                # applying an event twice changes nothing.
                cursor = 0
            try:
                with connect(
                    _ws_url(self.host, cursor),
                    max_size=MAX_FRAME_BYTES,
                    open_timeout=10,
                    close_timeout=2,
                    proxy=None,
                ) as ws:
                    self.connected = True
                    log.info("following %s from cursor %s", self.host, cursor)
                    if not state.get("backfilled"):
                        self._start_backfill()
                    while not self.stop_event.is_set():
                        try:
                            data = ws.recv(timeout=0.5)
                        except TimeoutError:
                            continue
                        delay = 0.5
                        if self._frame(data):
                            break
            except (OSError, WebSocketException) as exc:
                self.counters["disconnects"] += 1
                log.info("%s: connection lost (%s); retrying in %.1f s", self.host, exc, delay)
            except (RetryLater, StoreError) as exc:  # resume from the stored cursor later
                self.counters["retries"] += 1
                log.warning("%s: %s; retrying in %.1f s", self.host, exc, delay)
            except Exception:  # a bug must not end the follower: log it and reconnect
                self.counters["errors"] += 1
                log.exception("%s: unexpected error", self.host)
            self.connected = False
            if self.stop_event.wait(delay):
                return
            delay = min(delay * 2, _BACKOFF_MAX)

    def _frame(self, data: bytes | str) -> bool:
        """Handle one frame; True asks for a reconnect."""
        from atproto_subscription.frames import ErrorFrame, Frame

        ing = self.ingester
        try:
            if not isinstance(data, bytes):
                raise RepoVerificationError("text frame")
            frame = Frame.from_bytes(data)
        except Exception as exc:  # the SDK raises assorted decode errors for garbage
            ing.count("bad_frames", f"{self.host}: undecodable frame ({type(exc).__name__})")
            return False
        if isinstance(frame, ErrorFrame):
            ing.count("error_frames", f"{self.host}: {frame.body.error}: {frame.body.message}")
            return True
        body, kind = frame.body, frame.type
        if not isinstance(body, dict):
            ing.count("bad_frames", f"{self.host}: frame body is not a map")
            return False
        seq = body.get("seq")
        if kind == "#info":
            if body.get("name") == "OutdatedCursor":
                log.info("%s: cursor too old; backfilling", self.host)
                self._start_backfill()
            return False
        if not isinstance(seq, int) or isinstance(seq, bool):
            ing.count("bad_frames", f"{self.host}: {kind} without seq")
            return False
        try:
            changes = self._changes(kind, body) or Changes()
        except StoreError:
            raise  # not this event's fault: keep the cursor, retry after a backoff
        except RetryLater as exc:
            # Retry a few times (reconnecting with backoff); then drop it, or one dead
            # did:web host would stall a whole relay's stream.
            tries = self._retries[1] + 1 if self._retries[0] == seq else 1
            self._retries = (seq, tries)
            if tries < _MAX_TRIES:
                raise
            ing.count("unresolved_identities", f"{self.host} seq {seq}: gave up: {exc}")
            changes = Changes()
        except Exception as exc:  # hostile data must neither stop the stream nor replay forever
            ing.count("bad_frames", f"{self.host} seq {seq}: {type(exc).__name__}: {exc}")
            changes = Changes()
        changes.cursor = (self.host, seq)
        ing.apply(changes)
        self.counters["events"] += 1
        self.last_event = time.time()
        when = _event_time(body)
        self.lag = None if when is None else max(0.0, self.last_event - when)
        return False

    def _changes(self, kind: str | None, body: dict[str, Any]) -> Changes | None:
        ing = self.ingester
        did = body.get("did") or body.get("repo")
        if kind == "#commit":
            changes = ing.commit_changes(self.host, body)
            if body.get("tooBig") and changes is not None:
                self._resync(str(did))
            return changes
        if not isinstance(did, str):
            return None
        if ing.store.account(did) is None:
            return None  # a repository with none of our records: nothing to update or resync
        if kind == "#identity":
            ident = ing.identity(did, refresh=True)
            return Changes(accounts=[ing.account_state(did, ident, self.host)]) if ident else None
        if kind == "#account":
            active = body.get("active") is not False
            status = body.get("status") if isinstance(body.get("status"), str) else None
            return Changes(
                accounts=[ing.account_state(did, None, self.host, active=active, status=status)]
            )
        if kind == "#sync":
            self._resync(did)
        return None

    def _resync(self, did: str) -> None:
        def run() -> None:
            if self.stop_event.is_set():
                return
            try:
                self.ingester.backfill_repo(self.host, did)
            except (AtdataError, httpx.HTTPError, ValueError) as exc:
                self.ingester.count("backfill_errors", f"{did}: {exc}")

        self._resyncs = [t for t in self._resyncs if t.is_alive()]
        thread = threading.Thread(target=run, name=f"resync-{did}", daemon=True)
        self._resyncs.append(thread)
        thread.start()
