"""Mirrors across a real federation: two reference PDSes on one PLC, SeaweedFS, an AppView.

Alice publishes on PDS A; Bob (PDS B) mirrors her dataset as blobs, Carol (PDS B)
into a bucket. The AppView indexes the mirrors (forged ones are ignored) and says
when an original changed. Then PDS A stops, and ``load_dataset`` of Alice's
AT-URI still reads every sample, byte-identical, from the mirrors, skipping a
tampered copy.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from numpy.typing import NDArray

import atdata
from atdata.atmosphere import (
    AppViewClient,
    AtmosphereClient,
    AtmosphereIndex,
    DatasetPublisher,
    PDSBlobStore,
    validate_record,
)
from atdata.atmosphere.mirrors import (
    MIRROR_COLLECTION,
    MirrorError,
    list_mirrors,
    mirror_dataset,
    record_digests,
)
from atdata.atmosphere.records import DATASET_COLLECTION, fetch_record
from atdata.local import S3DataStore
from atdata.stack._base import LocalServer
from helpers import private_atdata_home, wait_for  # noqa: F401 - autouse fixture

pytestmark = pytest.mark.pds


@atdata.packable
class Frame:
    """A sample."""

    pixels: NDArray[np.uint8]
    label: int


@dataclass
class Fed:
    a: LocalServer
    b: LocalServer
    plc: str
    root: Path
    view: LocalServer | None = None
    clients: list[AtmosphereClient] = field(default_factory=list)
    logins: dict[str, tuple[str, str]] = field(default_factory=dict)

    def account(self, pds: LocalServer) -> AtmosphereClient:
        from atdata.stack.pds import create_account

        handle = f"m{secrets.token_hex(4)}.test"
        password = secrets.token_urlsafe(16)
        create_account(pds, handle, password)
        client = AtmosphereClient(pds.url, plc_url=self.plc)
        client.login(handle, password)
        self.clients.append(client)
        self.logins[client.did] = (handle, password)
        return client


def write_shards(root: Path, count: int, per: int, start: int = 0) -> list[Path]:
    paths = []
    label = start
    tag = secrets.token_hex(3)
    for s in range(count):
        path = root / f"frames-{tag}-{s:06d}.tar"
        with atdata.ShardWriter(str(path)) as w:
            for _ in range(per):
                w.write(Frame(pixels=np.full((4, 4), label % 256, np.uint8), label=label))
                label += 1
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory, s3_server: LocalServer) -> Iterator[Fed]:
    from atdata.stack.appview import start_appview
    from atdata.stack.pds import PDSNotInstalledError, start_pds

    try:
        b = start_pds()  # also runs the PLC directory, which outlives PDS A below
    except PDSNotInstalledError as exc:
        pytest.fail(f"cannot start the ATProto PDS test server: {exc}", pytrace=False)
    a = start_pds(plc_url=b.env["PLC_URL"])
    root = tmp_path_factory.mktemp("mirrors")
    federation = Fed(a, b, b.env["PLC_URL"], root)
    federation.view = start_appview([a.url, b.url], plc_url=federation.plc, data_dir=root / "view")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ATDATA_ALLOW_PRIVATE_URLS", "1")  # every server here is on loopback
        mp.setenv("ATDATA_PLC_URL", federation.plc)
        mp.setenv("ATDATA_PDS_URL", b.url)
        for key, value in s3_server.env.items():
            mp.setenv(key, value)
        yield federation
    for client in federation.clients:
        client.close()
    federation.view.stop()
    a.stop()
    b.stop()


@pytest.fixture(scope="module")
def bucket(fed: Fed, s3_server: LocalServer) -> str:
    from atdata.stack.s3 import s3_client

    name = f"mirrors-{secrets.token_hex(6)}"
    s3_client(s3_server.env).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def world(fed: Fed, bucket: str, s3_server: LocalServer) -> dict[str, Any]:
    """Alice's dataset on PDS A, mirrored by Bob (blobs) and Carol (bucket) on PDS B."""
    alice = fed.account(fed.a)
    index = AtmosphereIndex(alice, data_store=PDSBlobStore(alice))
    paths = write_shards(fed.root, 3, 8)
    schema = index.publish_schema(Frame, version="1.0.0")
    entry = index.insert_dataset(
        atdata.Dataset[Frame]([str(p) for p in paths]), name="frames", schema_ref=schema
    )
    original = fetch_record(alice, entry.uri, DATASET_COLLECTION)
    bob, carol = fed.account(fed.b), fed.account(fed.b)
    seen: list[str] = []
    bob_mirror = mirror_dataset(entry.uri, bob, on_shard=seen.append)
    store = S3DataStore(dict(s3_server.env), bucket=bucket)
    carol_mirror = mirror_dataset(entry.uri, carol, data_store=store, prefix="copy/frames")
    return {
        "alice": alice,
        "bob": bob,
        "carol": carol,
        "uri": entry.uri,
        "original": original,
        "paths": paths,
        "bob_mirror": bob_mirror,
        "carol_mirror": carol_mirror,
        "progress": seen,
        "store": store,
        "samples": [s for p in paths for s in atdata.Dataset[Frame](str(p))],
    }


