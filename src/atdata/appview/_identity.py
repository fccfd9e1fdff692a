"""Repository identities for ingestion: signing keys and verified handles from DID documents."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from atdata.atmosphere._identity import (
    IdentityError,
    IdentityResolver,
    pds_endpoint_from_doc,
    signing_key_from_doc,
)

__all__ = ["Identities", "Identity"]


@dataclass(frozen=True)
class Identity:
    """What the AppView keeps of a DID document: signing key, verified handle, PDS."""

    did: str
    did_key: str
    handle: str | None
    pds: str | None


_RESERVED_TLDS = {"test", "example", "invalid", "localhost", "local"}
"""Top-level domains that never resolve on the public internet (RFC 2606, RFC 6762)."""


class Identities:
    """DID -> :class:`Identity`, cached for ``ttl`` seconds and refreshed on demand.

    The handle is the first ``at://`` alias of the document, kept only if the handle
    resolves back to the same DID (bidirectional check); otherwise None. A handle is
    resolved by its own HTTPS/DNS records; only a handle under one of the user domains
    the account's PDS declares (``describeServer``), such as ``.test`` on a local PDS,
    is resolved by asking that PDS.
    """

    def __init__(
        self, plc_url: str | None = None, *, ttl: float = 3600.0, max_entries: int = 100_000
    ) -> None:
        self.resolver: IdentityResolver = IdentityResolver(plc_url, ttl=ttl)
        self._ttl = ttl
        self._cache: OrderedDict[str, tuple[float, Identity]] = OrderedDict()
        self._max_entries = max_entries
        self._domains: dict[str, tuple[float, list[str]]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the resolver's HTTP client."""
        self.resolver.close()

    def get(self, did: str, *, refresh: bool = False) -> Identity:
        """The identity of ``did``; ``refresh`` drops the cached document first."""
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(did)
        if hit and hit[0] > now and not refresh:
            return hit[1]
        if refresh:
            self.resolver.forget(did)
        ident = self._resolve(did)
        with self._lock:
            self._cache[did] = (now + self._ttl, ident)
            self._cache.move_to_end(did)
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        return ident

    def _resolve(self, did: str) -> Identity:
        doc = self.resolver.resolve_did_doc(did)
        if doc.get("id") != did:
            raise IdentityError(f"the DID document for {did} names {doc.get('id')!r}")
        did_key = signing_key_from_doc(did, doc)
        try:
            pds: str | None = pds_endpoint_from_doc(did, doc)
        except IdentityError:
            pds = None
        handle = None
        for alias in doc.get("alsoKnownAs") or []:
            if isinstance(alias, str) and alias.startswith("at://"):
                candidate = alias[len("at://") :].lower()
                if self._handle_did(candidate, pds) == did:
                    handle = candidate
                break
        return Identity(did, did_key, handle, pds)

    def _handle_did(self, handle: str, pds: str | None) -> str | None:
        """The DID ``handle`` resolves to, by its own records or, for its domains, its PDS."""
        resolver = self.resolver
        resolver.forget(handle)
        if handle.rsplit(".", 1)[-1] not in _RESERVED_TLDS:
            did = resolver.resolve_handle_records(handle)
            if did:
                return did
        if pds and any(handle.endswith(d) for d in self._user_domains(pds)):
            try:
                return resolver.resolve_handle(handle, pds_url=pds)
            except IdentityError:
                return None
        return None

    def _user_domains(self, pds: str) -> list[str]:
        hit = self._domains.get(pds)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        try:
            data = self.resolver.get_json(
                pds + "/xrpc/com.atproto.server.describeServer", "describeServer"
            )
        except IdentityError:
            return []
        domains = [
            d
            for d in data.get("availableUserDomains") or []
            if isinstance(d, str) and d.startswith(".")
        ]
        self._domains[pds] = (time.monotonic() + self._ttl, domains)
        return domains
