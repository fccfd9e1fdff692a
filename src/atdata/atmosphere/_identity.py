"""Resolve handles to DIDs and DIDs to their PDS, with a small time-limited cache.

The ``atproto`` SDK does the protocol work: ``did:plc`` documents are fetched by its
PLC resolver (from ``https://plc.directory`` unless told otherwise, e.g. a local
directory in tests), handles' DNS ``_atproto`` TXT records are read by its handle
resolver, and a document's PDS and signing key are read by its ``DidDocument``.
The SDK (``pip install 'atdata[atmosphere]'``) is imported on first use.

Kept here, and why:

- ``did:web`` documents and handles' ``/.well-known/atproto-did`` are fetched by
  this module: a did:web or a handle may come from anyone's record, so the host must
  be a public one (unless ``ATDATA_ALLOW_PRIVATE_URLS=1``) and is reached over a
  connection pinned to the checked address (:func:`atdata._urls.checked_http_client`),
  which the SDK's resolvers cannot do. The SDK also reads ``did:web:localhost%3A8080``
  as a host named ``localhost%3A8080``; the did:web spec percent-decodes the port.
  Plain ``http`` is used only for ``localhost`` and loopback hosts, for local testing.
- A document whose ``id`` is not the DID asked for is refused with a message saying so.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any
from urllib.parse import unquote

import httpx

from atdata._urls import ReadPolicy, checked_http_client
from atdata.atmosphere.uri import is_valid_did, is_valid_handle
from atdata.errors import AtdataError

__all__ = ["DEFAULT_PLC_URL", "IdentityError", "IdentityResolver", "default_plc_url"]

DEFAULT_PLC_URL = "https://plc.directory"
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "[::1]"}
_DNS_TIMEOUT_S = 5.0


class IdentityError(AtdataError, LookupError):
    """A handle or DID could not be resolved, or its document names no PDS."""


def default_plc_url() -> str:
    """``$ATDATA_PLC_URL`` if set, else ``https://plc.directory``."""
    return os.environ.get("ATDATA_PLC_URL") or DEFAULT_PLC_URL


def pds_endpoint_from_doc(did: str, doc: dict[str, Any]) -> str:
    """The ``#atproto_pds`` service endpoint of a DID document (no trailing slash).

    >>> pds_endpoint_from_doc("did:plc:abc", {"id": "did:plc:abc", "service": [{"id": "#atproto_pds",
    ...     "type": "AtprotoPersonalDataServer", "serviceEndpoint": "https://pds.example/"}]})
    'https://pds.example'
    """
    from atproto_core.did_doc import DidDocument

    if doc.get("id") != did:
        raise IdentityError(
            f"the DID document for {did} names a different subject {doc.get('id')!r}"
        )
    try:
        endpoint = DidDocument.from_dict(doc).get_pds_endpoint()
    except Exception:  # the SDK's model validation raises pydantic errors
        raise IdentityError(f"the DID document of {did} is malformed") from None
    if not isinstance(endpoint, str):
        raise IdentityError(f"the DID document for {did} names no AtprotoPersonalDataServer")
    return endpoint.rstrip("/")


def signing_key_from_doc(did: str, doc: dict[str, Any]) -> str:
    """The ``#atproto`` signing key of a DID document, as a ``did:key``."""
    from atproto_core.did_doc import DidDocument

    try:
        did_key = DidDocument.from_dict(doc).get_did_key()
    except Exception:  # the SDK's model validation raises pydantic errors
        raise IdentityError(f"the DID document of {did} is malformed") from None
    if not did_key:
        raise IdentityError(f"the DID document of {did} has no #atproto signing key")
    return did_key


def _web_did_url(did: str) -> str:
    ident = did[len("did:web:") :]
    if ":" in ident:
        raise IdentityError(f"{did}: did:web with a path is not used by ATProto")
    host = unquote(ident)
    hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    scheme = "http" if hostname in _LOOPBACK_HOSTS else "https"
    return f"{scheme}://{host}/.well-known/did.json"