def view_client(fed: Fed) -> AppViewClient:
    assert fed.view is not None
    return AppViewClient(fed.view.url)


def test_mirror_records_pin_the_original_and_carry_its_digests(world: dict[str, Any]) -> None:
    original = world["original"]
    digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in world["paths"]]
    assert record_digests(original) == digests
    for mirror in (world["bob_mirror"], world["carol_mirror"]):
        stored = fetch_record(world["bob"], mirror.uri, MIRROR_COLLECTION)
        validate_record(MIRROR_COLLECTION, stored)
        assert stored["subject"] == {"uri": world["uri"], "cid": original.cid}
        assert stored["sha256"] == digests
    assert world["bob_mirror"]["storage"]["$type"] == "ac.foundation.dataset.storageBlobs"
    urls = world["carol_mirror"]["storage"]["urls"]
    assert len(urls) == 3 and all(u.startswith("s3://") for u in urls)
    assert len(world["progress"]) == 3  # one progress step per shard


def test_a_second_run_finds_the_existing_mirror(world: dict[str, Any]) -> None:
    again = mirror_dataset(world["uri"], world["bob"])
    assert again.uri == world["bob_mirror"].uri
    records, _ = world["bob"].list_records(MIRROR_COLLECTION)
    assert len(records) == 1


def test_the_appview_lists_valid_mirrors_and_ignores_forged_ones(
    fed: Fed, world: dict[str, Any]
) -> None:
    forger = fed.account(fed.b)
    forged = dict(world["carol_mirror"])  # external URLs: no blobs of another account
    forged["sha256"] = ["0" * 64] * 3
    forged_uri = forger.create_record(MIRROR_COLLECTION, forged)
    view = view_client(fed)
    expected = {world["bob_mirror"].uri, world["carol_mirror"].uri}
    rows = wait_for(
        lambda: (r := list_mirrors(view, world["uri"])) and {m.uri for m in r} == expected and r,
        "the AppView to index both mirrors",
    )
    assert all(r["originalStatus"] == "current" for r in rows)
    # the forged mirror arrives as a record (counted), but is never listed
    wait_for(
        lambda: view.describe()["counts"].get(MIRROR_COLLECTION, 0) >= 3,
        "the forged record to be indexed",
    )
    assert str(forged_uri) not in {m.uri for m in list_mirrors(view, world["uri"])}
    answer = view.query("getDataset", {"uri": world["uri"]})
    assert {m["uri"] for m in answer["mirrors"]} == expected
    # the dataset page lists the verified mirrors, not the forged one
    did, _, rkey = world["uri"].removeprefix("at://").split("/")
    page = httpx.get(f"{view.url}/dataset/{did}/{rkey}", timeout=30)
    assert page.status_code == 200
    assert all(uri in page.text for uri in expected)
    assert str(forged_uri) not in page.text


