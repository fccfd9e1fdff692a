"""The URL policy: one classifier for reading other people's records and for publishing ours.

Readers are tested against real records on the test PDS, real HTTP servers on loopback
and the SeaweedFS S3 server; DNS answers (a name resolving to a private address, or
changing between two lookups) are faults no local server produces, so ``getaddrinfo``
and ``create_connection`` are patched for those tests only.
"""

from __future__ import annotations

import functools
import http.server
import socket
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import atdata
from atdata._urls import (
    ReadPolicy,
    check_publishable,
    credential_reason,
    parse_ip,
    url_concern,
)
from atdata.atmosphere import AtmosphereIndex, DatasetLoader, DatasetPublisher, PDSBlobStore
from atdata.errors import (
    AtdataError,
    CredentialURLError,
    PrivateURLError,
    PrivateURLWarning,
    ShardError,
)
from atdata.local import S3DataStore
from atdata.sources import URLSource
from helpers import private_atdata_home  # noqa: F401 - autouse fixture


@atdata.packable
class Row:
    vec: NDArray[np.float32]
    label: int


# ------------------------------------------------------------------ the classifier

# Addresses written the ways the system resolver reads them, all non-public.
PRIVATE_FORMS = [
    ("http://127.1/d.tar", "127.0.0.1 is a loopback"),
    ("http://0x7f.0.0.1/d.tar", "127.0.0.1 is a loopback"),
    ("http://2130706433/d.tar", "127.0.0.1 is a loopback"),
    ("http://017700000001/d.tar", "127.0.0.1 is a loopback"),
    ("http://localhost./d.tar", "local host name"),
    ("http://LocalHost/d.tar", "local host name"),
    ("http://169.254.169.254./latest/meta-data/", "link-local"),
    ("http://0xa9fea9fe/latest/meta-data/", "link-local"),
    ("http://[::ffff:127.0.0.1]/d.tar", "127.0.0.1 is a loopback"),
    ("http://[::ffff:a9fe:a9fe]/d.tar", "link-local"),
    ("http://[::1]:8080/d.tar", "loopback"),
    ("http://[fe80::1]/d.tar", "link-local"),
    ("http://10.1/d.tar", "10.0.0.1 is a private-network"),
    ("https://192.168.1.20/d.tar", "private-network"),
    ("http://[fd00::5]/d.tar", "private-network"),
    ("http://0.0.0.0/d.tar", "0.0.0.0"),
    ("http://minio:9000/d.tar", "single-label"),
    ("http://nas.internal/d.tar", "local host name"),
]


@pytest.mark.parametrize(("url", "why"), PRIVATE_FORMS)
def test_private_forms_are_classified_alike_for_reading_and_publishing(url: str, why: str) -> None:
    concern = url_concern(url, resolve=False)
    assert concern is not None and why in concern.reason
    with pytest.raises(PrivateURLError, match="refusing to read") as read:
        ReadPolicy().check(url)
    with pytest.raises(PrivateURLError, match="others likely cannot read") as publish:
        check_publishable([url], require_public=True)
    assert isinstance(read.value, AtdataError) and isinstance(publish.value, AtdataError)
    ReadPolicy(allow_private=True).check(url)  # the explicit opt-in


