"""An ATProto client for atdata: sessions, records, blobs and identity resolution.

Built on the ``atproto`` SDK (``pip install atdata[atmosphere]``): the SDK handles
login, the session and its automatic token refresh; records travel as plain JSON
dicts through its generic XRPC calls, so nothing is converted to and from models.

    >>> client = AtmosphereClient()  # doctest: +SKIP
    >>> client.login("alice.bsky.social", "app-password")  # doctest: +SKIP
    >>> uri = client.create_record("ac.foundation.dataset.record", record)  # doctest: +SKIP

Every record is checked before it is sent (data-model rules, size, record key and,
for atdata's collections, the shipped lexicons). Rate limits (HTTP 429) are waited
out up to a bound, an expired access token is refreshed once, and network faults
are retried with backoff. Error messages name the record URI or collection and
never contain passwords or tokens.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import httpx

from atdata.atmosphere._identity import IdentityError, IdentityResolver, default_plc_url
from atdata.atmosphere._lexicon import record_size, to_record_json, validate_record
from atdata.atmosphere._retry import Fault, GaveUp, RetryPolicy
from atdata.atmosphere.blobs import BlobSource, open_blob
from atdata.atmosphere.uri import AtUri, BlobUrl, is_valid_did, make_tid
from atdata.errors import AtdataError

if TYPE_CHECKING:
    from atproto import Client as SdkClient
    from atproto import Session

__all__ = [
    "DEFAULT_PDS_URL",
    "AtmosphereClient",
    "AtmosphereError",
    "AuthenticationError",
    "BatchWriteError",
    "BlobTooLargeError",
    "NotAuthenticatedError",
    "RateLimitedError",
    "RecordNotFoundError",
]

T = TypeVar("T")

DEFAULT_PDS_URL = "https://bsky.social"
MAX_BATCH_WRITES = 200
"""Most writes the reference PDS accepts in one ``applyWrites`` call."""
MAX_REQUEST_BYTES = 1_000_000
"""Largest JSON body of a write request on the reference PDS."""
_BATCH_BODY_BUDGET = MAX_REQUEST_BYTES - 16_384
_REFRESH_MARGIN_S = 300


# --------------------------------------------------------------------------- errors


class AtmosphereError(AtdataError):
    """An XRPC call failed. ``status`` (HTTP status or None), ``error`` (XRPC error name)
    and ``target`` (the URI, collection or DID concerned) describe it."""

    def __init__(
        self, message: str, *, status: int | None = None, error: str = "", target: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.target = target


class NotAuthenticatedError(AtmosphereError, ValueError):
    """The call needs a session: call :meth:`AtmosphereClient.login` first."""


class AuthenticationError(AtmosphereError):
    """Login failed, or the session expired and could not be refreshed."""


class RecordNotFoundError(AtmosphereError, KeyError):
    """No such record (or repository)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class RateLimitedError(AtmosphereError):
    """Still rate-limited after the allowed retries, or the limit resets too far ahead."""


class BlobTooLargeError(AtmosphereError, ValueError):
    """A blob is larger than the PDS accepts (``blobUploadLimit``)."""


