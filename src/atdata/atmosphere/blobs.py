"""PDS blobs: upload them, and stream them back checking every byte against the blob's CID.

A blob's CID (CIDv1, raw codec, sha2-256) is the SHA-256 of its content, so a reader
can verify what the PDS sent without trusting it: :class:`BlobSource` hashes each
shard while it streams and raises :class:`BlobIntegrityError` at the end of a shard
whose bytes do not match. Nothing holds a whole shard in memory.

Example::

    source = BlobSource.from_urls(["at://did:plc:abc/blob/bafkrei..."])
    ds = atdata.Dataset[MySample](source)

The client's blob calls (:class:`BlobCalls`: ``upload_blob``, ``get_blob_stream``...)
live here too, so uploading and streaming share one module.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol, TypeAlias

import httpx
import libipld

from atdata._urls import ReadPolicy, checked_http_client
from atdata.atmosphere._errors import AtmosphereError, BlobTooLargeError
from atdata.atmosphere._identity import IdentityResolver
from atdata.atmosphere._retry import Fault, GaveUp, RetryPolicy
from atdata.atmosphere._session import XrpcSession
from atdata.atmosphere.uri import BlobUrl
from atdata.errors import PrivateURLError, ShardError

__all__ = [
    "BinaryReadable",
    "BlobCalls",
    "BlobData",
    "BlobIntegrityError",
    "BlobNotFoundError",
    "BlobSource",
    "VerifiedBlobStream",
    "blob_digest",
    "open_blob",
]

_CHUNK = 1 << 20
_DRAIN_LIMIT = 1 << 20


class BlobIntegrityError(ShardError):
    """The bytes a PDS served for a blob do not hash to the blob's CID."""