def test_resolver_forms_parse_like_inet_aton() -> None:
    assert str(parse_ip("127.1")) == "127.0.0.1"
    assert str(parse_ip("0x7f.1")) == "127.0.0.1"
    assert str(parse_ip("10.0.258")) == "10.0.1.2"
    assert str(parse_ip("[::ffff:10.0.0.1]")) == "10.0.0.1"
    assert parse_ip("data.example.org") is None and parse_ip("0xzz.1") is None


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    """Make ``getaddrinfo`` answer ``answers`` for these names; return the names looked up."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name in answers:
            asked.append(name)
            family = socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (ip, port or 0)) for ip in answers[name]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def test_names_that_resolve_to_private_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"files.corp.example.com": ["10.20.0.7"], "cdn.example.net": ["8.8.8.8"]})
    concern = url_concern("https://files.corp.example.com/d.tar")
    assert concern is not None
    assert (
        concern.reason
        == "'files.corp.example.com' resolves to 10.20.0.7, a private-network address"
    )
    with pytest.raises(PrivateURLError, match=r"resolves to 10\.20\.0\.7"):
        check_publishable(["https://files.corp.example.com/d.tar"], require_public=True)
    assert url_concern("https://cdn.example.net/d.tar") is None


def test_public_urls_publish_without_a_warning() -> None:
    urls = ["https://93.184.216.34/d-{000..009}.tar", "s3://public-bucket/d.tar"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_publishable(urls)
        check_publishable(urls, require_public=True)
    assert caught == []


def test_the_warning_names_each_url_and_why() -> None:
    with pytest.warns(PrivateURLWarning) as caught:
        check_publishable(["/data/x.tar", "http://10.0.0.1/a.tar", "https://93.184.216.34/ok.tar"])
    (warning,) = caught
    text = str(warning.message)
    assert "'/data/x.tar': it is a local file path" in text
    assert "'http://10.0.0.1/a.tar': 10.0.0.1 is a private-network address" in text
    assert "ok.tar" not in text
    assert warning.filename == __file__  # points at the caller, not into atdata
    blob = "at://did:plc:abc/blob/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    with pytest.warns(PrivateURLWarning, match="not kept alive"):
        check_publishable([blob])
    ReadPolicy().check(blob)  # reading a blob by URL is fine


SECRET_URLS = [
    "https://user:hunter2@data.example.org/d.tar",
    "https://b.s3.amazonaws.com/d.tar?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDX"
    "&X-Amz-Signature=hunter2",
    "https://b.s3.amazonaws.com/d.tar?AWSAccessKeyId=AKIDX&Signature=hunter2&Expires=1",
    "https://acct.blob.core.windows.net/c/d.tar?sv=2022-11-02&sig=hunter2",
    "https://storage.googleapis.com/b/d.tar?X-Goog-Signature=hunter2",
    "https://data.example.org/d.tar?token=hunter2",
    "https://data.example.org/d.tar?access_token=hunter2",
]


@pytest.mark.parametrize("url", SECRET_URLS)
@pytest.mark.parametrize("require", [False, True])
def test_a_url_with_a_credential_is_refused_in_any_mode(url: str, require: bool) -> None:
    assert credential_reason(url) is not None
    with pytest.raises(CredentialURLError) as raised:
        check_publishable([url], require_public=require)
    assert "hunter2" not in str(raised.value) and "AKIDX" not in str(raised.value)
    assert isinstance(raised.value, AtdataError)
    with pytest.raises(CredentialURLError):
        check_publishable(["s3://b/d.tar"], endpoint=url, require_public=require)


def test_exported_names() -> None:
    assert atdata.PrivateURLError is PrivateURLError
    assert issubclass(atdata.PrivateURLWarning, Warning)
    assert issubclass(CredentialURLError, AtdataError) and issubclass(PrivateURLError, ValueError)


def test_the_trial_stack_prints_the_opt_in() -> None:
    from atdata.cli.stack import stack_env

    state = {"services": {"pds": {"env": {"ATDATA_PDS_URL": "http://127.0.0.1:2583"}}}}
    assert stack_env(state)["ATDATA_ALLOW_PRIVATE_URLS"] == "1"
    assert stack_env({}) == {}


# ------------------------------------------------------------------ HTTP servers


class _Counting(http.server.SimpleHTTPRequestHandler):
    hits: list[str]
    redirect: str | None = None

    def do_GET(self) -> None:
        self.hits.append(self.path)
        if self.redirect is not None:
            self.send_response(302)
            self.send_header("Location", self.redirect)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args: Any) -> None:
        pass


class Server:
    def __init__(self, directory: Path, redirect: str | None = None) -> None:
        self.hits: list[str] = []
        handler = type("Handler", (_Counting,), {"hits": self.hits, "redirect": redirect})
        self._server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(handler, directory=str(directory))
        )
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture
def shard_dir(tmp_path: Path) -> Path:
    out = tmp_path / "served"
    out.mkdir()
    atdata.write_samples(
        [Row(vec=np.full(4, i, np.float32), label=i) for i in range(6)], out / "d.tar"
    )
    return out


@pytest.fixture
def server(shard_dir: Path) -> Iterator[Server]:
    s = Server(shard_dir)
    yield s
    s.close()


def test_every_redirect_hop_is_checked_again(shard_dir: Path, server: Server) -> None:
    # The first host is one the reader trusts; it redirects to a loopback host it does not.
    hop = Server(shard_dir, redirect=f"{server.url}/d.tar")
    try:
        policy = ReadPolicy(trusted=frozenset({("127.0.0.1", hop.port)}))
        source = URLSource(f"{hop.url}/d.tar", policy=policy)
        with pytest.raises(PrivateURLError, match="loopback"):
            source.open_shard(f"{hop.url}/d.tar")
        assert hop.hits == ["/d.tar"] and server.hits == []  # the second hop never reached
        # a redirect to a local file is not followed either
        to_file = Server(shard_dir, redirect="file:///etc/passwd")
        try:
            trusted = ReadPolicy(trusted=frozenset({("127.0.0.1", to_file.port)}))
            with pytest.raises(ShardError, match="cannot connect"):
                URLSource(f"{to_file.url}/d.tar", policy=trusted).open_shard(f"{to_file.url}/d.tar")
        finally:
            to_file.close()
        # opted in, the same redirect is followed to the data
        allowed = URLSource(f"{hop.url}/d.tar", policy=ReadPolicy(allow_private=True))
        assert [s.label for s in atdata.Dataset[Row](allowed, cache=False)] == list(range(6))
    finally:
        hop.close()


def test_the_connection_goes_to_the_address_that_was_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connected: list[tuple[str, int]] = []

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        connected.append(address)
        raise ConnectionRefusedError("test: no route")

    monkeypatch.setattr(socket, "create_connection", create_connection)
    answers = {"data.rebind.example": ["8.8.8.8"]}
    asked = fake_dns(monkeypatch, answers)
    url = "http://data.rebind.example/d.tar"
    source = URLSource(url, policy=ReadPolicy())
    with pytest.raises(ShardError, match="cannot connect"):
        source.open_shard(url)
    # one lookup, and the socket was opened to the checked address itself, not the name
    assert asked == ["data.rebind.example"] and connected == [("8.8.8.8", 80)]
    # the name now answers with a loopback address (DNS rebinding): refused, nothing opened
    answers["data.rebind.example"] = ["127.0.0.1"]
    with pytest.raises(PrivateURLError, match=r"resolves to 127\.0\.0\.1, a loopback address"):
        source.open_shard(url)
    answers["data.rebind.example"] = ["8.8.8.8", "169.254.169.254"]  # any bad answer refuses
    with pytest.raises(PrivateURLError, match="link-local"):
        source.open_shard(url)
    assert connected == [("8.8.8.8", 80)]


# ------------------------------------------------------------------ records from the PDS


@pytest.fixture
def reader_env(pds_account: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader with no opt-in, that knows the test PLC directory but no PDS of its own."""
    monkeypatch.delenv("ATDATA_ALLOW_PRIVATE_URLS", raising=False)
    monkeypatch.delenv("ATDATA_PDS_URL", raising=False)
    monkeypatch.setenv("ATDATA_PLC_URL", pds_account["plc_url"])


