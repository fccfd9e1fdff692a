"""The AppView against a small real federation: two reference PDSes sharing one PLC directory.

Each PDS has its own accounts; one AppView (``atdata appview serve`` in a
subprocess) follows both. Datasets, schemas and lenses published on either are
found; found datasets load with their type rebuilt; updates, deletes, restarts,
backfill, account and identity events are followed; forged commits, garbage
frames and lexicon-breaking records are dropped and counted.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import libipld
import numpy as np
import pytest
from numpy.typing import NDArray

import atdata
from atdata.atmosphere import (
    AppViewClient,
    AtmosphereClient,
    AtmosphereIndex,
    LensPublisher,
    PDSBlobStore,
    RecordNotFoundError,
)
from atdata.stack._base import LocalServer
from helpers import private_atdata_home, wait_for  # noqa: F401 - autouse fixture

pytestmark = pytest.mark.pds

DATASET = "ac.foundation.dataset.record"
SCHEMA = "ac.foundation.dataset.sampleSchema"
XRPC = "/xrpc/ac.foundation.dataset."


@atdata.packable
class Reading:
    """A sensor reading."""

    values: NDArray[np.float32]
    label: int


@atdata.packable
class Labelled:
    """Only the label of a reading."""

    label: int


# --------------------------------------------------------------------------- the federation


@dataclass
class Account:
    handle: str
    password: str
    did: str
    pds: LocalServer
    client: AtmosphereClient
    index: AtmosphereIndex


@dataclass
class Federation:
    a: LocalServer
    b: LocalServer
    plc: str
    root: Path
    accounts: list[Account] = field(default_factory=list)

    def account(self, pds: LocalServer) -> Account:
        from atdata.stack.pds import create_account

        handle = f"u{secrets.token_hex(4)}.test"
        password = secrets.token_urlsafe(16)
        made = create_account(pds, handle, password)
        client = AtmosphereClient(pds.url, plc_url=self.plc)
        client.login(handle, password)
        acc = Account(
            handle,
            password,
            made["did"],
            pds,
            client,
            AtmosphereIndex(client, data_store=PDSBlobStore(client)),
        )
        self.accounts.append(acc)
        return acc


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    from atdata.stack.pds import PDSNotInstalledError, start_pds

    try:
        a = start_pds()
    except PDSNotInstalledError as exc:
        pytest.fail(f"cannot start the ATProto PDS test server: {exc}", pytrace=False)
    b = start_pds(plc_url=a.env["PLC_URL"])
    federation = Federation(a, b, a.env["PLC_URL"], tmp_path_factory.mktemp("fed"))
    yield federation
    for acc in federation.accounts:
        acc.client.close()
    b.stop()
    a.stop()


def shard(root: Path, n: int = 6, start: int = 0) -> tuple[str, list[Reading]]:
    path = root / f"r-{secrets.token_hex(4)}-000000.tar"
    samples = [Reading(values=np.full(3, i, np.float32), label=i) for i in range(start, start + n)]
    with atdata.ShardWriter(str(path)) as w:
        for s in samples:
            w.write(s, key=f"{s.label:06d}")
    return str(path), samples


def publish(fed: Federation, acc: Account, name: str, **kw: Any) -> tuple[str, list[Reading]]:
    path, samples = shard(fed.root, start=kw.pop("start", 0))
    schema = acc.index.publish_schema(kw.pop("sample_type", Reading), version="1.0.0")
    entry = acc.index.insert_dataset(
        atdata.Dataset[Reading](path), name=name, schema_ref=schema, **kw
    )
    return entry.uri, samples


class View:
    """One AppView process following the federation; restartable on the same database."""

    def __init__(self, fed: Federation, hosts: list[str], db: str, data_dir: Path) -> None:
        self.fed, self.hosts, self.db, self.data_dir = fed, hosts, db, data_dir
        self.server: LocalServer | None = None
        self.client: AppViewClient | None = None

    def start(self) -> View:
        from atdata.stack.appview import start_appview

        self.server = start_appview(
            self.hosts, self.db, plc_url=self.fed.plc, data_dir=self.data_dir
        )
        self.client = AppViewClient(self.server.url)
        return self

    def stop(self, *, kill: bool = False) -> None:
        assert self.server is not None and self.client is not None
        if kill and self.server.process is not None:
            self.server.process.kill()  # SIGKILL: no chance to flush anything
        self.server.stop()
        self.client.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def get(self, method: str, **params: Any) -> httpx.Response:
        return httpx.get(self.url + XRPC + method, params=params, timeout=10, trust_env=False)

    def search_uris(self, q: str | None = None, **kw: Any) -> list[str]:
        assert self.client is not None
        return [e.uri for e in self.client.search(q, **kw)]


@pytest.fixture(scope="module")
def early(fed: Federation) -> dict[str, Any]:
    """A dataset published on PDS A before any AppView runs (found by backfill)."""
    acc = fed.account(fed.a)
    uri, samples = publish(
        fed, acc, "early-bird", description="published before the appview", tags=["backfill"]
    )
    return {"account": acc, "uri": uri, "samples": samples}


@pytest.fixture(scope="module")
def view(
    fed: Federation, early: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[View]:
    root = tmp_path_factory.mktemp("appview")
    v = View(fed, [fed.a.url, fed.b.url], f"sqlite:///{root / 'appview.db'}", root).start()
    yield v
    v.stop()


@pytest.fixture
def reader_env(fed: Federation, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a reader of the loopback federation sets (PLC; loopback shards allowed)."""
    monkeypatch.setenv("ATDATA_PLC_URL", fed.plc)
    monkeypatch.setenv("ATDATA_ALLOW_PRIVATE_URLS", "1")