class IdentityResolver:
    """Handle -> DID -> PDS resolution, cached for ``ttl`` seconds.

    Example::

        r = IdentityResolver(plc_url="http://127.0.0.1:2582")
        r.resolve_pds("did:plc:ewvi7nxzyoun6zhxrhs64oiz")  # 'https://pds.example'
    """

    plc_url: str
    """The PLC directory that serves ``did:plc`` documents."""

    def __init__(
        self,
        plc_url: str | None = None,
        *,
        http: httpx.Client | None = None,
        ttl: float = 300.0,
        timeout: float = 10.0,
    ) -> None:
        self.plc_url = (plc_url or default_plc_url()).rstrip("/")
        self._own_http = http is None
        self._http = http or httpx.Client(timeout=timeout, follow_redirects=True)
        self._ttl = ttl
        self._timeout = timeout
        self._cache: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._checked_http: httpx.Client | None = None
        self._plc: Any = None  # the SDK's DidPlcResolver, made on first use
        self._handles: Any = None  # the SDK's HandleResolver, made on first use

    def close(self) -> None:
        """Close the HTTP clients this resolver created."""
        if self._own_http:
            self._http.close()
        if self._checked_http is not None:
            self._checked_http.close()

    def _cached(self, key: str) -> Any:
        with self._lock:
            hit = self._cache.get(key)
            if hit and hit[0] > time.monotonic():
                return hit[1]
            return None

    def _store(self, key: str, value: Any) -> None:
        with self._lock:
            self._cache[key] = (time.monotonic() + self._ttl, value)

    def forget(self, key: str | None = None) -> None:
        """Drop one cached handle/DID (or everything)."""
        with self._lock:
            if key is None:
                self._cache.clear()
            else:
                for prefix in ("doc:", "handle:"):
                    self._cache.pop(prefix + key, None)

    def _foreign_http(self, url: str) -> httpx.Client:
        """The HTTP client for a host named by someone's data: checked, then pinned."""
        policy = ReadPolicy.make()
        policy.check(url)
        if policy.allow_private:
            return self._http
        with self._lock:
            if self._checked_http is None:
                self._checked_http = checked_http_client(policy, timeout=self._timeout)
            return self._checked_http

    def get_json(self, url: str, what: str, *, http: httpx.Client | None = None) -> dict[str, Any]:
        """GET a JSON object (``what`` names it in errors); :class:`IdentityError` otherwise."""
        try:
            response = (http or self._http).get(url, timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise IdentityError(f"cannot fetch {what} from {url}: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise IdentityError(f"cannot fetch {what} from {url}: HTTP {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            raise IdentityError(f"{what} from {url} is not JSON") from None
        if not isinstance(data, dict):
            raise IdentityError(f"{what} from {url} is not a JSON object")
        return data

    def _plc_doc(self, did: str) -> dict[str, Any]:
        from atproto_identity.did.resolvers.plc_resolver import DidPlcResolver
        from atproto_identity.exceptions import DidPlcResolverError

        if self._plc is None:
            self._plc = DidPlcResolver(self.plc_url, timeout=self._timeout)
        url = f"{self.plc_url}/{did}"
        what = f"the DID document of {did}"
        try:
            doc = self._plc.resolve_without_validation(did)
        except DidPlcResolverError as exc:
            cause = exc.__cause__
            if isinstance(cause, httpx.HTTPStatusError):
                status = cause.response.status_code
                raise IdentityError(f"cannot fetch {what} from {url}: HTTP {status}") from None
            reason = type(cause).__name__ if cause is not None else "error"
            raise IdentityError(f"cannot fetch {what} from {url}: {reason}") from None
        except ValueError:
            raise IdentityError(f"{what} from {url} is not JSON") from None
        if doc is None:
            raise IdentityError(f"cannot fetch {what} from {url}: HTTP 404")
        if not isinstance(doc, dict):
            raise IdentityError(f"{what} from {url} is not a JSON object")
        return doc

    def resolve_did_doc(self, did: str) -> dict[str, Any]:
        """Fetch the DID document of a ``did:plc`` or ``did:web``."""
        if not is_valid_did(did):
            raise IdentityError(f"{did!r} is not a DID")
        hit = self._cached("doc:" + did)
        if hit is not None:
            return dict(hit)
        if did.startswith("did:plc:"):
            doc = self._plc_doc(did)
        elif did.startswith("did:web:"):
            url = _web_did_url(did)
            http = self._foreign_http(url)
            doc = self.get_json(url, f"the DID document of {did}", http=http)
        else:
            raise IdentityError(f"{did}: only did:plc and did:web are supported")
        self._store("doc:" + did, doc)
        return dict(doc)

    def resolve_pds(self, did: str) -> str:
        """The PDS endpoint that hosts ``did``'s repository, e.g. ``https://pds.example``."""
        return pds_endpoint_from_doc(did, self.resolve_did_doc(did))

    def resolve_handle(self, handle: str, *, pds_url: str | None = None) -> str:
        """The DID of ``handle``.

        Tries ``com.atproto.identity.resolveHandle`` on ``pds_url`` first (a local or
        the user's own PDS knows its accounts), then the handle's own records
        (:meth:`resolve_handle_records`).
        """
        handle = handle.lower().removeprefix("@")
        if not is_valid_handle(handle):
            raise IdentityError(f"{handle!r} is not a handle")
        hit = self._cached("handle:" + handle)
        if hit is not None:
            return str(hit)
        did = None
        if pds_url:
            try:
                response = self._http.get(
                    pds_url.rstrip("/") + "/xrpc/com.atproto.identity.resolveHandle",
                    params={"handle": handle},
                    timeout=self._timeout,
                )
                if response.status_code == 200:
                    did = response.json().get("did")
            except (httpx.HTTPError, ValueError):
                did = None
        if did is None:
            did = self.resolve_handle_records(handle)
        if not did or not is_valid_did(did):
            raise IdentityError(f"cannot resolve the handle {handle!r} to a DID")
        self._store("handle:" + handle, did)
        return did

    def resolve_handle_records(self, handle: str) -> str | None:
        """The DID ``handle``'s own records name: ``https://{handle}/.well-known/atproto-did``,
        then the DNS TXT record ``_atproto.{handle}``; None if neither does."""
        return self._handle_https(handle) or self._handle_dns(handle)

    def _handle_https(self, handle: str) -> str | None:
        url = f"https://{handle}/.well-known/atproto-did"
        try:
            response = self._foreign_http(url).get(url, timeout=self._timeout)
        except (httpx.HTTPError, AtdataError):  # unreachable, or not a public host
            return None
        text = response.text.strip() if response.status_code == 200 else ""
        return text if is_valid_did(text) else None

    def _handle_dns(self, handle: str) -> str | None:
        from atproto_identity.handle.resolver import HandleResolver

        if self._handles is None:
            self._handles = HandleResolver(timeout=_DNS_TIMEOUT_S)
        try:
            did = self._handles.resolve_dns(handle)
        except Exception:  # a DNS failure is "no record", never an error
            return None
        return did if isinstance(did, str) and is_valid_did(did) else None
