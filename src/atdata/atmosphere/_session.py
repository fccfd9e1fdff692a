"""The connection to a PDS: login, the session and its persistence, and the XRPC plumbing.

:class:`XrpcSession` holds the ``atproto`` SDK client and the session (tokens are
refreshed ahead of expiry, from the JWT's ``exp`` claim, and written mode 0600 to
``session_path`` after each change), resolves identities, and runs every XRPC call
through one :class:`~atdata.atmosphere._retry.RetryPolicy`, turning a failure into
an :mod:`~atdata.atmosphere._errors` error. :class:`~atdata.atmosphere.AtmosphereClient`
builds its record and blob calls on it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

import httpx

from atdata._urls import ReadPolicy, checked_http_client, checked_transport
from atdata.atmosphere._errors import (
    AtmosphereError,
    AuthenticationError,
    NotAuthenticatedError,
    error_for,
    sdk_fault,
)
from atdata.atmosphere._identity import IdentityError, IdentityResolver, default_plc_url
from atdata.atmosphere._retry import Fault, GaveUp, RetryPolicy
from atdata.atmosphere.uri import is_valid_did

if TYPE_CHECKING:
    from atproto import Client as SdkClient
    from atproto import Session

__all__ = ["DEFAULT_PDS_URL", "MAX_REQUEST_BYTES", "XrpcSession"]

T = TypeVar("T")

DEFAULT_PDS_URL = "https://bsky.social"
MAX_REQUEST_BYTES = 1_000_000
"""Largest JSON body of a write request on the reference PDS."""
_REFRESH_MARGIN_S = 300
_BAD_SESSION = "not a valid atdata/atproto session string (corrupt or truncated: log in again)"


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


class XrpcSession:
    """A logged-in (or anonymous) connection to a PDS; see :class:`~atdata.atmosphere.AtmosphereClient`."""

    base_url: str
    """The PDS or entryway logged in at."""
    plc_url: str
    """The PLC directory resolving ``did:plc`` identities."""
    session_path: Path | None
    """Where the session is persisted (mode 0600), or None."""
    http: httpx.Client
    """The connection pool for the servers this client was configured with."""
    retry_policy: RetryPolicy
    """How calls are retried (rate limits, token refresh, transient faults)."""

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

        base_url = base_url or os.environ.get("ATDATA_PDS_URL") or DEFAULT_PDS_URL
        self.base_url = base_url.rstrip("/").removesuffix("/xrpc")
        self.plc_url = (plc_url or default_plc_url()).rstrip("/")
        self.session_path = Path(session_path) if session_path is not None else None
        self._timeout = timeout
        self._transport = transport
        self.retry_policy = RetryPolicy(
            max_retries=max_retries, max_rate_limit_wait=max_rate_limit_wait
        )
        self._sdk: SdkClient = atproto.Client(
            base_url=self.base_url, request=self._new_request(Request)
        )
        self._sdk.on_session_change(self._on_session_change)
        self._session: Session | None = None
        self._session_lock = threading.RLock()
        self.http = httpx.Client(timeout=timeout, follow_redirects=True, transport=transport)
        self._resolver = IdentityResolver(self.plc_url, http=self.http)
        self._checked_http: httpx.Client | None = None  # for PDSes named by DID documents
        self._foreign: dict[str, SdkClient] = {}
        self._describe: dict[str, Any] | None = None

    def _new_request(self, request_cls: Any) -> Any:
        kwargs: dict[str, Any] = {"timeout": self._timeout}
        if self._transport is not None:
            kwargs["transport"] = self._transport
        return request_cls(**kwargs)

    def __repr__(self) -> str:
        who = self._session.handle if self._session else "anonymous"
        return f"{type(self).__name__}({self.pds_url!r}, {who})"

    def close(self) -> None:
        """Close the HTTP connections."""
        self.http.close()
        if self._checked_http is not None:
            self._checked_http.close()
        for client in [self._sdk, *self._foreign.values()]:
            with contextlib.suppress(Exception):
                client.request.close()

    def __enter__(self) -> Self:
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
    def own_pds_urls(self) -> list[str]:
        """The PDS URLs the user configured (``base_url``) or logged in to: trusted when reading."""
        found = [self.base_url]
        if self._session is not None:
            found.append(self.pds_url)
        return found

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
                raise sdk_fault(exc) from None

        try:
            self.retry_policy.run(attempt, retry_transient=True)
        except GaveUp as exc:
            raise self._error(exc, "login as", handle, auth=True, url=self.base_url) from None

    def login_with_session(self, session_string: str) -> None:
        """Resume a session exported by :meth:`export_session` (refreshing it if needed).

        Example::

            client.login_with_session(Path("~/.atdata-session").expanduser().read_text())
        """
        from atproto_core.exceptions import AtProtocolError

        session_string = session_string.strip()
        try:
            self._sdk.login(session_string=session_string, fetch_bsky_profile=False)
        except (ValueError, TypeError, KeyError, AtProtocolError) as exc:
            fault = sdk_fault(exc)
            if isinstance(fault, Fault):  # the server answered or could not be reached
                raise self._error(
                    GaveUp(fault, fault.describe()), "resume session at", self.base_url
                ) from None
            raise AuthenticationError(_BAD_SESSION) from None
        session = self._session
        if session is None or any(
            _jwt_exp(token) is None for token in (session.access_jwt, session.refresh_jwt)
        ):
            self._session = None
            raise AuthenticationError(_BAD_SESSION)
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
    def from_session(cls, session_string: str, base_url: str | None = None, **kwargs: Any) -> Self:
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
    def from_session_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> Self:
        """Resume the session stored at ``path`` and keep that file up to date."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            text = ""
        try:
            return cls.from_session(text, session_path=path, **kwargs)
        except AuthenticationError as exc:
            if exc.status is not None:
                raise
            raise AuthenticationError(
                f"the session file {path} is corrupt (not a session string); log in again "
                "to replace it, or delete the file"
            ) from None

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
                    raise sdk_fault(exc) from None

            try:
                data = self.retry_policy.run(attempt)
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

    def _error(
        self, exc: GaveUp, what: str, target: str, *, auth: bool = False, url: str | None = None
    ) -> AtmosphereError:
        return error_for(exc, what, target, url=url or self.pds_url, auth=auth)

    def _run(
        self,
        fn: Callable[[], T],
        *,
        what: str,
        target: str,
        recover: Callable[[], T | None] | None = None,
        authenticated: bool = True,
        url: str | None = None,
    ) -> T:
        refresh = self.refresh_session if authenticated and self._session is not None else None
        try:
            return self.retry_policy.run(fn, refresh=refresh, recover=recover)
        except GaveUp as exc:
            raise self._error(exc, what, target, url=url) from None

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
                # The SDK's generic query takes any dict-like params at runtime; its
                # annotation names only its generated models.
                query_params: Any = DotDict(clean) if clean else None
                response = sdk.invoke_query(nsid, params=query_params)
            except Exception as exc:
                raise sdk_fault(exc) from None
            content = response.content
            return dict(content) if isinstance(content, Mapping) else {}

        url = next((pds for pds, c in self._foreign.items() if c is sdk), None)
        return self._run(attempt, what=what, target=target, authenticated=sdk is self._sdk, url=url)

    def _procedure(
        self,
        nsid: str,
        body: Mapping[str, Any],
        *,
        what: str,
        target: str,
        recover: Callable[[], dict[str, Any] | None] | None = None,
    ) -> dict[str, Any]:
        content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
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
                raise sdk_fault(exc) from None
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

            # A separate, anonymous client: our tokens never go to another server. The
            # PDS comes from someone's DID document: unless it is one we configured, it
            # must be a public host (opt in: ATDATA_ALLOW_PRIVATE_URLS), and connections
            # to it are pinned to the checked address.
            policy = ReadPolicy.make(trusted=self.own_pds_urls)
            request = self._new_request(Request)
            if not policy.is_trusted(pds):
                policy.check(pds)
                if not policy.allow_private and self._transport is None:
                    request = Request(
                        timeout=self._timeout,
                        trust_env=False,
                        transport=checked_transport(policy),
                    )
            client = atproto.Client(base_url=pds, request=request)
            self._foreign[pds] = client
        return client

    def _http_for(self, pds: str) -> httpx.Client:
        """Our HTTP client for a PDS we configured; for one a DID document names, a pinned
        client, after checking the PDS is a public host (opt in: ATDATA_ALLOW_PRIVATE_URLS)."""
        policy = ReadPolicy.make(trusted=self.own_pds_urls)
        if policy.is_trusted(pds):
            return self.http
        policy.check(pds)
        if policy.allow_private or self._transport is not None:
            return self.http
        if self._checked_http is None:
            self._checked_http = checked_http_client(policy, timeout=self._timeout)
        return self._checked_http
