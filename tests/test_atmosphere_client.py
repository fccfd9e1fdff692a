"""AtmosphereClient against the real reference PDS and PLC directory (no mocks).

Faults a healthy local server cannot produce (a 429, a lost response, a refused
connection) are injected by an httpx transport that otherwise forwards every request
to the real PDS.
"""

from __future__ import annotations

import base64
import http.server
import io
import json
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from atdata.atmosphere import (
    AtmosphereClient,
    AtmosphereError,
    AtUri,
    AuthenticationError,
    BatchWriteError,
    BlobTooLargeError,
    IdentityError,
    IdentityResolver,
    LexiconValidationError,
    NotAuthenticatedError,
    PrivateURLError,
    RateLimitedError,
    RecordNotFoundError,
)
from atdata.atmosphere._lexicon import MAX_RECORD_BYTES

RECORD = "ac.foundation.dataset.record"
SCHEMA_URI = "at://did:plc:abc123/ac.foundation.dataset.sampleSchema/3kabcdefghij2"


def dataset_record(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "$type": RECORD,
        "name": name,
        "schemaRef": SCHEMA_URI,
        "storage": {
            "$type": "ac.foundation.dataset.storageExternal",
            "urls": ["https://example.com/d-{0..3}.tar"],
        },
        "createdAt": "2026-01-26T12:00:00+00:00",
        **extra,
    }


class FaultInjector(httpx.BaseTransport):
    """Forwards to the real server; injects the faults queued with :meth:`inject`."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.faults: list[tuple[str, Callable[[httpx.Request], httpx.Response]]] = []
        self.seen: list[str] = []
        self.injected: list[str] = []

    def inject(self, nsid: str, fault: Callable[[httpx.Request], httpx.Response]) -> None:
        self.faults.append((nsid, fault))

    def count(self, nsid: str) -> int:
        return sum(1 for path in self.seen if path.endswith("/" + nsid))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.url.path)
        for i, (nsid, fault) in enumerate(self.faults):
            if request.url.path.endswith("/" + nsid):
                del self.faults[i]
                self.injected.append(nsid)
                return fault(request)
        return self.inner.handle_request(request)

    def forward(self, request: httpx.Request) -> httpx.Response:
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def too_many_requests(
    reset_in: float, retry_after: str | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    def respond(request: httpx.Request) -> httpx.Response:
        headers = {
            "ratelimit-limit": "5000",
            "ratelimit-remaining": "0",
            "ratelimit-reset": str(int(time.time() + reset_in)),
            "ratelimit-policy": "5000;w=3600",
        }
        if retry_after is not None:
            headers["retry-after"] = retry_after
        return httpx.Response(
            429,
            headers=headers,
            json={"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
        )

    return respond


@pytest.fixture
def injector() -> Iterator[FaultInjector]:
    transport = FaultInjector()
    yield transport
    transport.close()


@pytest.fixture
def faulty_client(
    pds_account: dict[str, str], injector: FaultInjector
) -> Iterator[AtmosphereClient]:
    client = AtmosphereClient(
        pds_account["pds_url"], plc_url=pds_account["plc_url"], transport=injector
    )
    client.login(pds_account["handle"], pds_account["password"])
    yield client
    client.close()


def secrets_of(client: AtmosphereClient) -> list[str]:
    session = client.export_session().split(":::")
    return [session[2], session[3]]


# --------------------------------------------------------------------------- login and sessions


def test_login_exposes_identity(pds_account: dict[str, str]) -> None:
    client = AtmosphereClient(pds_account["pds_url"], plc_url=pds_account["plc_url"])
    assert not client.is_authenticated
    client.login(pds_account["handle"], pds_account["password"])
    assert client.is_authenticated
    assert client.did == pds_account["did"]
    assert client.handle == pds_account["handle"]
    assert client.pds_url == pds_account["pds_url"]
    assert pds_account["handle"] in repr(client)
    for secret in secrets_of(client):
        assert secret not in repr(client)
    client.close()


def test_wrong_password_names_the_handle_not_the_password(pds_account: dict[str, str]) -> None:
    client = AtmosphereClient(pds_account["pds_url"], plc_url=pds_account["plc_url"])
    with pytest.raises(AuthenticationError) as info:
        client.login(pds_account["handle"], "wrong-" + pds_account["password"])
    assert pds_account["handle"] in str(info.value)
    assert pds_account["password"] not in str(info.value)
    assert not client.is_authenticated


def test_calls_that_need_a_session_say_so(pds_server: Any) -> None:
    client = AtmosphereClient(pds_server.url, plc_url=pds_server.env["PLC_URL"])
    for call in (
        lambda: client.did,
        lambda: client.handle,
        client.export_session,
        lambda: client.create_record(RECORD, dataset_record("x")),
        lambda: client.upload_blob(b"x"),
    ):
        with pytest.raises(NotAuthenticatedError, match="not logged in"):
            call()
    assert isinstance(NotAuthenticatedError("x"), ValueError)  # what the seed-era client raised
    assert client.describe_server()["availableUserDomains"] == [".test"]  # anonymous calls work


def test_session_export_and_resume_after_refresh(
    pds_account: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "state" / "session"
    client = AtmosphereClient(
        pds_account["pds_url"], plc_url=pds_account["plc_url"], session_path=path
    )
    client.login(pds_account["handle"], pds_account["password"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = client.export_session()
    assert path.read_text() == first

    client.refresh_session()  # refresh tokens rotate: the file must follow
    second = client.export_session()
    assert second != first
    assert second.split(":::")[3] != first.split(":::")[3]
    assert path.read_text() == second
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    resumed = AtmosphereClient.from_session_file(path, plc_url=pds_account["plc_url"])
    assert resumed.did == pds_account["did"] and resumed.handle == pds_account["handle"]
    uri = resumed.create_record(RECORD, dataset_record("after-resume"))
    assert client.get_record(uri)["name"] == "after-resume"
    resumed.refresh_session()
    assert path.read_text() == resumed.export_session()

    also = AtmosphereClient.from_session(resumed.export_session(), plc_url=pds_account["plc_url"])
    assert also.pds_url == pds_account["pds_url"]  # the PDS comes from the session string
    with pytest.raises(AuthenticationError, match="session string"):
        AtmosphereClient(pds_account["pds_url"]).login_with_session("garbage")


def _tamper(token: str) -> str:
    """Same claims with a far expiry, but a signature the server will reject."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["exp"] = int(time.time()) + 86400
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature[::-1]}"