def test_a_mirror_of_a_record_whose_shards_no_longer_match_is_refused(
    fed: Fed, bucket: str, s3_server: LocalServer, world: dict[str, Any]
) -> None:
    from atdata.stack.s3 import s3_client

    s3 = s3_client(s3_server.env)
    path = write_shards(fed.root, 1, 4)[0]
    key = f"external/{path.name}"
    s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
    alice = world["alice"]
    uri = DatasetPublisher(alice).publish_with_urls(
        [f"s3://{bucket}/{key}"],
        world["original"]["schemaRef"],
        name="external",
        sha256=[hashlib.sha256(path.read_bytes()).hexdigest()],
    )
    s3.put_object(Bucket=bucket, Key=key, Body=b"replaced" + path.read_bytes()[8:])
    dave = fed.account(fed.b)
    before = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    with pytest.raises(atdata.NoValidLocationError, match="differs from the original's"):
        mirror_dataset(str(uri), dave, data_store=world["store"], prefix="refused")
    after = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert after == before  # nothing copied stays behind
    assert dave.list_records(MIRROR_COLLECTION)[0] == []  # nothing published
    with pytest.raises(atdata.NoValidLocationError):
        mirror_dataset(str(uri), dave)
    assert dave.list_records(MIRROR_COLLECTION)[0] == []


def test_an_updated_or_deleted_original_is_flagged_and_the_mirror_stays_pinned(
    fed: Fed, world: dict[str, Any]
) -> None:
    alice, bob = world["alice"], fed.account(fed.b)
    index = AtmosphereIndex(alice, data_store=PDSBlobStore(alice))
    paths = write_shards(fed.root, 1, 4, start=1000)
    entry = index.insert_dataset(
        atdata.Dataset[Frame]([str(p) for p in paths]),
        name="changing",
        schema_ref=world["original"]["schemaRef"],
    )
    old = fetch_record(alice, entry.uri, DATASET_COLLECTION)
    mirror = mirror_dataset(entry.uri, bob)
    view = view_client(fed)

    def status() -> str | None:
        rows = list_mirrors(view, entry.uri)
        return rows[0]["originalStatus"] if rows else None

    assert wait_for(lambda: status() == "current", "the mirror to be listed")
    changed = dict(old)
    changed["description"] = "edited after the mirror was made"
    alice.put_record(DATASET_COLLECTION, entry.uri.rsplit("/", 1)[1], changed)
    wait_for(lambda: status() == "changed", "the AppView to flag the update")
    pinned = fetch_record(bob, mirror.uri, MIRROR_COLLECTION)
    assert pinned["subject"]["cid"] == old.cid
    alice.delete_record(entry.uri)
    wait_for(lambda: status() == "deleted", "the AppView to flag the deletion")
    # readers of the version the mirror pins still read it, through the mirror record
    copy = atdata.load_dataset(mirror.uri, split="train")
    assert [s.label for s in copy] == list(range(1000, 1004))
    assert copy.sample_type.__name__ == "Frame"


def _external(
    fed: Fed, bucket: str, s3: Any, world: dict[str, Any], count: int
) -> tuple[str, list[str]]:
    """An external-URL dataset of Alice's with ``count`` shards in ``bucket``; its URI and keys."""
    paths = write_shards(fed.root, count, 4)
    keys = [f"external/{p.name}" for p in paths]
    for path, key in zip(paths, keys, strict=True):
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
    uri = DatasetPublisher(world["alice"]).publish_with_urls(
        [f"s3://{bucket}/{k}" for k in keys],
        world["original"]["schemaRef"],
        name="external",
        sha256=[hashlib.sha256(p.read_bytes()).hexdigest() for p in paths],
    )
    return str(uri), keys


def test_a_failure_after_some_shards_were_copied_removes_them_or_names_the_orphans(
    fed: Fed, bucket: str, s3_server: LocalServer, world: dict[str, Any]
) -> None:
    from atdata.stack.s3 import s3_client

    s3 = s3_client(s3_server.env)
    uri, keys = _external(fed, bucket, s3, world, 2)
    s3.put_object(Bucket=bucket, Key=keys[1], Body=b"not the published shard")
    erin = fed.account(fed.b)

    def objects() -> set[str]:
        return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}

    before = objects()
    with pytest.raises(atdata.NoValidLocationError):
        mirror_dataset(uri, erin, data_store=world["store"], prefix="half")
    assert objects() == before  # shard 0 was copied, then removed

    class Undeletable(S3DataStore):
        def delete(self, urls: Any) -> None:  # a fault SeaweedFS will not produce on demand
            raise OSError("the bucket refused the delete")

    stuck = Undeletable(dict(s3_server.env), bucket=bucket)
    with pytest.raises(MirrorError, match="could not be removed") as info:
        mirror_dataset(uri, erin, data_store=stuck, prefix="stuck")
    assert len(info.value.orphans) == 1 and info.value.orphans[0].startswith(
        f"s3://{bucket}/stuck/"
    )
    assert erin.list_records(MIRROR_COLLECTION)[0] == []