def test_records_naming_local_files_or_private_hosts_are_refused(
    pds_client: Any, reader_env: None, server: Server
) -> None:
    index = AtmosphereIndex(pds_client)
    schema = index.publish_schema(Row)
    hostile = [
        "file:///etc/passwd",
        "file:///proc/self/environ",
        f"{server.url}/d.tar",
        f"http://127.1:{server.port}/d.tar",
        f"http://localhost.:{server.port}/d.tar",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/d.tar",
        "ftp://files.example.org/d.tar",
    ]
    with pytest.warns(PrivateURLWarning):
        uris = DatasetPublisher(pds_client).publish_many(
            {"urls": [u], "schema_uri": schema, "name": f"hostile-{i}"}
            for i, u in enumerate(hostile)
        )
    loader = DatasetLoader(pds_client)
    for uri in uris:
        with pytest.raises(PrivateURLError, match="refusing to read"):
            atdata.load_dataset(str(uri), Row, split="train", index=index)
        with pytest.raises(PrivateURLError):
            loader.to_dataset(uri, Row)
        with pytest.raises(PrivateURLError):
            index.dataset_for(str(uri), Row)
    assert server.hits == []  # the loopback server was never asked
    # the reader who opts in reads its own trial server
    ds = atdata.load_dataset(str(uris[2]), Row, split="train", index=index, allow_private_urls=True)
    assert [s.label for s in ds] == list(range(6))
    assert [
        s.label for s in DatasetLoader(pds_client, allow_private_urls=True).to_dataset(uris[3], Row)
    ] == list(range(6))


