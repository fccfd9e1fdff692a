"""An ATProto client for atdata: sessions, records, blobs and identity resolution.

Built on the ``atproto`` SDK (``pip install atdata[atmosphere]``): the SDK handles
login, the session and its automatic token refresh; records travel as plain JSON
dicts through its generic XRPC calls, so nothing is converted to and from models.

Example::

    client = AtmosphereClient()
    client.login("alice.bsky.social", "app-password")
    uri = client.create_record("ac.foundation.dataset.record", record)

Every record is checked before it is sent (data-model rules, size, record key and,
for atdata's collections, the shipped lexicons). Rate limits (HTTP 429) are waited
out up to a bound, an expired access token is refreshed once, and network faults
are retried with backoff. Error messages name the record URI or collection and
never contain passwords or tokens.

The client is assembled from one module per concept: the session and XRPC plumbing
(``_session``), record calls (``_repo``), blob upload and streaming (``blobs``) and
the errors (``_errors``).
"""

from __future__ import annotations

from atdata.atmosphere._errors import (
    AtmosphereError,
    AuthenticationError,
    BatchWriteError,
    BlobTooLargeError,
    NotAuthenticatedError,
    RateLimitedError,
    RecordNotFoundError,
)
from atdata.atmosphere._repo import RepoCalls
from atdata.atmosphere._session import DEFAULT_PDS_URL
from atdata.atmosphere.blobs import BlobCalls

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


class AtmosphereClient(RepoCalls, BlobCalls):
    """A logged-in (or anonymous) connection to a PDS.

    ``base_url`` is the PDS or entryway to log in at (default ``$ATDATA_PDS_URL``,
    else ``https://bsky.social``);
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