def test_rejected_access_token_is_refreshed_and_the_call_retried(
    pds_client: AtmosphereClient,
) -> None:
    parts = pds_client.export_session().split(":::")
    parts[2] = _tamper(parts[2])
    resumed = AtmosphereClient.from_session(":::".join(parts), plc_url=pds_client.plc_url)
    assert resumed.export_session().split(":::")[2] != parts[2]  # it was refreshed
    uri = resumed.create_record(RECORD, dataset_record("fresh-token"))
    assert pds_client.get_record(uri)["name"] == "fresh-token"

    # with an unusable refresh token too, the error says to log in again and leaks nothing
    parts = resumed.export_session().split(":::")
    bad = [parts[0], parts[1], _tamper(parts[2]), _tamper(parts[3]), parts[4]]
    with pytest.raises(AuthenticationError, match="log in again") as info:
        AtmosphereClient.from_session(":::".join(bad), plc_url=pds_client.plc_url)
    stale = AtmosphereClient(pds_client.pds_url, plc_url=pds_client.plc_url)
    with pytest.raises(AuthenticationError):
        stale.login_with_session(":::".join(bad))
    assert not stale.is_authenticated
    for secret in (*bad[2:4], *parts[2:4]):
        assert secret not in str(info.value)


# --------------------------------------------------------------------------- records


def test_many_records_round_trip_with_uris(pds_client: AtmosphereClient) -> None:
    n = 250
    uris = pds_client.apply_writes([(RECORD, dataset_record(f"ds-{i:03d}")) for i in range(n)])
    assert len(uris) == n and len(set(uris)) == n
    assert all(
        u.cid and u.cid.startswith("bafyrei") and u.authority == pds_client.did for u in uris
    )

    k = 30
    single = [pds_client.create_record(RECORD, dataset_record(f"single-{i}")) for i in range(k)]

    page, cursor = pds_client.list_records(RECORD, limit=100)
    assert len(page) == 100 and cursor is not None
    assert set(page[0]) == {"uri", "cid", "value"}
    everything = list(pds_client.iter_records(RECORD))
    assert len(everything) == n + k
    by_uri = {AtUri.parse(r["uri"]): r for r in everything}
    for uri in uris + single:
        assert by_uri[uri]["cid"] == uri.cid
    assert by_uri[uris[123]]["value"]["name"] == "ds-123"
    assert pds_client.get_record(uris[200])["name"] == "ds-200"
    entry = pds_client.get_record_entry(str(uris[7]))
    assert entry["cid"] == uris[7].cid and AtUri.parse(entry["uri"]) == uris[7]
    assert len(list(pds_client.iter_records(RECORD, page_size=37))) == n + k