def labels(ds: Any) -> list[int]:
    return [int(s.label) for s in ds.ordered(batch_size=None)]


# --------------------------------------------------------------------------- done-when


def test_backfill_finds_records_published_before_start(view: View, early: dict[str, Any]) -> None:
    found = wait_for(lambda: view.search_uris("before appview"), "the backfilled dataset")
    assert found == [early["uri"]]
    entry = view.client.get_dataset(early["uri"])
    assert (entry.handle, entry.did) == (early["account"].handle, early["account"].did)
    assert entry.tags == ["backfill"]


def test_datasets_on_either_pds_are_found_and_load_typed(
    fed: Federation, view: View, reader_env: None
) -> None:
    alice, bob = fed.account(fed.a), fed.account(fed.b)
    uri_a, _ = publish(
        fed, alice, "alpha-readings", description="thermal probe", tags=["sensors"], license="MIT"
    )
    uri_b, samples_b = publish(
        fed,
        bob,
        "beta-readings",
        description="thermal camera",
        tags=["sensors", "camera"],
        license="CC-BY-4.0",
        start=100,
    )
    found = wait_for(
        lambda: len(view.search_uris("thermal")) == 2 and view.search_uris("thermal"),
        "both datasets",
    )
    assert set(found) == {uri_a, uri_b}
    assert view.search_uris("thermal", tags=["camera"]) == [uri_b]
    assert view.search_uris("thermal", repo=alice.handle) == [uri_a]
    assert view.search_uris("thermal", license="MIT") == [uri_a]

    entry = view.client.get_dataset(uri_b)
    assert entry.handle == bob.handle and entry.name == "beta-readings"
    ds = entry.to_dataset()
    rebuilt = ds.sample_type
    assert rebuilt.__name__ == "Reading" and rebuilt is not Reading
    assert labels(ds) == [s.label for s in samples_b]
    by_uri = atdata.load_dataset(entry.load_ref, split="train")
    assert labels(by_uri) == [s.label for s in samples_b]

    schema = view.client.resolve_schema(bob.handle, "Reading")
    assert schema.uri == entry.schema_ref and schema["version"] == "1.0.0"
    assert view.client.get_schema(entry.schema_ref)["name"] == "Reading"


def test_lens_on_one_pds_makes_a_dataset_on_the_other_readable(fed: Federation, view: View) -> None:
    alice, bob = fed.account(fed.a), fed.account(fed.b)
    uri_b, _ = publish(fed, bob, "lens-source-readings")
    source_schema = (
        view.client.get_dataset(uri_b).schema_ref
        if wait_for(lambda: view.search_uris("lens source readings"), "bob's dataset")
        else None
    )
    target_schema = str(alice.index.publish_schema(Labelled, version="1.0.0"))
    assert view.get("findReadableAs", schema=target_schema).json()["datasets"] == []
    lens = LensPublisher(alice.client).publish(
        name="reading-to-labelled",
        source_schema_uri=source_schema,
        target_schema_uri=target_schema,
        description="keep the label",
    )
    rows = wait_for(
        lambda: view.get("findReadableAs", schema=target_schema).json()["datasets"],
        "the dataset readable through the lens",
    )
    assert [(r["uri"], r["lenses"]) for r in rows] == [(uri_b, [str(lens)])]
    lenses = view.client.list_lenses(source=source_schema)
    assert [r.uri for r in lenses] == [str(lens)]
    by_type = view.client.find_readable_as(Labelled)
    assert uri_b in [e.uri for e in by_type]
    assert {e.uri: e.lenses for e in by_type}[uri_b] == (str(lens),)


