"""Data stores: byte copies to local disk and a real S3 server (SeaweedFS), verified both ways."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import numpy as np
import pytest
from botocore.exceptions import ClientError
from numpy.typing import NDArray

import atdata
from atdata import ShardError
from atdata.cache import ShardCache
from atdata.local import (
    Index,
    IndexBackendError,
    LocalDiskStore,
    S3DataStore,
    SqliteProvider,
    VerifiedSource,
)
from atdata.local.stores import load_credentials
from atdata.protocols import AbstractDataStore

MiB = 1 << 20


@atdata.packable
class Chunk:
    data: NDArray[np.uint8]
    index: int


def chunks(n: int, size: int, seed: int = 0) -> list[Chunk]:
    rng = np.random.default_rng(seed)
    return [Chunk(rng.integers(0, 255, size, dtype=np.uint8), i) for i in range(n)]


def seed_credentials(env: dict[str, str]) -> dict[str, str]:
    """The seed document's credential keys for the test server."""
    return {
        "AWS_ENDPOINT": env["AWS_ENDPOINT_URL"],
        "AWS_ACCESS_KEY_ID": env["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": env["AWS_SECRET_ACCESS_KEY"],
    }


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def member_names(path: str | Path) -> list[str]:
    with tarfile.open(path) as tar:
        return tar.getnames()


@pytest.fixture(autouse=True)
def atdata_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the default index, store and shard cache out of the developer's home."""
    monkeypatch.setenv("ATDATA_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def dataset(tmp_path: Path) -> atdata.Dataset[Chunk]:
    return atdata.write_samples(chunks(30, 1000), tmp_path / "src" / "c.tar", maxcount=10)


@pytest.fixture
def s3_store(s3_env: dict[str, str], s3_bucket: str) -> S3DataStore:
    return S3DataStore(credentials=seed_credentials(s3_env), bucket=s3_bucket)


def s3_objects(client: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


# --------------------------------------------------------------------------- local disk


def test_disk_store_copies_bytes(tmp_path: Path, dataset: atdata.Dataset[Chunk]) -> None:
    store = LocalDiskStore(tmp_path / "store")
    assert isinstance(store, AbstractDataStore) and store.supports_streaming()
    shards = store.copy_shards(dataset, prefix="a/b")
    assert len(shards) == 3
    for src, info in zip(dataset.list_shards(), shards, strict=True):
        assert info.url.startswith(str(tmp_path / "store" / "a" / "b" / "data-"))
        data = Path(src).read_bytes()
        assert Path(info.url).read_bytes() == data
        assert (info.size, info.sha256) == (len(data), sha256(data))
        assert member_names(info.url) == member_names(src)  # sample keys kept
        assert store.owns(info.url) and store.read_url(info.url) == info.url
    assert not list((tmp_path / "store").rglob("*.partial"))
    urls = store.write_shards(dataset, prefix="again")
    assert len(urls) == 3 and set(urls).isdisjoint(s.url for s in shards)  # never overwrites
    with pytest.raises(ValueError, match="prefix"):
        store.copy_shards(dataset, prefix="../escape")


def test_disk_failure_midway_removes_the_copies(
    tmp_path: Path, dataset: atdata.Dataset[Chunk]
) -> None:
    Path(dataset.list_shards()[1]).unlink()
    index = Index(path=tmp_path / "i.db", data_store=LocalDiskStore(tmp_path / "store"))
    with pytest.raises(ShardError, match=r"c-000001\.tar"):
        index.insert_dataset(dataset, name="partial")
    assert index.list_entries() == []
    assert not [p for p in (tmp_path / "store").rglob("*") if p.is_file()]


def test_verified_source_checks_local_files(tmp_path: Path, dataset: atdata.Dataset[Chunk]) -> None:
    index = Index(path=tmp_path / "i.db", data_store=LocalDiskStore(tmp_path / "store"))
    entry = index.insert_dataset(dataset, name="c")
    assert isinstance(index.dataset_for("c").source, VerifiedSource)
    assert len(list(index.dataset_for("c"))) == 30
    target = Path(entry.data_urls[2])
    data = bytearray(target.read_bytes())
    data[700] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ShardError, match="SHA-256"):
        list(index.dataset_for("c"))
    assert len(list(index.dataset_for("c", verify=False))) == 30  # a flipped array byte
    target.write_bytes(bytes(data[:-512]))
    with pytest.raises(ShardError, match=r"bytes, .* recorded"):
        list(index.dataset_for("c"))


def test_index_failure_after_copy_removes_the_copies(
    tmp_path: Path, dataset: atdata.Dataset[Chunk]
) -> None:
    index = Index(path=tmp_path / "i.db", data_store=LocalDiskStore(tmp_path / "store"))
    fault = IndexBackendError("index down")
    with (
        mock.patch.object(SqliteProvider, "put_entries", side_effect=fault),
        pytest.raises(IndexBackendError),
    ):
        index.insert_dataset(dataset, name="c")
    assert not [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert index.list_entries() == []


# --------------------------------------------------------------------------- S3 (SeaweedFS)


def test_s3_multipart_copy(
    s3_store: S3DataStore, s3_client: Any, s3_bucket: str, tmp_path: Path
) -> None:
    big = atdata.write_samples(chunks(5, 5 * MiB), tmp_path / "big.tar")  # one 25 MiB shard
    s3_store.part_size = 8 * MiB
    (info,) = s3_store.copy_shards(big, prefix="big")
    key = info.url.removeprefix(f"s3://{s3_bucket}/")
    head = s3_client.head_object(Bucket=s3_bucket, Key=key)
    assert head["ETag"].strip('"').endswith("-4")  # 25 MiB in 8 MiB parts
    body = s3_client.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    original = Path(big.list_shards()[0]).read_bytes()
    assert body == original and info.sha256 == sha256(original) and info.size == len(original)


def test_s3_insert_and_read_back_private(
    s3_store: S3DataStore,
    s3_client: Any,
    s3_bucket: str,
    dataset: atdata.Dataset[Chunk],
    tmp_path: Path,
) -> None:
    index = Index(path=tmp_path / "i.db", data_store=s3_store)
    entry = index.insert_dataset(dataset, name="chunks", prefix="team/chunks")
    assert all(u.startswith(f"s3://{s3_bucket}/team/chunks/data-") for u in entry.data_urls)
    for src, url in zip(dataset.list_shards(), entry.data_urls, strict=True):
        key = url.removeprefix(f"s3://{s3_bucket}/")
        assert (
            s3_client.get_object(Bucket=s3_bucket, Key=key)["Body"].read() == Path(src).read_bytes()
        )
    back = index.dataset_for("chunks")
    assert [c.index for c in back] == [c.index for c in dataset]
    assert isinstance(back.source, VerifiedSource)
    inner = back.source.inner
    assert (
        isinstance(inner, atdata.S3Source)
        and inner.access_key
        and inner.endpoint == s3_store.endpoint
    )
    # private: an unsigned GET is refused, the presigned read_url works
    plain = (
        f"{s3_store.endpoint}/{s3_bucket}/{entry.data_urls[0].removeprefix(f's3://{s3_bucket}/')}"
    )
    assert httpx.get(plain).status_code in (401, 403)
    signed = s3_store.read_url(entry.data_urls[0])
    assert httpx.get(signed).content == Path(dataset.list_shards()[0]).read_bytes()
    assert [c.index for c in atdata.Dataset[Chunk](signed)] == list(range(10))


def test_s3_detects_changed_objects(
    s3_store: S3DataStore,
    s3_client: Any,
    s3_bucket: str,
    dataset: atdata.Dataset[Chunk],
    tmp_path: Path,
) -> None:
    index = Index(path=tmp_path / "i.db", data_store=s3_store)
    entry = index.insert_dataset(dataset, name="chunks")
    key = entry.data_urls[1].removeprefix(f"s3://{s3_bucket}/")
    data = bytearray(Path(dataset.list_shards()[1]).read_bytes())
    data[600] ^= 0xFF  # same length, different bytes: only the SHA-256 can tell
    s3_client.put_object(Bucket=s3_bucket, Key=key, Body=bytes(data))
    with pytest.raises(ShardError, match="SHA-256"):  # streamed: checked at the shard's end
        list(index.dataset_for("chunks", cache=False))
    cache = ShardCache(tmp_path / "cache", retries=0)
    with pytest.raises(ShardError, match="SHA-256"):  # cached: checked when downloaded
        list(index.dataset_for("chunks", cache=cache))
    assert not cache.path(entry.data_urls[1]).exists()  # the bad copy was not kept
    s3_client.put_object(Bucket=s3_bucket, Key=key, Body=bytes(data) + bytes(10240))
    with pytest.raises(ShardError, match="longer than"):
        list(index.dataset_for("chunks", cache=False))


def test_s3_copy_from_s3(s3_store: S3DataStore, dataset: atdata.Dataset[Chunk]) -> None:
    first = s3_store.copy_shards(dataset, prefix="one")
    remote = atdata.Dataset[Chunk](s3_store.create_source([s.url for s in first]))
    second = s3_store.copy_shards(remote, prefix="two")  # streamed from S3 to S3
    assert [(s.size, s.sha256) for s in second] == [(s.size, s.sha256) for s in first]


def test_s3_failure_midway_leaves_nothing(
    s3_store: S3DataStore,
    s3_client: Any,
    s3_bucket: str,
    dataset: atdata.Dataset[Chunk],
    tmp_path: Path,
) -> None:
    index = Index(path=tmp_path / "i.db", data_store=s3_store)
    s3_store.workers = 1
    real = s3_store.client.upload_fileobj
    calls = []

    def flaky(*args: Any, **kwargs: Any) -> None:  # fault injection: the second upload fails
        calls.append(args[2])
        if len(calls) == 2:
            raise ClientError(
                {"Error": {"Code": "InternalError", "Message": "injected"}}, "PutObject"
            )
        real(*args, **kwargs)

    with (
        mock.patch.object(s3_store.client, "upload_fileobj", side_effect=flaky),
        pytest.raises(ShardError, match="InternalError"),
    ):
        index.insert_dataset(dataset, name="chunks")
    assert index.list_entries() == []
    assert s3_objects(s3_client, s3_bucket) == []  # the first shard was removed again
    assert index.insert_dataset(dataset, name="chunks").name == "chunks"  # and the name is free


def test_s3_process_killed_midway_leaves_no_entry(
    s3_env: dict[str, str], s3_bucket: str, dataset: atdata.Dataset[Chunk], tmp_path: Path
) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import atdata
        from test_stores import Chunk, seed_credentials
        from atdata.local import Index, S3DataStore
        store = S3DataStore(credentials=seed_credentials({s3_env!r}), bucket={s3_bucket!r}, workers=1)
        real = store.client.upload_fileobj
        def killing(*args, **kwargs):
            real(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)  # the process dies after the first shard
        store.client.upload_fileobj = killing
        index = Index(path={str(tmp_path / "i.db")!r}, data_store=store)
        index.insert_dataset(atdata.Dataset[Chunk]({dataset.list_shards()!r}), name="chunks")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()
    index = Index(path=tmp_path / "i.db", data_store=LocalDiskStore(tmp_path / "unused"))
    assert index.list_entries() == []
    with pytest.raises(KeyError):
        index.get_entry_by_name("chunks")


def test_s3_missing_bucket(s3_env: dict[str, str], dataset: atdata.Dataset[Chunk]) -> None:
    store = S3DataStore(credentials=seed_credentials(s3_env), bucket="no-such-bucket-here")
    with pytest.raises(ShardError, match=r"'no-such-bucket-here'.*does not exist"):
        store.copy_shards(dataset, prefix="x")


def test_s3_credentials_from_env_file_and_chain(
    s3_environ: dict[str, str], s3_bucket: str, dataset: atdata.Dataset[Chunk], tmp_path: Path
) -> None:
    env_file = tmp_path / "team.env"
    creds = seed_credentials(s3_environ)
    env_file.write_text(
        "# team credentials\n"
        f"export AWS_ENDPOINT={creds['AWS_ENDPOINT']}\n"
        f"AWS_ACCESS_KEY_ID='{creds['AWS_ACCESS_KEY_ID']}'\n"
        f'AWS_SECRET_ACCESS_KEY="{creds["AWS_SECRET_ACCESS_KEY"]}"\n\n'
    )
    assert load_credentials(env_file) == creds
    from_file = S3DataStore(credentials=str(env_file), bucket=s3_bucket)
    assert len(from_file.copy_shards(dataset, prefix="file")) == 3
    chain = S3DataStore(bucket=s3_bucket)  # AWS_ENDPOINT_URL and keys from the environment
    shards = chain.copy_shards(dataset, prefix="chain")
    assert [
        c.index for c in atdata.Dataset[Chunk](chain.create_source([s.url for s in shards]))
    ] == list(range(30))


def test_credential_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.env"
    bad.write_text("AWS_ACCESS_KEY_ID\n")
    with pytest.raises(ValueError, match="line 1"):
        load_credentials(bad)
    with pytest.raises(FileNotFoundError, match=r"missing\.env"):
        S3DataStore(credentials=tmp_path / "missing.env", bucket="b")
    with pytest.raises(ValueError, match="both"):
        S3DataStore(credentials={"AWS_ACCESS_KEY_ID": "k"}, bucket="b")
    with pytest.raises(ValueError, match="bucket"):
        S3DataStore(bucket="a/b")


def test_s3_store_is_lazy() -> None:
    code = "import sys; from atdata.local import Index, S3DataStore; S3DataStore(bucket='b'); print('boto3' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ}, check=True
    )
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- the contract


class FolderStore(AbstractDataStore):
    """A store of one's own: subclasses the contract; indexing and reading go through it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.deleted: list[str] = []

    def copy_shards(
        self, dataset: atdata.Dataset[Any], *, prefix: str, sample_type: type | None = None
    ) -> list[atdata.ShardInfo]:
        out = []
        for i, shard in enumerate(dataset.list_shards()):
            target = self.root / prefix / f"{i}.tar"
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(shard, "rb") as src:
                reader = atdata.HashingReader(src)
                target.write_bytes(reader.read())
            out.append(atdata.ShardInfo(str(target), reader.size, reader.hexdigest()))
        return out

    def create_source(self, urls: Any) -> atdata.DataSource:
        return atdata.URLSource(list(urls))

    def read_url(self, url: str) -> str:
        return url

    def owns(self, url: str) -> bool:
        return url.startswith(str(self.root))

    def delete(self, urls: Any) -> None:
        self.deleted.extend(urls)


def test_an_index_uses_any_store_of_the_contract(
    tmp_path: Path, dataset: atdata.Dataset[Chunk]
) -> None:
    store = FolderStore(tmp_path / "mine")
    index = Index(path=tmp_path / "i.db", data_store=store)
    entry = index.insert_dataset(dataset, name="c")
    digests = [sha256(Path(u).read_bytes()) for u in entry.data_urls]
    assert [s.sha256 for s in entry.shards] == digests
    back = index.dataset_for("c")
    assert isinstance(back.source, VerifiedSource)
    assert [s.index for s in back.ordered()] == [s.index for s in dataset.ordered()]
    with pytest.raises(TypeError, match="re-shard"):
        index.insert_dataset(dataset, name="d", maxcount=5)
    down = IndexBackendError("index down")
    with (
        mock.patch.object(index.provider, "put_entry", side_effect=down),
        pytest.raises(IndexBackendError),  # not indexed: the copies are removed
    ):
        index.insert_dataset(dataset, name="e")
    assert len(store.deleted) == 3 and all(store.owns(u) for u in store.deleted)


def test_hashing_reader_hashes_what_is_read_in_order() -> None:
    data = bytes(range(256)) * 100
    reader = atdata.HashingReader(io.BytesIO(data))
    assert reader.read(1000) == data[:1000] and reader.size == 1000
    reader.seek(0)  # a retried upload starts again
    while reader.read(4096):
        pass
    assert (reader.size, reader.hexdigest()) == (len(data), sha256(data))
    reader.seek(50)  # reads that skip around are not hashed
    reader.read(10)
    assert reader.size == len(data)