def test_apply_writes_splits_large_batches_by_size(
    faulty_client: AtmosphereClient, injector: FaultInjector
) -> None:
    blob = "x" * 40_000
    records = [
        (RECORD, dataset_record(f"big-{i}", description=blob[:4999]), None) for i in range(3)
    ]
    records += [
        (RECORD, dataset_record(f"fat-{i}", fill={"text": blob})) for i in range(60)
    ]  # ~2.4 MB
    uris = faulty_client.apply_writes(records)
    assert injector.count("com.atproto.repo.applyWrites") >= 3
    names = [faulty_client.get_record(u)["name"] for u in (uris[0], uris[3], uris[-1])]
    assert names == ["big-0", "fat-0", "fat-59"]
    assert len(list(faulty_client.iter_records(RECORD))) == 63


def test_put_delete_and_missing_records(pds_client: AtmosphereClient) -> None:
    first = pds_client.put_record(RECORD, "my-dataset", dataset_record("v1"))
    assert first.rkey == "my-dataset" and first.cid
    second = pds_client.put_record(
        RECORD, "my-dataset", dataset_record("v2"), swap_record=first.cid
    )
    assert second == first and second.cid != first.cid
    assert pds_client.get_record(first)["name"] == "v2"
    with pytest.raises(AtmosphereError, match="my-dataset"):
        pds_client.put_record(RECORD, "my-dataset", dataset_record("v3"), swap_record=first.cid)

    pds_client.delete_record(first)
    with pytest.raises(RecordNotFoundError) as info:
        pds_client.get_record(first)
    assert str(first) in str(info.value)
    assert isinstance(info.value, KeyError)
    pds_client.delete_record(first)  # already gone: fine

    uri = pds_client.create_record(RECORD, dataset_record("a"), rkey="fixed-key")
    with pytest.raises(AtmosphereError, match="already exists") as dup:
        pds_client.create_record(RECORD, dataset_record("b"), rkey="fixed-key")
    assert str(uri) in str(dup.value)
    assert pds_client.get_record(uri)["name"] == "a"


def test_invalid_records_are_rejected_before_anything_is_sent(
    faulty_client: AtmosphereClient, injector: FaultInjector
) -> None:
    bad = [
        (dataset_record("float", size={"samples": 1.5}), None, "size.samples", "floats"),
        (dataset_record("rkey"), "no/slashes", "rkey", "not a valid record key"),
        (
            {k: v for k, v in dataset_record("missing").items() if k != "schemaRef"},
            None,
            "schemaRef",
            "required",
        ),
        (dataset_record("huge", fill="x" * MAX_RECORD_BYTES), None, "", "over the"),
    ]
    for record, rkey, path, message in bad:
        with pytest.raises(LexiconValidationError, match=message) as info:
            faulty_client.create_record(RECORD, record, rkey=rkey)
        assert info.value.path == path and info.value.nsid == RECORD
        with pytest.raises(LexiconValidationError, match=message):
            faulty_client.apply_writes([(RECORD, dataset_record("good")), (RECORD, record, rkey)])
    assert injector.count("com.atproto.repo.createRecord") == 0
    assert injector.count("com.atproto.repo.applyWrites") == 0
    assert faulty_client.list_records(RECORD) == ([], None)


# --------------------------------------------------------------------------- other accounts