def test_update_changes_the_result_and_delete_removes_it(fed: Federation, view: View) -> None:
    acc = fed.account(fed.b)
    uri, _ = publish(fed, acc, "mutable-set", description="original wording")
    wait_for(lambda: view.search_uris("original wording"), "the dataset")
    rkey = uri.rsplit("/", 1)[1]
    record = dict(acc.client.get_record(uri))
    record["description"] = "revised wording"
    acc.client.put_record(DATASET, rkey, record)
    wait_for(lambda: view.search_uris("revised"), "the update")
    assert view.search_uris("original") == []
    acc.client.delete_record(uri)
    wait_for(lambda: view.get("getDataset", uri=uri).status_code == 404, "the delete")
    assert view.search_uris("revised") == []
    with pytest.raises(RecordNotFoundError):
        view.client.get_dataset(uri)


def test_restart_after_kill_loses_and_doubles_nothing(
    fed: Federation, view: View, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("restart")
    # Accounts first: host B then sequences nothing while the view runs, so the view has
    # no cursor for it when killed and must still find what B sequenced while it was down.
    alice, bob = fed.account(fed.a), fed.account(fed.b)
    own = View(fed, [fed.a.url, fed.b.url], f"sqlite:///{root / 'appview.db'}", root).start()
    try:
        first = [publish(fed, alice, f"restart-a{i}")[0] for i in range(2)]
        wait_for(lambda: len(own.client.list_datasets(alice.handle)) == 2, "the first datasets")
        own.stop(kill=True)
        while_down = [publish(fed, alice, f"restart-a{i}")[0] for i in range(2, 5)]
        while_down += [publish(fed, bob, f"restart-b{i}")[0] for i in range(3)]
        own.start()
        expected = {alice.did: set(first + while_down[:3]), bob.did: set(while_down[3:])}
        for did, uris in expected.items():
            wait_for(
                lambda did=did, uris=uris: (
                    {e.uri for e in own.client.list_datasets(did, limit=100)} == uris
                ),
                f"every dataset of {did} after the restart",
            )
        # Counting: every record exactly once, and no duplicate row anywhere.
        for did, uris in expected.items():
            listed = [e.uri for e in own.client.list_datasets(did, limit=100)]
            assert len(listed) == len(uris)

        # Both hosts end up backfilled; host A, which sent events, has a stored cursor (host
        # B may have sent none since the view started: then its cursor is rightly unset).
        def backfilled() -> dict[str, Any] | None:
            hosts = {h["host"]: h for h in own.client.describe()["hosts"]}
            return hosts if all(h["backfilled"] for h in hosts.values()) else None

        hosts = wait_for(backfilled, "both hosts backfilled")
        assert hosts[fed.a.url.rstrip("/")]["cursor"] is not None
    finally:
        own.stop()


def test_account_events_hide_and_identity_events_rename(fed: Federation, view: View) -> None:
    acc = fed.account(fed.a)
    uri, _ = publish(fed, acc, "soon-hidden", description="ephemeral pelican")
    wait_for(lambda: view.search_uris("pelican"), "the dataset")
    new_handle = f"n{secrets.token_hex(4)}.test"
    acc.client._procedure(
        "com.atproto.identity.updateHandle",
        {"handle": new_handle},
        what="update handle",
        target=acc.did,
    )
    wait_for(lambda: view.client.get_dataset(uri).handle == new_handle, "the new handle")
    acc.client._procedure(
        "com.atproto.server.deactivateAccount", {}, what="deactivate", target=acc.did
    )
    wait_for(lambda: view.search_uris("pelican") == [], "the account to be hidden")
    assert view.get("getDataset", uri=uri).status_code == 404


def test_invalid_records_are_dropped_and_counted(fed: Federation, view: View) -> None:
    acc = fed.account(fed.b)
    good_uri, _ = publish(fed, acc, "valid-set", description="zebra valid")
    record = dict(acc.client.get_record(good_uri))
    bad = {**record, "name": "zebra too many tags", "tags": [f"t{i}" for i in range(10_000)]}
    huge = {**record, "name": "zebra huge", "description": "z" * 200_000}
    before = view.client.describe()["dropped"].get("invalid_records", 0)
    for value in (bad, huge):
        acc.client.create_record(DATASET, value, validate=False)
    publish(fed, acc, "zebra sentinel")  # published after the bad ones: once seen, they were too
    wait_for(lambda: view.search_uris("sentinel"), "the sentinel")
    assert set(view.search_uris("zebra")) == {good_uri, *view.search_uris("sentinel")}
    assert view.client.describe()["dropped"]["invalid_records"] >= before + 2


def test_backfill_walks_a_deep_tree_and_skips_other_collections(
    fed: Federation, tmp_path: Path
) -> None:
    from atdata.atmosphere import DatasetPublisher

    acc = fed.account(fed.b)
    schema = str(acc.index.publish_schema(Reading, version="1.0.0"))
    for i in range(20):  # records of other applications, before and after ours in key order
        acc.client.create_record("app.example.note", {"$type": "app.example.note", "n": i})
        acc.client.create_record("zz.example.note", {"$type": "zz.example.note", "n": i})
    uris = DatasetPublisher(acc.client).publish_many(
        {
            "urls": [f"https://data.example.org/deep-{i}.tar"],
            "schema_uri": schema,
            "name": f"deep-{i}",
            "description": "deep tree wombat",
        }
        for i in range(80)
    )
    view = View(fed, [fed.b.url], f"sqlite:///{tmp_path / 'appview.db'}", tmp_path).start()
    try:
        listed = wait_for(
            lambda: (
                len(view.client.list_datasets(acc.did, limit=100)) == 80
                and view.client.list_datasets(acc.did, limit=100)
            ),
            "all 80 datasets by backfill",
        )
        assert {e.uri for e in listed} == {str(u).split("#")[0] for u in uris}
        counts = view.client.describe()["counts"]
        assert not any("example" in k for k in counts)
    finally:
        view.stop()


# --------------------------------------------------------------------------- hostile hosts


def _car(root: bytes, blocks: list[tuple[bytes, bytes]]) -> bytes:
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            byte = n & 0x7F
            n >>= 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)

    header = libipld.encode_dag_cbor({"version": 1, "roots": [root]})
    body = b"".join(varint(len(c) + len(d)) + c + d for c, d in blocks)
    return varint(len(header)) + header + body