def test_atdata_mirror_command_copies_to_a_bucket_and_finds_it_again(
    fed: Fed, bucket: str, s3_server: LocalServer, world: dict[str, Any], tmp_path: Path
) -> None:
    import json
    import os
    import subprocess
    import sys

    frank = fed.account(fed.b)
    handle, password = fed.logins[frank.did]
    env = {
        **os.environ,
        **s3_server.env,
        "ATDATA_HOME": str(tmp_path / "home"),
        "ATDATA_HANDLE": handle,
        "ATDATA_APP_PASSWORD": password,
        "ATDATA_PDS_URL": fed.b.url,
        "ATDATA_PLC_URL": fed.plc,
        "ATDATA_ALLOW_PRIVATE_URLS": "1",
    }

    def run(*args: str) -> Any:
        proc = subprocess.run(
            [sys.executable, "-m", "atdata.cli", "mirror", *args, "--json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert password not in proc.stdout + proc.stderr
        return json.loads(proc.stdout)

    first = run(world["uri"], "--copy-to", bucket)
    assert first["original"] == world["uri"] and first["shards"] == 3
    assert first["originalCid"] == world["original"].cid
    again = run(world["uri"], "--copy-to", bucket)
    assert again["uri"] == first["uri"]
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "atdata.cli",
            "mirror",
            world["uri"],
            "--blobs",
            "--copy-to",
            bucket,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert bad.returncode != 0 and "choose one" in bad.stderr


def test_with_pds_a_stopped_load_dataset_reads_every_sample_from_a_mirror_skipping_a_tampered_one(
    fed: Fed,
    world: dict[str, Any],
    s3_server: LocalServer,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from atdata.stack.s3 import s3_client

    view = view_client(fed)
    wait_for(lambda: len(list_mirrors(view, world["uri"])) >= 2, "the mirrors listed")
    # Carol's copy of shard 1 is replaced by other bytes.
    tampered = world["carol_mirror"]["storage"]["urls"][1]
    key = tampered.split("/", 3)[3]
    s3 = s3_client(s3_server.env)
    s3.put_object(Bucket=bucket, Key=key, Body=world["paths"][0].read_bytes())
    fed.a.stop()
    assert fed.view is not None
    monkeypatch.setenv("ATDATA_APPVIEW_URL", fed.view.url)
    monkeypatch.setenv("ATDATA_HOME", str(fed.root / "reader-home"))  # a cold cache
    with caplog.at_level(logging.INFO, logger="atdata.mirrors"):
        ds = atdata.load_dataset(world["uri"], split="train", mirrors=[world["carol_mirror"].uri])
        got = list(ds)
    want = world["samples"]
    assert [s.label for s in got] == [s.label for s in want]
    assert all(np.array_equal(g.pixels, w.pixels) for g, w in zip(got, want, strict=True))
    for shard_id, path in zip(ds.list_shards(), world["paths"], strict=True):
        with ds.source.open_shard(shard_id) as f:
            assert f.read() == path.read_bytes()  # byte-identical to what Alice published
    text = caplog.text
    assert "differs from the original's" in text  # the tampered shard was detected
    assert "falling back" in text
    assert f"read from {tampered}" not in text  # the tampered copy was never used
    assert text.count("read from ") == 3  # every shard came from a mirror, not PDS A


def test_a_forged_mirror_passed_explicitly_is_ignored(
    fed: Fed, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from atdata.atmosphere.mirrors import check_mirror
    from atdata.atmosphere.records import Record

    forged = Record(dict(world["bob_mirror"]), uri=world["bob_mirror"].uri, cid="x")
    forged["sha256"] = ["1" * 64] * 3
    with pytest.raises(MirrorError, match="differ from the original's"):
        check_mirror(world["original"], forged, forged.uri)
    other = Record(dict(world["bob_mirror"]), uri=world["bob_mirror"].uri)
    other["subject"] = {"uri": world["uri"], "cid": "bafyreiaaaa"}
    with pytest.raises(MirrorError, match="copies version"):
        check_mirror(world["original"], other, other.uri)