def test_reads_other_accounts_through_their_did(
    pds_account_factory: Callable[[], dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = pds_account_factory(), pds_account_factory()
    a = AtmosphereClient(alice["pds_url"], plc_url=alice["plc_url"])
    a.login(alice["handle"], alice["password"])
    uri = a.create_record(RECORD, dataset_record("alice-data"))
    blob = a.upload_blob(b"alice's shard bytes", mime_type="application/x-tar")
    a.create_record(
        RECORD,
        dataset_record(
            "with-blob", storage={"$type": "ac.foundation.dataset.storageBlobs", "blobs": [blob]}
        ),
    )
    cid = blob["ref"]["$link"]

    b = AtmosphereClient(bob["pds_url"], plc_url=bob["plc_url"])
    b.login(bob["handle"], bob["password"])
    assert b.get_record(uri)["name"] == "alice-data"
    by_handle = f"at://{alice['handle']}/{RECORD}/{uri.rkey}"
    assert b.get_record(by_handle)["name"] == "alice-data"
    assert b.resolve_did(alice["handle"]) == alice["did"]
    names = {r["value"]["name"] for r in b.iter_records(RECORD, repo=alice["handle"])}
    assert names == {"alice-data", "with-blob"}

    # An anonymous client whose own host is unreachable still finds alice's PDS via the PLC;
    # that PDS is on loopback and was named by a DID document, so the reader opts in.
    monkeypatch.delenv("ATDATA_ALLOW_PRIVATE_URLS", raising=False)
    monkeypatch.delenv("ATDATA_PDS_URL", raising=False)
    refusing = AtmosphereClient("http://127.0.0.1:9", plc_url=alice["plc_url"])
    with pytest.raises(PrivateURLError, match="local host name"):
        refusing.get_record(uri)
    with pytest.raises(PrivateURLError, match="local host name"):
        refusing.get_blob(alice["did"], cid)
    monkeypatch.setenv("ATDATA_ALLOW_PRIVATE_URLS", "1")
    stranger = AtmosphereClient("http://127.0.0.1:9", plc_url=alice["plc_url"])
    assert stranger.resolve_pds(alice["did"]) == alice["pds_url"]
    assert stranger.get_record(uri)["name"] == "alice-data"
    assert stranger.get_blob(alice["did"], cid) == b"alice's shard bytes"
    assert stranger.get_blob_url(alice["did"], cid).startswith(
        alice["pds_url"] + "/xrpc/com.atproto.sync.getBlob?"
    )
    page, _ = stranger.list_records(RECORD, repo=alice["did"])
    assert len(page) == 2
    with pytest.raises(IdentityError):
        stranger.resolve_pds("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa")


def test_did_web_documents_are_resolved(pds_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    docs: dict[str, Any] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(docs.get(self.path)).encode()
            self.send_response(200 if self.path in docs else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        did = f"did:web:localhost%3A{server.server_address[1]}"
        docs["/.well-known/did.json"] = {
            "id": did,
            "service": [
                {
                    "id": "#atproto_pds",
                    "type": "AtprotoPersonalDataServer",
                    "serviceEndpoint": pds_server.url + "/",
                }
            ],
        }
        resolver = IdentityResolver(plc_url=pds_server.env["PLC_URL"])
        # a did:web host on loopback is read only by a reader who opts in
        monkeypatch.delenv("ATDATA_ALLOW_PRIVATE_URLS", raising=False)
        with pytest.raises(PrivateURLError, match="local host name"):
            resolver.resolve_pds(did)
        monkeypatch.setenv("ATDATA_ALLOW_PRIVATE_URLS", "1")
        assert resolver.resolve_pds(did) == pds_server.url
        other = f"did:web:127.0.0.1%3A{server.server_address[1]}"
        with pytest.raises(IdentityError, match="different subject"):
            resolver.resolve_pds(other)
        with pytest.raises(IdentityError, match="path"):
            resolver.resolve_pds(did + ":user:alice")
        docs["/.well-known/did.json"] = {"id": did, "service": []}
        resolver.forget()
        with pytest.raises(IdentityError, match="no AtprotoPersonalDataServer"):
            resolver.resolve_pds(did)
    finally:
        server.shutdown()


# --------------------------------------------------------------------------- faults


def test_rate_limit_is_waited_out_and_retried(
    faulty_client: AtmosphereClient, injector: FaultInjector
) -> None:
    injector.inject("com.atproto.repo.createRecord", too_many_requests(reset_in=1, retry_after="1"))
    t0 = time.perf_counter()
    uri = faulty_client.create_record(RECORD, dataset_record("after-429"))
    elapsed = time.perf_counter() - t0
    assert injector.injected == ["com.atproto.repo.createRecord"]
    assert elapsed >= 0.9
    assert [r["uri"] for r in faulty_client.iter_records(RECORD)] == [str(uri)]

    # without retry-after, the ratelimit-reset time is honoured
    injector.inject("com.atproto.repo.listRecords", too_many_requests(reset_in=2))
    t0 = time.perf_counter()
    assert len(faulty_client.list_records(RECORD)[0]) == 1
    assert time.perf_counter() - t0 >= 0.9


def test_rate_limit_too_far_away_fails_fast(
    faulty_client: AtmosphereClient, injector: FaultInjector
) -> None:
    injector.inject("com.atproto.repo.createRecord", too_many_requests(reset_in=3600))
    t0 = time.perf_counter()
    with pytest.raises(RateLimitedError, match="resets in") as info:
        faulty_client.create_record(RECORD, dataset_record("limited"), rkey="limited")
    assert time.perf_counter() - t0 < 5
    assert f"{RECORD}/limited" in str(info.value)
    for secret in secrets_of(faulty_client):
        assert secret not in str(info.value)


def test_lost_response_is_recovered_without_duplicates(
    faulty_client: AtmosphereClient, injector: FaultInjector
) -> None:
    def lose_response(request: httpx.Request) -> httpx.Response:
        injector.forward(request).close()  # the write reaches the PDS...
        raise httpx.ReadError("connection reset by peer", request=request)  # ...the answer is lost

    injector.inject("com.atproto.repo.createRecord", lose_response)
    uri = faulty_client.create_record(RECORD, dataset_record("once"))
    injector.inject("com.atproto.repo.applyWrites", lose_response)
    uris = faulty_client.apply_writes([(RECORD, dataset_record(f"batch-{i}")) for i in range(5)])
    assert injector.injected == ["com.atproto.repo.createRecord", "com.atproto.repo.applyWrites"]
    assert injector.count("com.atproto.repo.createRecord") == 1  # recovered, not re-sent
    listed = {AtUri.parse(r["uri"]): r["cid"] for r in faulty_client.iter_records(RECORD)}
    assert set(listed) == {uri, *uris}
    assert all(listed[u] == u.cid for u in uris)


def test_transient_errors_are_retried(
    faulty_client: AtmosphereClient, injector: FaultInjector
) -> None:
    uri = faulty_client.create_record(RECORD, dataset_record("transient"))

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    injector.inject("com.atproto.repo.getRecord", refuse)
    injector.inject(
        "com.atproto.repo.getRecord", lambda r: httpx.Response(503, json={"error": "Unavailable"})
    )
    assert faulty_client.get_record(uri)["name"] == "transient"
    assert injector.injected == ["com.atproto.repo.getRecord"] * 2

    # retries are bounded: a client allowing 2 gives up on the third failure
    impatient = AtmosphereClient(
        faulty_client.pds_url, plc_url=faulty_client.plc_url, max_retries=2, transport=injector
    )
    for _ in range(5):
        injector.inject("com.atproto.repo.getRecord", refuse)
    with pytest.raises(
        AtmosphereError, match=r"network error \(ConnectError\) \(after 2 retries\)"
    ) as info:
        impatient.get_record(uri)
    assert str(uri) in str(info.value)
    assert len(injector.faults) == 2
    injector.faults.clear()


def test_batch_failure_reports_what_was_written(
    faulty_client: AtmosphereClient, injector: FaultInjector
) -> None:
    def reject(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": "InvalidRequest", "message": "nope"})

    records = [(RECORD, dataset_record(f"r{i}")) for i in range(250)]
    calls = {"n": 0}
    original = injector.handle_request

    def second_batch_fails(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/com.atproto.repo.applyWrites"):
            calls["n"] += 1
            if calls["n"] == 2:
                return reject(request)
        return original(request)

    injector.handle_request = second_batch_fails  # type: ignore[method-assign]
    with pytest.raises(BatchWriteError, match="200 of 250 records were written") as info:
        faulty_client.apply_writes(records)
    assert len(info.value.written) == 200
    assert len(list(faulty_client.iter_records(RECORD))) == 200


# --------------------------------------------------------------------------- blobs


def test_upload_blob_from_bytes_paths_and_files(
    pds_client: AtmosphereClient, tmp_path: Path, record_property: Any
) -> None:
    assert pds_client.blob_upload_limit == pds_client.describe_server()["blobUploadLimit"]
    small = pds_client.upload_blob(b"hello", mime_type="text/plain")
    assert small["$type"] == "blob" and small["size"] == 5 and small["mimeType"] == "text/plain"
    assert small["ref"]["$link"].startswith("bafkrei")

    data = os.urandom(64 * 1024 * 1024)
    path = tmp_path / "shard.tar"
    path.write_bytes(data)
    t0 = time.perf_counter()
    from_path = pds_client.upload_blob(path)
    mb_s = len(data) / 1e6 / (time.perf_counter() - t0)
    record_property("uploadBlob_MB_per_s_64MB", round(mb_s, 1))
    print(f"\nuploadBlob 64 MB from a file: {mb_s:.0f} MB/s")
    with open(path, "rb") as fh:
        fh.read(10)  # a file object uploads from its current position
        from_file = pds_client.upload_blob(fh)
    assert from_file["size"] == len(data) - 10
    from_bytes = pds_client.upload_blob(data)
    assert from_path["ref"] == from_bytes["ref"] and from_path["size"] == len(data)
    pds_client.create_record(
        RECORD,
        dataset_record(
            "blobs",
            storage={
                "$type": "ac.foundation.dataset.storageBlobs",
                "blobs": [from_path, from_file],
            },
        ),
    )
    t0 = time.perf_counter()
    assert pds_client.get_blob(pds_client.did, from_path["ref"]["$link"]) == data
    record_property("getBlob_MB_per_s_64MB", round(len(data) / 1e6 / (time.perf_counter() - t0), 1))


def test_oversized_blob_is_refused_before_sending(
    faulty_client: AtmosphereClient, injector: FaultInjector, tmp_path: Path
) -> None:
    limit = faulty_client.blob_upload_limit
    assert limit is not None
    sparse = tmp_path / "huge.tar"
    with open(sparse, "wb") as fh:
        fh.truncate(limit + 1)  # sparse: no disk used, nothing read
    with pytest.raises(BlobTooLargeError, match=f"{limit:,}") as info:
        faulty_client.upload_blob(sparse)
    assert str(sparse) in str(info.value)
    assert injector.count("com.atproto.repo.uploadBlob") == 0


def test_upload_blob_retries_a_rate_limit(
    faulty_client: AtmosphereClient, injector: FaultInjector
) -> None:
    injector.inject("com.atproto.repo.uploadBlob", too_many_requests(reset_in=1, retry_after="1"))
    ref = faulty_client.upload_blob(b"retry me")
    assert ref["size"] == 8 and injector.injected == ["com.atproto.repo.uploadBlob"]


@pytest.mark.slow
def test_small_blob_limit_server(tmp_path: Path) -> None:
    from atdata.stack.pds import create_account, start_pds

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "precious.txt").write_text("not ours")
    with pytest.raises(ValueError, match="not empty"):
        start_pds(taken)
    assert (taken / "precious.txt").exists()

    state = tmp_path / "state"
    with start_pds(state, blob_limit=1024 * 1024) as server:
        assert server.env["PDS_BLOB_UPLOAD_LIMIT"] == str(1024 * 1024)
        account = create_account(server, "small", "a-long-password-123")
        assert account["handle"] == "small.test"
        client = AtmosphereClient(server.url, plc_url=server.env["PLC_URL"])
        client.login(account["handle"], "a-long-password-123")
        assert client.blob_upload_limit == 1024 * 1024
        with pytest.raises(BlobTooLargeError, match="1,048,576"):
            client.upload_blob(b"x" * (1024 * 1024 + 1))  # refused here, before sending

        class Unsized(io.RawIOBase):  # a non-seekable stream: the size is unknown up front
            def __init__(self, n: int) -> None:
                self.left = n

            def readable(self) -> bool:
                return True

            def readinto(self, buffer: Any) -> int:
                n = min(len(buffer), self.left)
                buffer[:n] = b"y" * n
                self.left -= n
                return n

        with pytest.raises(BlobTooLargeError, match="413 PayloadTooLarge"):  # refused by the PDS
            client.upload_blob(io.BufferedReader(Unsized(3 * 1024 * 1024)))
        # the refused upload must not leave a broken connection behind
        assert client.upload_blob(io.BufferedReader(Unsized(1000)))["size"] == 1000
        client.close()
    assert (state / "server.log").exists()  # a data dir you pass is kept at stop
    with start_pds(state) as again:  # ...and reused (wiped) at the next start
        assert again.data_dir == state
        assert not list((state / "blobs").rglob("bafkrei*"))


@pytest.mark.slow
def test_real_rate_limit_from_the_pds() -> None:
    """With the PDS's production rate limits on, createSession allows 30 tries per 5 min."""
    from atdata.stack.pds import create_account, start_pds

    with start_pds(rate_limits=True) as server:
        create_account(server, "limited", "a-long-password-123")
        client = AtmosphereClient(server.url, plc_url=server.env["PLC_URL"])
        for _ in range(30):
            with pytest.raises(AuthenticationError):
                client.login("limited.test", "wrong-password")
        t0 = time.perf_counter()
        with pytest.raises(RateLimitedError, match=r"resets in \d+ s") as info:
            client.login("limited.test", "a-long-password-123")
        assert time.perf_counter() - t0 < 5  # a reset minutes away is not waited for
        assert info.value.status == 429 and "limited.test" in str(info.value)
        assert "a-long-password-123" not in str(info.value)
        client.close()