def _cid(data: bytes) -> bytes:
    import hashlib

    return b"\x01\x71\x12\x20" + hashlib.sha256(data).digest()


def forged_commit_frame(did: str, seq: int, record: dict[str, Any], rkey: str) -> bytes:
    """A well-formed #commit whose signature is not the repository's (64 random bytes)."""
    path = f"{DATASET}/{rkey}"
    rec_bytes = libipld.encode_dag_cbor(record)
    rec_cid = _cid(rec_bytes)
    node = libipld.encode_dag_cbor(
        {"e": [{"k": path.encode(), "p": 0, "t": None, "v": rec_cid}], "l": None}
    )
    node_cid = _cid(node)
    rev = "3lzzzzzzzzz2a"
    commit = libipld.encode_dag_cbor(
        {
            "data": node_cid,
            "did": did,
            "prev": None,
            "rev": rev,
            "sig": secrets.token_bytes(64),
            "version": 3,
        }
    )
    commit_cid = _cid(commit)
    body = {
        "blobs": [],
        "blocks": _car(commit_cid, [(commit_cid, commit), (node_cid, node), (rec_cid, rec_bytes)]),
        "commit": commit_cid,
        "ops": [{"action": "create", "cid": rec_cid, "path": path}],
        "rebase": False,
        "repo": did,
        "rev": rev,
        "seq": seq,
        "since": None,
        "time": "2026-01-01T00:00:00.000Z",
        "tooBig": False,
    }
    return libipld.encode_dag_cbor({"op": 1, "t": "#commit"}) + libipld.encode_dag_cbor(body)


