"""Repository identities for ingestion: signing keys and verified handles from DID documents."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from atdata.atmosphere._identity import IdentityError, IdentityResolver, pds_endpoint_from_doc

__all__ = ["Identities", "Identity"]


@dataclass(frozen=True)
class Identity:
    """What the AppView keeps of a DID document: signing key, verified handle, PDS."""

    did: str
    did_key: str
    handle: str | None
    pds: str | None


class Identities:
    """DID -> :class:`Identity`, cached for ``ttl`` seconds and refreshed on demand.

    The handle is the first ``at://`` alias of the document that resolves back to
    the same DID (bidirectional check); otherwise None.
    """

    def __init__(self, plc_url: str | None = None, *, ttl: float = 3600.0) -> None:
        self.resolver = IdentityResolver(plc_url, ttl=ttl)
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Identity]] = {}
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
        return ident

    def _resolve(self, did: str) -> Identity:
        from atproto_core.did_doc import DidDocument

        doc = self.resolver.resolve_did_doc(did)
        try:
            parsed = DidDocument.from_dict(doc)
        except Exception:  # the SDK's model validation raises pydantic errors
            raise IdentityError(f"the DID document of {did} is malformed") from None
        if parsed.id != did:
            raise IdentityError(f"the DID document for {did} names {parsed.id!r}")
        did_key = parsed.get_did_key()
        if not did_key:
            raise IdentityError(f"the DID document of {did} has no #atproto signing key")
        try:
            pds: str | None = pds_endpoint_from_doc(did, doc)
        except IdentityError:
            pds = None
        handle = None
        for alias in doc.get("alsoKnownAs") or []:
            if isinstance(alias, str) and alias.startswith("at://"):
                candidate = alias[len("at://") :].lower()
                try:
                    if self.resolver.resolve_handle(candidate, pds_url=pds) == did:
                        handle = candidate
                except IdentityError:
                    pass
                break
        return Identity(did, did_key, handle, pds)