class BatchWriteError(AtmosphereError):
    """An ``applyWrites`` batch failed; ``written`` holds the URIs committed before it."""

    def __init__(self, message: str, *, written: list[AtUri], **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.written = written


# --------------------------------------------------------------------------- helpers


def _import_sdk() -> Any:
    try:
        import atproto
    except ImportError:
        raise ImportError(
            "atdata.atmosphere needs the atproto SDK: pip install 'atdata[atmosphere]'"
        ) from None
    return atproto


def _jwt_exp(token: str) -> float | None:
    """The ``exp`` claim of a JWT (not verified: only used to refresh in time)."""
    try:
        payload = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(data["exp"])
    except (IndexError, KeyError, TypeError, ValueError):
        return None


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by the owner only (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _json_bytes(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class _BlobBody:
    """What to upload: a size (if known), a name for messages, and a way to (re)read it."""

    def __init__(
        self, data: bytes | bytearray | memoryview | str | os.PathLike[str] | IO[bytes]
    ) -> None:
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self._bytes: bytes | None = None
        self._start = 0
        self.restartable = True
        if isinstance(data, bytes | bytearray | memoryview):
            self._bytes = bytes(data)
            self.size: int | None = len(self._bytes)
            self.name = f"<{self.size} bytes>"
        elif isinstance(data, str | os.PathLike):
            self._path = Path(data)
            self.size = self._path.stat().st_size
            self.name = str(self._path)
        elif hasattr(data, "read"):
            self._file = data
            self.name = str(getattr(data, "name", "<stream>"))
            self.size = None
            try:
                self._start = data.tell()
                end = data.seek(0, io.SEEK_END)
                data.seek(self._start)
                self.size = end - self._start
            except (OSError, AttributeError, ValueError):
                self.restartable = False
        else:
            raise TypeError(
                f"upload_blob takes bytes, a path or a binary file, not {type(data).__name__}"
            )

    def content(self) -> bytes | Iterator[bytes]:
        if self._bytes is not None:
            return self._bytes
        if self._path is not None:
            return self._read_path(self._path)
        assert self._file is not None
        if self.restartable:
            self._file.seek(self._start)
        return self._read_file(self._file)

    @staticmethod
    def _read_path(path: Path) -> Iterator[bytes]:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                yield chunk

    @staticmethod
    def _read_file(fh: IO[bytes]) -> Iterator[bytes]:
        while chunk := fh.read(1 << 20):
            yield chunk


# --------------------------------------------------------------------------- client


class AtmosphereClient:
    """A logged-in (or anonymous) connection to a PDS.

    ``base_url`` is the PDS or entryway to log in at (default ``https://bsky.social``);
    after login, calls go to the PDS named in the account's DID document. ``plc_url``
    (default ``$ATDATA_PLC_URL`` or ``https://plc.directory``) resolves other accounts'
    ``did:plc``. With ``session_path``, the session is written there (mode 0600) at
    login and after every token refresh, so it can be resumed with
    :meth:`from_session_file`. ``transport`` is passed to the HTTP clients (proxies,
    tests).

    Example::

        client = AtmosphereClient()
        client.login("alice.bsky.social", "app-password")
        print(client.did, client.handle)
        uri = client.create_record("ac.foundation.dataset.record", record)
        print(client.get_record(uri)["name"])
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        plc_url: str | None = None,
        session_path: str | os.PathLike[str] | None = None,
        timeout: float = 30.0,
        max_retries: int = 4,
        max_rate_limit_wait: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        atproto = _import_sdk()
        from atproto_client.request import Request

        self.base_url = (base_url or DEFAULT_PDS_URL).rstrip("/").removesuffix("/xrpc")
        self.plc_url = (plc_url or default_plc_url()).rstrip("/")
        self.session_path = Path(session_path) if session_path is not None else None
        self._timeout = timeout
        self._transport = transport
        self._policy = RetryPolicy(max_retries=max_retries, max_rate_limit_wait=max_rate_limit_wait)
        self._sdk: SdkClient = atproto.Client(
            base_url=self.base_url, request=self._new_request(Request)
        )
        self._sdk.on_session_change(self._on_session_change)
        self._session: Session | None = None
        self._session_lock = threading.RLock()
        self._http = httpx.Client(timeout=timeout, follow_redirects=True, transport=transport)
        self._resolver = IdentityResolver(self.plc_url, http=self._http)
        self._foreign: dict[str, SdkClient] = {}
        self._describe: dict[str, Any] | None = None

    def _new_request(self, request_cls: Any) -> Any:
        kwargs: dict[str, Any] = {"timeout": self._timeout}
        if self._transport is not None:
            kwargs["transport"] = self._transport
        return request_cls(**kwargs)

    def __repr__(self) -> str:
        who = self._session.handle if self._session else "anonymous"
        return f"AtmosphereClient({self.pds_url!r}, {who})"

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()
        for client in [self._sdk, *self._foreign.values()]:
            with contextlib.suppress(Exception):
                client.request.close()

    def __enter__(self) -> AtmosphereClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ session

    def _on_session_change(self, event: Any, session: Session) -> None:
        with self._session_lock:
            self._session = session
            if self.session_path is not None:
                _write_private(self.session_path, session.export())

    def _require_session(self) -> Session:
        session = self._session
        if session is None:
            raise NotAuthenticatedError("not logged in: call login() or login_with_session() first")
        return session

    @property
    def is_authenticated(self) -> bool:
        """True once logged in."""
        return self._session is not None

    @property
    def did(self) -> str:
        """The DID of the logged-in account (``NotAuthenticatedError`` otherwise)."""
        return self._require_session().did

    @property
    def handle(self) -> str:
        """The handle of the logged-in account (``NotAuthenticatedError`` otherwise)."""
        return self._require_session().handle

    @property
    def pds_url(self) -> str:
        """The PDS this client writes to: the session's PDS, else ``base_url``."""
        session = self._session
        endpoint = (session.pds_endpoint if session else None) or self.base_url
        return endpoint.rstrip("/").removesuffix("/xrpc")

    def login(self, handle: str, app_password: str) -> None:
        """Log in with a handle (or DID / email) and an app password.

        Example::

            client.login("alice.bsky.social", "xxxx-xxxx-xxxx-xxxx")
        """

        def attempt() -> None:
            try:
                self._sdk.login(handle, app_password, fetch_bsky_profile=False)
            except Exception as exc:
                raise self._sdk_fault(exc) from None

        try:
            self._policy.run(attempt, retry_transient=True)
        except GaveUp as exc:
            raise self._error(exc, "login as", handle, auth=True) from None

    def login_with_session(self, session_string: str) -> None:
        """Resume a session exported by :meth:`export_session` (refreshing it if needed).

        Example::

            client.login_with_session(Path("~/.atdata-session").expanduser().read_text())
        """
        session_string = session_string.strip()
        try:
            self._sdk.login(session_string=session_string, fetch_bsky_profile=False)
        except (ValueError, TypeError):
            raise AuthenticationError("not a valid atdata/atproto session string") from None
        # Check it with the server; an expired access token is refreshed on the way.
        try:
            self._query(
                self._sdk,
                "com.atproto.server.getSession",
                {},
                what="resume session for",
                target=self.did,
            )
        except AtmosphereError:
            self._session = None  # not usable: stay logged out
            raise

    @classmethod
    def from_session(
        cls, session_string: str, base_url: str | None = None, **kwargs: Any
    ) -> AtmosphereClient:
        """A client logged in with an exported session string.

        Example::

            client = AtmosphereClient.from_session(saved, plc_url="http://127.0.0.1:2582")
        """
        if base_url is None:
            parts = session_string.strip().split(":::")
            if len(parts) == 5 and parts[4].startswith(("http://", "https://")):
                base_url = parts[4]
        client = cls(base_url, **kwargs)
        client.login_with_session(session_string)
        return client

    @classmethod
    def from_session_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> AtmosphereClient:
        """Resume the session stored at ``path`` and keep that file up to date."""
        text = Path(path).read_text(encoding="utf-8")
        return cls.from_session(text, session_path=path, **kwargs)

    def export_session(self) -> str:
        """The current session as a string (holds tokens: store it privately).

        Refresh tokens rotate, so save the newest one: pass ``session_path`` to the
        constructor to have it written (mode 0600) after every change.
        """
        self._require_session()
        return str(self._sdk.export_session_string())

    def refresh_session(self) -> None:
        """Exchange the refresh token for new tokens now (normally automatic)."""
        atproto = _import_sdk()
        with self._session_lock:
            session = self._require_session()

            def attempt() -> Any:
                try:
                    return self._sdk.invoke_procedure(
                        "com.atproto.server.refreshSession",
                        headers={"Authorization": f"Bearer {session.refresh_jwt}"},
                        ignore_session_check=True,
                    ).content
                except Exception as exc:
                    raise self._sdk_fault(exc) from None

            try:
                data = self._policy.run(attempt)
            except GaveUp as exc:
                raise AuthenticationError(
                    f"refreshing the session of {session.did} failed ({exc.reason}); log in again",
                    status=exc.fault.status,
                    error=exc.fault.error,
                    target=session.did,
                ) from None
            fresh = atproto.Session(
                handle=data.get("handle", session.handle),
                did=data.get("did", session.did),
                access_jwt=data["accessJwt"],
                refresh_jwt=data["refreshJwt"],
                pds_endpoint=session.pds_endpoint,
            )
            # Importing the new session fires the session-change callback (persisting it).
            self._sdk.login(session_string=fresh.export(), fetch_bsky_profile=False)

    def _access_token(self) -> str:
        session = self._require_session()
        exp = _jwt_exp(session.access_jwt)
        if exp is not None and exp - time.time() < _REFRESH_MARGIN_S:
            self.refresh_session()
            session = self._require_session()
        return session.access_jwt

    # ------------------------------------------------------------------ plumbing

    @staticmethod
    def _sdk_fault(exc: Exception) -> Exception:
        from atproto_client.exceptions import RequestErrorBase

        if isinstance(exc, RequestErrorBase):
            return Fault.from_sdk(exc)
        if isinstance(exc, httpx.TransportError):
            return Fault.from_transport(exc)
        return exc

    def _error(self, exc: GaveUp, what: str, target: str, *, auth: bool = False) -> AtmosphereError:
        fault = exc.fault
        message = f"{what} {target}: {exc.reason}"
        kwargs = {"status": fault.status, "error": fault.error, "target": target}
        if fault.rate_limited:
            return RateLimitedError(message, **kwargs)
        if (
            (auth and fault.status is not None and fault.status < 500)
            or fault.token_problem
            or fault.status in (401, 403)
        ):
            return AuthenticationError(message, **kwargs)
        if fault.not_found:
            return RecordNotFoundError(message, **kwargs)
        if fault.status == 413:
            return BlobTooLargeError(message, **kwargs)
        return AtmosphereError(message, **kwargs)

    def _run(
        self,
        fn: Callable[[], T],
        *,
        what: str,
        target: str,
        recover: Callable[[], T | None] | None = None,
        authenticated: bool = True,
    ) -> T:
        refresh = self.refresh_session if authenticated and self._session is not None else None
        try:
            return self._policy.run(fn, refresh=refresh, recover=recover)
        except GaveUp as exc:
            raise self._error(exc, what, target) from None

    def _query(
        self,
        sdk: SdkClient,
        nsid: str,
        params: Mapping[str, Any],
        *,
        what: str,
        target: str,
    ) -> dict[str, Any]:
        from atproto_client.models.dot_dict import DotDict

        clean = {k: v for k, v in params.items() if v is not None}

        def attempt() -> dict[str, Any]:
            try:
                response = sdk.invoke_query(nsid, params=DotDict(clean) if clean else None)
            except Exception as exc:
                raise self._sdk_fault(exc) from None
            return dict(response.content or {})

        return self._run(attempt, what=what, target=target, authenticated=sdk is self._sdk)

    def _procedure(
        self,
        nsid: str,
        body: Mapping[str, Any],
        *,
        what: str,
        target: str,
        recover: Callable[[], dict[str, Any] | None] | None = None,
    ) -> dict[str, Any]:
        content = _json_bytes(body)
        if len(content) > MAX_REQUEST_BYTES:
            raise AtmosphereError(
                f"{what} {target}: request body of {len(content):,} bytes exceeds {MAX_REQUEST_BYTES:,}",
                target=target,
            )

        def attempt() -> dict[str, Any]:
            try:
                response = self._sdk.invoke_procedure(
                    nsid, content=content, headers={"Content-Type": "application/json"}
                )
            except Exception as exc:
                raise self._sdk_fault(exc) from None
            return dict(response.content or {}) if isinstance(response.content, Mapping) else {}

        return self._run(attempt, what=what, target=target, recover=recover)

    # ------------------------------------------------------------------ identity

    def resolve_did(self, identifier: str) -> str:
        """The DID for a handle or DID (handles: our PDS first, then HTTPS/DNS)."""
        identifier = identifier.removeprefix("@")
        if identifier.startswith("did:"):
            if not is_valid_did(identifier):
                raise IdentityError(f"{identifier!r} is not a DID")
            return identifier
        session = self._session
        if session is not None and identifier.lower() == session.handle.lower():
            return session.did
        return self._resolver.resolve_handle(identifier, pds_url=self.pds_url)

    def handle_of(self, did: str) -> str | None:
        """The handle ``did`` claims (``alsoKnownAs``) if it resolves back to ``did``, else None."""
        session = self._session
        if session is not None and did == session.did:
            return session.handle
        try:
            doc = self._resolver.resolve_did_doc(did)
            for aka in doc.get("alsoKnownAs") or []:
                if isinstance(aka, str) and aka.startswith("at://"):
                    handle = aka[len("at://") :]
                    return handle if self.resolve_did(handle) == did else None
        except IdentityError:
            return None
        return None

    def resolve_pds(self, did: str) -> str:
        """The PDS endpoint hosting ``did`` (PLC directory or did:web document), cached."""
        session = self._session
        if session is not None and did == session.did:
            return self.pds_url
        return self._resolver.resolve_pds(did)

    def _reader_for(self, did: str) -> SdkClient:
        """The SDK client to read ``did``'s repository: ours if it lives on our PDS."""
        pds = self.resolve_pds(did)
        if pds == self.pds_url:
            return self._sdk
        client = self._foreign.get(pds)
        if client is None:
            atproto = _import_sdk()
            from atproto_client.request import Request

            # A separate, anonymous client: our tokens never go to another server.
            client = atproto.Client(base_url=pds, request=self._new_request(Request))
            self._foreign[pds] = client
        return client

    # ------------------------------------------------------------------ records

    def _prepare(
        self, collection: str, record: Mapping[str, Any], rkey: str | None, validate: bool
    ) -> dict[str, Any]:
        prepared = to_record_json(dict(record))
        validate_record(collection, prepared, rkey=rkey, lexicon=validate)
        return prepared

    def _own_uri(self, collection: str, rkey: str) -> AtUri:
        return AtUri(self.did, collection, rkey)

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

    # ------------------------------------------------------------------ blobs

    def describe_server(self) -> dict[str, Any]:
        """``com.atproto.server.describeServer`` of our PDS (``blobUploadLimit`` when set)."""
        data = self._query(
            self._sdk,
            "com.atproto.server.describeServer",
            {},
            what="describe server",
            target=self.pds_url,
        )
        self._describe = data
        return dict(data)

    @property
    def blob_upload_limit(self) -> int | None:
        """The PDS's largest accepted blob in bytes, or None if it does not say."""
        if self._describe is None:
            try:
                self.describe_server()
            except AtmosphereError:
                return None
        limit = (self._describe or {}).get("blobUploadLimit")
        return int(limit) if isinstance(limit, int) else None

    def upload_blob(
        self,
        data: bytes | bytearray | memoryview | str | os.PathLike[str] | IO[bytes],
        mime_type: str = "application/x-tar",
    ) -> dict[str, Any]:
        """Upload a blob and return its ref ``{"$type": "blob", "ref": {"$link": cid}, "mimeType", "size"}``.

        ``data`` is bytes, a file path or a binary file object; files are streamed, not
        read into memory. A blob larger than :attr:`blob_upload_limit` is refused before
        sending. The PDS keeps a blob only once a record references it.

        Example::

            ref = client.upload_blob("shard-000000.tar")
            client.create_record(collection, {"$type": collection, "shard": ref, ...})
        """
        session = self._require_session()
        body = _BlobBody(data)
        limit = self.blob_upload_limit
        if body.size is not None and limit is not None and body.size > limit:
            raise BlobTooLargeError(
                f"upload blob {body.name}: {body.size:,} bytes exceeds the blobUploadLimit of "
                f"{limit:,} bytes of {self.pds_url}",
                status=413,
                target=body.name,
            )
        url = self.pds_url + "/xrpc/com.atproto.repo.uploadBlob"
        timeout = httpx.Timeout(self._timeout, read=max(self._timeout, 300.0))

        def attempt() -> dict[str, Any]:
            headers = {
                "Content-Type": mime_type,
                "Authorization": f"Bearer {self._access_token()}",
                # A PDS that refuses an upload (413, 401...) answers before reading the whole
                # body; a kept-alive connection would then be left unusable for the next call.
                "Connection": "close",
            }
            if body.size is not None:
                headers["Content-Length"] = str(body.size)
            try:
                response = self._http.post(
                    url, content=body.content(), headers=headers, timeout=timeout
                )
            except httpx.TransportError as exc:
                raise Fault.from_transport(exc) from None
            if response.status_code != 200:
                raise Fault.from_response(response)
            blob = response.json().get("blob")
            if not isinstance(blob, dict):
                raise Fault(
                    response.status_code, "InvalidResponse", "no blob in the uploadBlob response"
                )
            return blob

        refresh = self.refresh_session if body.restartable else None
        try:
            return self._policy.run(
                attempt,
                refresh=refresh,
                retry_transient=body.restartable,
                retry_rate_limit=body.restartable,
            )
        except GaveUp as exc:
            raise self._error(exc, "upload blob", f"{body.name} for {session.did}") from None

    def get_blob_url(self, did: str, cid: str) -> str:
        """The HTTP URL of a blob on its owner's PDS (``com.atproto.sync.getBlob``)."""
        return str(
            httpx.URL(
                self.resolve_pds(did) + "/xrpc/com.atproto.sync.getBlob",
                params={"did": did, "cid": cid},
            )
        )

    def get_blob_stream(self, did: str, cid: str, *, verify: bool = True) -> IO[bytes]:
        """Stream a blob from its owner's PDS, checking its bytes against ``cid``.

        Returns a buffered binary file; reading to the end raises
        :class:`~atdata.atmosphere.blobs.BlobIntegrityError` if the content does not
        match the CID.

        Example::

            with client.get_blob_stream(did, cid) as f:
                shutil.copyfileobj(f, out)
        """
        BlobUrl(did, cid)  # syntax check
        return open_blob(
            self._http, self.resolve_pds(did), did, cid, verify=verify, policy=self._policy
        )

    def get_blob(self, did: str, cid: str, *, verify: bool = True) -> bytes:
        """A whole blob in memory (CID-checked); prefer :meth:`get_blob_stream` for shards."""
        with self.get_blob_stream(did, cid, verify=verify) as stream:
            return stream.read()

    def blob_source(
        self, blobs: Sequence[str | BlobUrl | Mapping[str, Any]], *, verify: bool = True
    ) -> BlobSource:
        """A :class:`~atdata.atmosphere.blobs.BlobSource` over ``blobs`` that uses this client."""
        return BlobSource(blobs, client=self, verify=verify)