class HostileHost:
    """A subscribeRepos endpoint sending forged commits and garbage, then cutting the line."""

    def __init__(self, frames: list[bytes | str]) -> None:
        from websockets.sync.server import serve

        self.frames = frames
        self.connections = 0
        self.server = serve(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.socket.getsockname()[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _handle(self, ws: Any) -> None:
        self.connections += 1
        if self.connections == 1:
            for frame in self.frames:
                ws.send(frame)
            ws.socket.shutdown(socket.SHUT_RDWR)  # mid-stream, no close frame
            return
        while True:  # later connections: an idle, healthy host
            time.sleep(0.5)
            ws.ping()

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(5)


def test_forged_commits_and_garbage_frames_are_dropped(
    fed: Federation, tmp_path_factory: pytest.TempPathFactory
) -> None:
    victim = fed.account(fed.b)
    uri_real, _ = publish(fed, victim, "genuine-set", description="genuine marmot")
    record = dict(victim.client.get_record(uri_real))
    forged = {**record, "name": "forged marmot", "description": "forged marmot"}
    good = forged_commit_frame(victim.did, 1, forged, "3lforgedrkey2")
    frames: list[bytes | str] = [
        b"\xff\x00 not cbor at all",
        "a text frame",
        good,
        good[: len(good) // 2],  # truncated
        libipld.encode_dag_cbor({"op": 1, "t": "#commit"})
        + libipld.encode_dag_cbor({"seq": 3, "repo": 5}),
    ]
    hostile = HostileHost(frames)
    root = tmp_path_factory.mktemp("hostile")
    view = View(fed, [hostile.url, fed.b.url], f"sqlite:///{root / 'appview.db'}", root).start()
    try:
        wait_for(lambda: view.search_uris("genuine marmot"), "the genuine dataset")
        dropped = wait_for(
            lambda: (d := view.client.describe()["dropped"]).get("bad_commits") and d,
            "the forged commit",
        )
        assert dropped["bad_frames"] >= 3
        assert view.search_uris("forged") == []
        assert (
            view.get("getDataset", uri=f"at://{victim.did}/{DATASET}/3lforgedrkey2").status_code
            == 404
        )
        # The stream goes on: a later dataset on the real PDS is still found.
        later, _ = publish(fed, victim, "after-the-attack", description="still marmot")
        wait_for(lambda: later in view.search_uris("marmot"), "a dataset published afterwards")
        # it reconnects after the cut (with backoff: waited for, not assumed done by now)
        wait_for(lambda: hostile.connections >= 2, "the AppView to reconnect to the cut host")
    finally:
        view.stop()
        hostile.close()


# --------------------------------------------------------------------------- XRPC surface


def test_bad_parameters_are_400_in_xrpc_form(view: View) -> None:
    cases = [
        ("searchDatasets", {"q": '"unbalanced'}),
        ("searchDatasets", {"limit": "0"}),
        ("searchDatasets", {"limit": "100000"}),
        ("searchDatasets", {"limit": "ten"}),
        ("searchDatasets", {"cursor": "not-a-cursor"}),
        ("searchDatasets", {"schema": "https://not-an-at-uri"}),
        ("searchDatasets", {"repo": "not a handle!"}),
        ("searchDatasets", {"nonsense": "1"}),
        ("searchDatasets", {"q": "x" * 600}),
        ("getDataset", {}),
        ("getDataset", {"uri": "at://did:plc:abc/ac.foundation.dataset.sampleSchema/x"}),
        ("findReadableAs", {}),
        ("resolveSchema", {"repo": "did:plc:abc"}),
    ]
    for method, params in cases:
        response = view.get(method, **params)
        assert response.status_code == 400, (method, params, response.text)
        body = response.json()
        assert body["error"] == "InvalidRequest" and body["message"], body
    missing = view.get(
        "getDataset", uri="at://did:plc:aaaaaaaaaaaaaaaaaaaaaaaa/ac.foundation.dataset.record/x"
    )
    assert missing.status_code == 404 and missing.json()["error"] == "RecordNotFound"
    unknown = httpx.get(view.url + "/xrpc/com.example.nothing", trust_env=False)
    assert unknown.status_code == 404 and unknown.json()["error"] == "MethodNotImplemented"


def test_pagination_health_did_and_describe(fed: Federation, view: View) -> None:
    acc = fed.account(fed.a)
    uris = {publish(fed, acc, f"paged-{i}", description="paginated okapi")[0] for i in range(5)}
    wait_for(lambda: len(view.search_uris("okapi")) == 5, "five datasets")
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        page = view.client.search("okapi", limit=2, cursor=cursor)
        seen += [e.uri for e in page]
        cursor = page.cursor
        if not cursor:
            break
    assert sorted(seen) == sorted(uris) and len(seen) == 5
    assert httpx.get(view.url + "/health", trust_env=False).json()["status"] == "ok"
    did_doc = httpx.get(view.url + "/.well-known/did.json", trust_env=False).json()
    assert did_doc["id"].startswith("did:web:") and did_doc["service"][0]["serviceEndpoint"]
    described = view.client.describe()
    assert {h["host"] for h in described["hosts"]} == {fed.a.url, fed.b.url}
    assert all(h["connected"] and h["cursor"] for h in described["hosts"])
    assert described["counts"][DATASET] >= 5


def test_every_query_has_a_shipped_lexicon() -> None:
    from atdata.appview import query_lexicons

    lexicons = query_lexicons()
    assert set(lexicons) == {
        f"ac.foundation.dataset.{m}"
        for m in (
            "searchDatasets",
            "getDataset",
            "listDatasets",
            "getSchema",
            "listSchemas",
            "resolveSchema",
            "listLenses",
            "findReadableAs",
            "describeService",
            "listMirrors",
        )
    }
    for nsid, doc in lexicons.items():
        assert doc["lexicon"] == 1 and doc["defs"]["main"]["type"] == "query", nsid
    assert lexicons["ac.foundation.dataset.getDataset"]["defs"]["main"]["parameters"][
        "required"
    ] == ["uri"]


# --------------------------------------------------------------------------- CLI and PostgreSQL


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "atdata.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_search_command_prints_and_emits_json(fed: Federation, view: View) -> None:
    acc = fed.account(fed.b)
    uri, _ = publish(
        fed, acc, "cli-found", description="quokka survey", license="MIT", tags=["fauna"]
    )
    wait_for(lambda: view.search_uris("quokka"), "the dataset")
    done = run_cli(
        "search", "quokka", "--tag", "fauna", "--json", env={"ATDATA_APPVIEW_URL": view.url}
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert [r["uri"] for r in doc["results"]] == [uri]
    assert doc["results"][0]["handle"] == acc.handle and doc["results"][0]["license"] == "MIT"
    text = run_cli("search", "quokka", "--appview", view.url)
    assert text.returncode == 0, text.stderr
    assert "cli-found" in text.stdout and acc.handle in text.stdout and uri in text.stdout
    bad = run_cli("search", '"quokka', "--appview", view.url)
    assert bad.returncode != 0 and "unbalanced" in bad.stderr
    none = run_cli("search", "quokka", env={"ATDATA_APPVIEW_URL": ""})
    assert none.returncode != 0 and "ATDATA_APPVIEW_URL" in none.stderr


def test_appview_on_postgres_follows_and_searches(
    fed: Federation, early: dict[str, Any], postgres_dsn: str, tmp_path: Path
) -> None:
    view = View(fed, [fed.a.url], postgres_dsn, tmp_path).start()
    try:
        wait_for(
            lambda: view.search_uris("before appview") == [early["uri"]], "backfill into PostgreSQL"
        )
        acc = fed.account(fed.a)
        uri, _ = publish(fed, acc, "pg-indexed", description="capybara census")
        wait_for(lambda: view.search_uris("capybara") == [uri], "the live dataset in PostgreSQL")
        assert view.get("searchDatasets", q='"capybara').status_code == 400
    finally:
        view.stop()


def test_unreachable_identity_is_retried_and_unknown_identity_dropped(
    fed: Federation, tmp_path: Path
) -> None:
    from atdata.appview import open_store
    from atdata.appview._identity import Identities
    from atdata.appview._ingest import HostFollower, Ingester, RetryLater
    from atdata.appview._store import Account as StoredAccount
    from atdata.appview._store import Changes
    from atdata.stack._base import free_port

    acc = fed.account(fed.a)
    store = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    dead = Ingester(store, Identities(f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(RetryLater):
        dead.identity(acc.did)
    assert not dead.counters  # nothing dropped
    live = Ingester(store, Identities(fed.plc))
    assert live.identity("did:plc:" + "a" * 24) is None  # the directory says: no such DID
    assert live.counters["unresolved_identities"] == 1
    assert live.identity(acc.did).handle == acc.handle
    # A follower gives up on an event after a bounded number of attempts, never loops forever.
    store.apply(Changes(accounts=[StoredAccount(acc.did)]))  # only known accounts are followed
    follower = HostFollower(dead, fed.a.url)
    frame = libipld.encode_dag_cbor({"op": 1, "t": "#identity"}) + libipld.encode_dag_cbor(
        {"did": acc.did, "seq": 7, "time": "2026-01-01T00:00:00Z"}
    )
    for _ in range(5):
        with pytest.raises(RetryLater):
            follower._frame(frame)
    follower._frame(frame)
    assert store.hosts()[fed.a.url]["cursor"] == 7
    assert dead.counters["unresolved_identities"] == 1
    for ing in (dead, live):
        ing.close()
    store.close()