class BlobNotFoundError(ShardError, KeyError):
    """The PDS has no such blob in that repository (or it is not referenced by a record)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def blob_digest(cid: str) -> bytes:
    """The SHA-256 digest a blob CID commits to; ``ValueError`` for other hash functions.

    >>> blob_digest("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku").hex()[:16]
    'e3b0c44298fc1c14'
    """
    try:
        decoded = libipld.decode_cid(cid)
    except Exception:
        raise ValueError(f"{cid!r} is not a CID") from None
    digest = decoded["hash"]
    if digest["code"] != 0x12 or digest["size"] != 32:
        raise ValueError(f"{cid!r} does not use sha2-256; cannot verify it")
    if decoded["codec"] != 0x55:
        raise ValueError(f"{cid!r} is not a raw-codec (blob) CID")
    return bytes(digest["digest"])


class VerifiedBlobStream(io.RawIOBase):
    """A readable, non-seekable stream over a getBlob response that checks the CID.

    The SHA-256 of the bytes is computed as they arrive and compared with ``cid`` at
    end of stream; a mismatch raises :class:`BlobIntegrityError` from ``read``. Closing
    early drains up to 1 MiB (a tar trailer) to finish the check; a stream closed
    further from its end is left unverified (``verified`` stays False).
    """

    def __init__(
        self,
        response: httpx.Response,
        shard_id: str,
        cid: str,
        *,
        verify: bool = True,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.shard_id = shard_id
        self._response = response
        self._expected = blob_digest(cid) if verify else None
        self._hasher = hashlib.sha256()
        self._chunks: Iterator[bytes] = response.iter_bytes(_CHUNK)
        self._pending = memoryview(b"")
        self._eof = False
        self._received = 0
        self._on_close = on_close
        self.verified: bool = False

    def readable(self) -> bool:
        return True

    @property
    def bytes_read(self) -> int:
        """Bytes received from the server so far."""
        return self._received

    def _next_chunk(self) -> bool:
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self._finish()
            return False
        except httpx.HTTPError as exc:
            raise ShardError(
                self.shard_id,
                f"connection lost after {self._received} bytes ({type(exc).__name__})",
            ) from None
        self._hasher.update(chunk)
        self._received += len(chunk)
        self._pending = memoryview(chunk)
        return True

    def _finish(self) -> None:
        self._eof = True
        if self._expected is None:
            return
        actual = self._hasher.digest()
        if actual != self._expected:
            raise BlobIntegrityError(
                self.shard_id,
                f"content does not match its CID: received {self._received} bytes with "
                f"sha256 {actual.hex()}, the CID says {self._expected.hex()}",
            )
        self.verified = True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending:
            if self._eof or not self._next_chunk():
                return 0
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        if self.closed:
            return
        try:
            if not self._eof and self._expected is not None:
                drained = 0
                try:
                    while drained <= _DRAIN_LIMIT and self._next_chunk():
                        drained += len(self._pending)
                        self._pending = memoryview(b"")
                except BlobIntegrityError:
                    raise
                except ShardError:
                    pass  # the connection dropped while draining: leave it unverified
        finally:
            self._response.close()
            if self._on_close is not None:
                self._on_close()
            super().close()


def open_blob(
    http: httpx.Client,
    pds_url: str,
    did: str,
    cid: str,
    *,
    verify: bool = True,
    policy: RetryPolicy | None = None,
    buffer_size: int = _CHUNK,
) -> IO[bytes]:
    """Open ``com.atproto.sync.getBlob`` on ``pds_url`` as a buffered, CID-checked stream."""
    shard_id = str(BlobUrl(did, cid))
    if verify:
        try:
            blob_digest(cid)
        except ValueError as exc:
            raise ShardError(shard_id, str(exc)) from None
    url = pds_url.rstrip("/") + "/xrpc/com.atproto.sync.getBlob"

    def attempt() -> httpx.Response:
        try:
            # Ask for the raw bytes: the reference PDS would otherwise gzip every blob on
            # the fly (tar shards barely compress; it cuts throughput about 4x).
            request = http.build_request(
                "GET", url, params={"did": did, "cid": cid}, headers={"Accept-Encoding": "identity"}
            )
            response = http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise Fault.from_transport(exc) from None
        if response.status_code != 200:
            fault = Fault.from_response(response)
            response.close()
            raise fault
        return response

    try:
        response = (policy or RetryPolicy()).run(attempt)
    except GaveUp as exc:
        if exc.fault.not_found or exc.fault.status == 400:
            raise BlobNotFoundError(shard_id, f"not found on {pds_url}: {exc.reason}") from None
        raise ShardError(shard_id, f"cannot fetch from {pds_url}: {exc.reason}") from None
    raw = VerifiedBlobStream(response, shard_id, cid, verify=verify)
    return io.BufferedReader(raw, buffer_size=buffer_size)


def _blob_from_item(item: str | BlobUrl | Mapping[str, Any], index: int) -> BlobUrl:
    if isinstance(item, BlobUrl | str):
        return BlobUrl.parse(item)
    if isinstance(item, Mapping):
        did = item.get("did")
        cid = item.get("cid")
        ref = item.get("ref")
        if cid is None and isinstance(ref, Mapping):
            cid = ref.get("$link")
        if isinstance(did, str) and isinstance(cid, str):
            return BlobUrl(did, cid)
    raise ValueError(
        f"blob reference {index} must be 'at://did/blob/cid', {{'did', 'cid'}} or a blob ref "
        f"with a 'did' key; got {item!r}"
    )


class BlobSource:
    """A :class:`~atdata.protocols.DataSource` over PDS blobs, one shard per blob.

    Shard ids are ``at://{did}/blob/{cid}`` strings (:class:`BlobUrl`). Each owner's
    PDS is found through its DID document (``did:plc`` via the PLC directory, ``plc_url``
    or ``$ATDATA_PLC_URL``; ``did:web`` via its host); with ``client`` given, the
    client's resolver and connection pool are used. Shards are streamed and verified
    against their CIDs (``verify=False`` skips that).

    A DID document is someone else's data: the PDS it names must be a public host
    unless it is one the reader configured (the client's PDS, ``$ATDATA_PDS_URL``)
    or ``allow_private_urls`` (default ``$ATDATA_ALLOW_PRIVATE_URLS``); ``policy``
    replaces both. Blobs from another PDS are read over pinned connections that
    re-check every redirect hop.

    Example::

        source = BlobSource.from_refs([{"did": "did:plc:abc", "cid": "bafkrei..."}])
        with source.open_shard(source.list_shards()[0]) as f:
            header = f.read(512)
    """

    def __init__(
        self,
        blobs: Sequence[str | BlobUrl | Mapping[str, Any]],
        *,
        client: XrpcSession | None = None,
        plc_url: str | None = None,
        verify: bool = True,
        timeout: float = 60.0,
        allow_private_urls: bool | None = None,
        policy: ReadPolicy | None = None,
    ) -> None:
        if policy is None:
            trusted = [] if client is None else client.own_pds_urls
            policy = ReadPolicy.make(allow_private_urls, trusted=trusted)
        self.policy = policy
        self.blobs: list[BlobUrl] = [_blob_from_item(item, i) for i, item in enumerate(blobs)]
        self._ids = [str(b) for b in self.blobs]
        self._by_id = dict(zip(self._ids, self.blobs))
        self.client = client
        self.plc_url: str | None = (
            plc_url if plc_url is not None else getattr(client, "plc_url", None)
        )
        self.verify = verify
        self.timeout = timeout
        self._pds: dict[str, str] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._http: httpx.Client | None = None
        self._checked_http: httpx.Client | None = None
        self._resolver: IdentityResolver | None = None

    @classmethod
    def from_refs(
        cls,
        refs: Sequence[Mapping[str, Any]],
        *,
        client: XrpcSession | None = None,
        plc_url: str | None = None,
        verify: bool = True,
        allow_private_urls: bool | None = None,
    ) -> BlobSource:
        """From ``{"did", "cid"}`` dicts (or blob refs ``{"ref": {"$link": cid}, ...}`` plus ``"did"``).

        >>> BlobSource.from_refs([{"did": "did:plc:abc",
        ...     "cid": "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"}]).list_shards()
        ['at://did:plc:abc/blob/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku']
        """
        return cls(
            list(refs),
            client=client,
            plc_url=plc_url,
            verify=verify,
            allow_private_urls=allow_private_urls,
        )

    @classmethod
    def from_urls(
        cls,
        urls: Sequence[str],
        *,
        client: XrpcSession | None = None,
        plc_url: str | None = None,
        verify: bool = True,
        allow_private_urls: bool | None = None,
    ) -> BlobSource:
        """From ``at://{did}/blob/{cid}`` shard ids."""
        if isinstance(urls, str):
            urls = [urls]
        return cls(
            list(urls),
            client=client,
            plc_url=plc_url,
            verify=verify,
            allow_private_urls=allow_private_urls,
        )

    def __repr__(self) -> str:
        return f"BlobSource({len(self.blobs)} blobs)"

    def list_shards(self) -> list[str]:
        """The shard ids, ``at://{did}/blob/{cid}``, in order."""
        return list(self._ids)

    @property
    def shard_list(self) -> list[str]:
        """The existing atdata's name of :meth:`list_shards`."""
        return self.list_shards()

    @property
    def shards(self) -> Iterator[tuple[str, IO[bytes]]]:
        """``(shard_id, stream)`` pairs, opened lazily."""
        for shard_id in self._ids:
            yield shard_id, self.open_shard(shard_id)

    def _check_process(self) -> None:
        # httpx clients must not cross a fork: make fresh ones in a child process.
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._http = None
            self._checked_http = None
            self._resolver = None
            self._lock = threading.Lock()

    def _session(self) -> tuple[httpx.Client, RetryPolicy]:
        if self.client is not None:
            return self.client.http, self.client.retry_policy
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(timeout=self.timeout, follow_redirects=True)
            return self._http, RetryPolicy()

    def pds_for(self, did: str) -> str:
        """The PDS endpoint serving ``did``'s blobs (resolved once, then cached)."""
        self._check_process()
        with self._lock:
            known = self._pds.get(did)
        if known is not None:
            return known
        if self.client is not None:
            endpoint = self.client.resolve_pds(did)
        else:
            http, _ = self._session()
            with self._lock:
                if self._resolver is None:
                    self._resolver = IdentityResolver(self.plc_url, http=http)
                resolver = self._resolver
            endpoint = resolver.resolve_pds(did)
        with self._lock:
            self._pds[did] = endpoint
        return endpoint

    def open_shard(self, shard_id: str) -> IO[bytes]:
        """Stream one blob; ``KeyError`` if ``shard_id`` is not in this source."""
        blob = self._by_id.get(shard_id)
        if blob is None:
            raise KeyError(f"{shard_id!r} is not a shard of this source")
        self._check_process()
        try:
            pds = self.pds_for(blob.did)
        except LookupError as exc:
            raise ShardError(shard_id, f"cannot find the PDS of {blob.did}: {exc}") from None
        http, retry = self._session()
        if not self.policy.is_trusted(pds):
            try:
                self.policy.check(pds)
            except PrivateURLError as exc:
                raise PrivateURLError(
                    f"{shard_id}: the DID document of {blob.did} names the PDS {pds}: {exc}",
                    url=pds,
                ) from None
            if not self.policy.allow_private:
                http = self._checked_session()
        try:
            return open_blob(http, pds, blob.did, blob.cid, verify=self.verify, policy=retry)
        except PrivateURLError as exc:  # a redirect to a place the policy refuses
            raise PrivateURLError(f"{shard_id}: {exc}", url=pds) from None

    def _checked_session(self) -> httpx.Client:
        """The pinned HTTP client for PDSes the reader did not configure itself."""
        with self._lock:
            if self._checked_http is None:
                self._checked_http = checked_http_client(self.policy, timeout=self.timeout)
            return self._checked_http

    def close(self) -> None:
        """Close the HTTP connections this source opened (not those of ``client``)."""
        if self._http is not None and self.client is None:
            self._http.close()
        if self._checked_http is not None:
            self._checked_http.close()
        self._http = None
        self._checked_http = None
        self._resolver = None

    def __enter__(self) -> BlobSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        # Picklable for worker processes: drop connections and the (unpicklable) client,
        # keep the PDS endpoints resolved so far.
        state = self.__dict__.copy()
        if state.get("client") is not None:
            for did in {b.did for b in self.blobs}:
                with contextlib.suppress(LookupError):
                    state["_pds"][did] = self.pds_for(did)
        state.update(
            client=None, _http=None, _checked_http=None, _resolver=None, _lock=None, _pid=-1
        )
        state["_pds"] = dict(state["_pds"])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._pid = os.getpid()


class BinaryReadable(Protocol):
    """A binary file, or anything with its ``read``, ``seek`` and ``tell``.

    An upload from a file that cannot seek (a pipe) is sent once, never retried.
    """

    def read(self, size: int = -1, /) -> bytes: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...

    def tell(self) -> int: ...


BlobData: TypeAlias = bytes | bytearray | memoryview | str | os.PathLike[str] | BinaryReadable
"""What :meth:`BlobCalls.upload_blob` sends: bytes, a file path or a binary file."""


class _BlobBody:
    """What to upload: a size (if known), a name for messages, and a way to (re)read it."""

    def __init__(self, data: BlobData) -> None:
        self._file: BinaryReadable | None = None
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
    def _read_file(fh: BinaryReadable) -> Iterator[bytes]:
        while chunk := fh.read(1 << 20):
            yield chunk


class BlobCalls(XrpcSession):
    """The blob calls of :class:`~atdata.atmosphere.AtmosphereClient`: upload, URL, stream."""

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
        data: BlobData,
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
                response = self.http.post(
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
            return self.retry_policy.run(
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
        pds = self.resolve_pds(did)
        return open_blob(
            self._http_for(pds), pds, did, cid, verify=verify, policy=self.retry_policy
        )

    def get_blob(self, did: str, cid: str, *, verify: bool = True) -> bytes:
        """A whole blob in memory (CID-checked); prefer :meth:`get_blob_stream` for shards."""
        with self.get_blob_stream(did, cid, verify=verify) as stream:
            return stream.read()

    def blob_source(
        self,
        blobs: Sequence[str | BlobUrl | Mapping[str, Any]],
        *,
        verify: bool = True,
        allow_private_urls: bool | None = None,
    ) -> BlobSource:
        """A :class:`~atdata.atmosphere.blobs.BlobSource` over ``blobs`` that uses this client."""
        return BlobSource(blobs, client=self, verify=verify, allow_private_urls=allow_private_urls)
