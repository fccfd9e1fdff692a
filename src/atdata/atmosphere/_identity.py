"""Resolve handles to DIDs and DIDs to their PDS, with a small time-limited cache.

``did:plc`` documents come from a PLC directory (``https://plc.directory`` unless
told otherwise, e.g. a local one in tests); ``did:web`` documents from
``https://{host}/.well-known/did.json`` (plain ``http`` is used only for
``localhost`` and loopback hosts, for local testing). A did:web host must be a
public one unless ``ATDATA_ALLOW_PRIVATE_URLS=1``: the DID may come from anyone's
record.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any
from urllib.parse import quote, unquote

import httpx

from atdata._urls import ReadPolicy, checked_http_client
from atdata.atmosphere.uri import is_valid_did, is_valid_handle
from atdata.errors import AtdataError

__all__ = ["DEFAULT_PLC_URL", "IdentityError", "IdentityResolver", "default_plc_url"]

DEFAULT_PLC_URL = "https://plc.directory"
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "[::1]"}


class IdentityError(AtdataError, LookupError):
    """A handle or DID could not be resolved, or its document names no PDS."""


def default_plc_url() -> str:
    """``$ATDATA_PLC_URL`` if set, else ``https://plc.directory``."""
    return os.environ.get("ATDATA_PLC_URL") or DEFAULT_PLC_URL


def pds_endpoint_from_doc(did: str, doc: dict[str, Any]) -> str:
    """The ``#atproto_pds`` service endpoint of a DID document (no trailing slash)."""
    if doc.get("id") != did:
        raise IdentityError(
            f"the DID document for {did} names a different subject {doc.get('id')!r}"
        )
    for service in doc.get("service") or []:
        sid = str(service.get("id", ""))
        if (sid == "#atproto_pds" or sid == f"{did}#atproto_pds") and service.get(
            "type"
        ) == "AtprotoPersonalDataServer":
            endpoint = service.get("serviceEndpoint")
            if isinstance(endpoint, str) and endpoint.startswith(("https://", "http://")):
                return endpoint.rstrip("/")
    raise IdentityError(f"the DID document for {did} names no AtprotoPersonalDataServer")


class IdentityResolver:
    """Handle -> DID -> PDS resolution, cached for ``ttl`` seconds.

    >>> r = IdentityResolver(plc_url="http://127.0.0.1:2582")  # doctest: +SKIP
    >>> r.resolve_pds("did:plc:ewvi7nxzyoun6zhxrhs64oiz")  # doctest: +SKIP
    'https://enoki.us-east.host.bsky.network'
    """

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

    def _web_http(self, policy: ReadPolicy) -> httpx.Client:
        """The HTTP client for did:web hosts: ours when private hosts are allowed, else pinned."""
        if policy.allow_private:
            return self._http
        with self._lock:
            if self._checked_http is None:
                self._checked_http = checked_http_client(policy, timeout=self._timeout)
            return self._checked_http

    def _get_json(self, url: str, what: str, *, http: httpx.Client | None = None) -> dict[str, Any]:
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

    def resolve_did_doc(self, did: str) -> dict[str, Any]:
        """Fetch the DID document of a ``did:plc`` or ``did:web``."""
        if not is_valid_did(did):
            raise IdentityError(f"{did!r} is not a DID")
        hit = self._cached("doc:" + did)
        if hit is not None:
            return dict(hit)
        if did.startswith("did:plc:"):
            doc = self._get_json(
                f"{self.plc_url}/{quote(did, safe=':')}", f"the DID document of {did}"
            )
        elif did.startswith("did:web:"):
            ident = did[len("did:web:") :]
            if ":" in ident:
                raise IdentityError(f"{did}: did:web with a path is not used by ATProto")
            host = unquote(ident)
            hostname = (
                host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
            )
            scheme = "http" if hostname in _LOOPBACK_HOSTS else "https"
            url = f"{scheme}://{host}/.well-known/did.json"
            # A did:web may come from anyone's record: its host must be public unless
            # the reader opts in (ATDATA_ALLOW_PRIVATE_URLS), and is reached pinned.
            policy = ReadPolicy.make()
            policy.check(url)
            doc = self._get_json(url, f"the DID document of {did}", http=self._web_http(policy))
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
        the user's own PDS knows its accounts), then ``https://{handle}/.well-known/atproto-did``,
        then the DNS TXT record ``_atproto.{handle}`` (if ``dnspython`` is installed).
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
            did = self._resolve_handle_https(handle) or self._resolve_handle_dns(handle)
        if not did or not is_valid_did(did):
            raise IdentityError(f"cannot resolve the handle {handle!r} to a DID")
        self._store("handle:" + handle, did)
        return did

    def _resolve_handle_https(self, handle: str) -> str | None:
        try:
            response = self._http.get(
                f"https://{handle}/.well-known/atproto-did", timeout=self._timeout
            )
        except httpx.HTTPError:
            return None
        text = response.text.strip() if response.status_code == 200 else ""
        return text if is_valid_did(text) else None

    @staticmethod
    def _resolve_handle_dns(handle: str) -> str | None:
        try:
            import dns.resolver
        except ImportError:
            return None
        try:
            answers = dns.resolver.resolve(f"_atproto.{handle}", "TXT", lifetime=5.0)
        except Exception:
            return None
        for answer in answers:
            text = b"".join(answer.strings).decode("ascii", "replace")
            if text.startswith("did="):
                return text[len("did=") :]
        return None