def test_blob_reads_check_the_pds_a_did_document_names(
    pds_client: Any, pds_account: dict[str, str], reader_env: None, tmp_path: Path
) -> None:
    index = AtmosphereIndex(pds_client, data_store=PDSBlobStore(pds_client))
    ds = atdata.write_samples(
        [Row(vec=np.zeros(4, np.float32), label=i) for i in range(5)], tmp_path / "b.tar"
    )
    entry = index.insert_dataset(ds, name="blobs")
    blob = entry.data_urls[0]
    # A stranger's DID document names the PDS: on loopback, it is refused by default...
    with pytest.raises(PrivateURLError, match="DID document"):
        list(atdata.load_dataset(blob, Row, split="train"))
    # ...read with the opt-in, or when it is the PDS the reader configured itself.
    assert len(list(atdata.load_dataset(blob, Row, split="train", allow_private_urls=True))) == 5
    assert len(list(index.dataset_for(entry))) == 5  # the client's own PDS


def test_s3_records_carry_a_non_aws_endpoint_that_readers_check(
    pds_client: Any,
    reader_env: None,
    s3_env: dict[str, str],
    s3_bucket: str,
    s3_client: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    creds = {
        "AWS_ENDPOINT": s3_env["AWS_ENDPOINT_URL"],
        "AWS_ACCESS_KEY_ID": s3_env["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": s3_env["AWS_SECRET_ACCESS_KEY"],
    }
    store = S3DataStore(credentials=creds, bucket=s3_bucket)
    ds = atdata.write_samples(
        [Row(vec=np.ones(4, np.float32), label=i) for i in range(8)], tmp_path / "s.tar", maxcount=2
    )
    # Refused before anything is copied: nothing in the bucket afterwards.
    strict = AtmosphereIndex(pds_client, data_store=store, require_public_urls=True)
    with pytest.raises(PrivateURLError, match="S3 endpoint"):
        strict.insert_dataset(ds, name="strict", prefix="strict")
    assert s3_client.list_objects_v2(Bucket=s3_bucket).get("KeyCount", 0) == 0
    assert DatasetLoader(pds_client).list_all() == []

    with pytest.warns(PrivateURLWarning, match="S3 endpoint"):
        entry = AtmosphereIndex(pds_client, data_store=store).insert_dataset(
            ds, name="s3", prefix="s3"
        )
    assert entry.record["storage"]["endpoint"] == s3_env["AWS_ENDPOINT_URL"]

    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key, raising=False)
    reader = AtmosphereIndex(pds_client)
    # a reader with other S3 settings: the record's loopback endpoint is checked like any URL
    with pytest.raises(PrivateURLError, match="loopback"):
        reader.dataset_for(entry, Row)
    # opted in, the endpoint is read anonymously (the reader's keys never go to it):
    # this bucket is not public, so the server says 403
    with pytest.raises(ShardError, match="HTTP 403"):
        list(reader.dataset_for(entry, Row, allow_private_urls=True, cache=False))
    # a reader whose own S3 settings name that endpoint reads with its own credentials
    for key, value in s3_env.items():
        monkeypatch.setenv(key, value)
    assert sorted(s.label for s in reader.dataset_for(entry, Row)) == list(range(8))


def test_record_reads_check_the_pds_a_did_document_names(
    pds_client: Any, pds_account: dict[str, str], reader_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from atdata.atmosphere import AtmosphereClient

    schema = AtmosphereIndex(pds_client).publish_schema(Row)
    uri = DatasetPublisher(pds_client).publish_with_urls(
        ["https://93.184.216.34/d.tar"], schema, name="elsewhere"
    )
    # A reader whose own PDS is elsewhere: the record's PDS comes from a DID document.
    stranger = AtmosphereClient("https://pds.example.org", plc_url=pds_account["plc_url"])
    with pytest.raises(PrivateURLError, match="refusing to read 'http://localhost"):
        AtmosphereIndex(stranger).get_dataset(str(uri))
    monkeypatch.setenv("ATDATA_ALLOW_PRIVATE_URLS", "1")
    opted_in = AtmosphereClient("https://pds.example.org", plc_url=pds_account["plc_url"])
    assert AtmosphereIndex(opted_in).get_dataset(str(uri)).name == "elsewhere"
