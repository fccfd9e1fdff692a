"""Fixtures that start real Redis, PostgreSQL and SeaweedFS S3 servers on loopback.

Each server is started once per session on free 127.0.0.1 ports with a temporary
data directory, and stopped (data deleted) at the end. A missing server binary
fails the test with an install hint: CI installs everything, so nothing is skipped.
Tests that use these fixtures get the ``s3``/``redis``/``postgres`` marker.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from atdata.stack._base import LocalServer

S3_FIXTURES = {"s3_server", "s3_env", "s3_environ", "s3_client", "s3_bucket"}
REDIS_FIXTURES = {"redis_server", "redis_client"}
POSTGRES_FIXTURES = {"postgres_server", "postgres_dsn"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the servers they use, so ``-m "not s3"`` and the like work."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in (
            ("s3", S3_FIXTURES),
            ("redis", REDIS_FIXTURES),
            ("postgres", POSTGRES_FIXTURES),
        ):
            if names & fixtures:
                item.add_marker(marker)


def _start(what: str, launch: Callable[[], LocalServer]) -> LocalServer:
    """Start a server; turn a missing binary or client library into a clear test failure."""
    try:
        return launch()
    except (FileNotFoundError, ImportError) as exc:
        message = f"cannot start the {what} test server: {exc}"
    pytest.fail(message, pytrace=False)


# --- S3 (SeaweedFS) ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server() -> Iterator[LocalServer]:
    """The session's SeaweedFS S3 server (``.url`` endpoint, ``.env`` AWS_* settings)."""
    from atdata.stack.s3 import start_s3

    server = _start("S3 (SeaweedFS)", start_s3)
    yield server
    server.stop()


@pytest.fixture
def s3_env(s3_server: LocalServer) -> dict[str, str]:
    """A fresh copy of the AWS_* variables that point a client at the test S3 server."""
    return dict(s3_server.env)


@pytest.fixture
def s3_environ(s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Like ``s3_env``, but also exported into ``os.environ`` for the test's duration."""
    for key, value in s3_env.items():
        monkeypatch.setenv(key, value)
    return s3_env


@pytest.fixture(scope="session")
def s3_client(s3_server: LocalServer) -> Any:
    """A boto3 S3 client (path-style addressing) for the test S3 server."""
    from atdata.stack.s3 import s3_client as make_client

    return make_client(s3_server.env)


def _empty_bucket(client: Any, bucket: str) -> None:
    """Abort multipart uploads and delete every object of ``bucket``."""
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    for upload in uploads:
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


@pytest.fixture
def s3_bucket(s3_client: Any) -> Iterator[str]:
    """A fresh, uniquely named, empty bucket; emptied and deleted after the test."""
    bucket = f"test-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=bucket)
    yield bucket
    _empty_bucket(s3_client, bucket)
    s3_client.delete_bucket(Bucket=bucket)


# --- Redis -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server() -> Iterator[LocalServer]:
    """The session's Redis server (``.url`` is ``redis://127.0.0.1:<port>/0``)."""
    from servers.redis import start_redis

    server = _start("Redis", start_redis)
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: LocalServer) -> Iterator[Any]:
    """A ``redis.Redis`` on the test server's db 0, flushed before and after the test."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


# --- PostgreSQL ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[LocalServer]:
    """The session's PostgreSQL server (``.url`` is the DSN of database ``atdata_test``)."""
    from servers.postgres import start_postgres

    server = _start("PostgreSQL", start_postgres)
    yield server
    server.stop()


@pytest.fixture
def postgres_dsn(postgres_server: LocalServer) -> Iterator[str]:
    """The DSN of a fresh, empty database created for this test and dropped after it."""
    import psycopg

    name = f"test_{uuid.uuid4().hex[:16]}"
    base, _, _ = postgres_server.url.rpartition("/")
    with psycopg.connect(postgres_server.url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{base}/{name}"
    with psycopg.connect(postgres_server.url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
