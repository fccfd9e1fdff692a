"""The seed's promotion workflow, steps 1-4, verbatim against real servers; then another process
that never imported ``FeatureSample`` finds the dataset, decodes its schema and reads it typed."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import webdataset as wds
from numpy.typing import NDArray

import atdata
from atdata.local import LocalIndex, S3DataStore

BUCKET = "datasets-bucket"


# 1. Define sample type
@atdata.packable
class FeatureSample:
    features: NDArray
    label: int


@pytest.fixture
def seed_bucket(s3_client: Any) -> Iterator[str]:
    """The seed's bucket name, created on the test server for this test only."""
    s3_client.create_bucket(Bucket=BUCKET)
    yield BUCKET
    for obj in s3_client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        s3_client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    s3_client.delete_bucket(Bucket=BUCKET)


@pytest.fixture(
    params=[
        "default",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def backend(request: pytest.FixtureRequest) -> dict[str, str]:
    """How both processes reach the index: the default SQLite one, Redis or PostgreSQL."""
    if request.param == "redis":
        request.getfixturevalue("redis_client")  # a flushed database 0 on the test server
        return {"redis": request.getfixturevalue("redis_server").url}
    if request.param == "postgres":
        return {"dsn": request.getfixturevalue("postgres_dsn")}
    return {}


def test_seed_steps_3_and_4_then_another_process_reads_it(
    backend: dict[str, str],
    s3_env: dict[str, str],
    seed_bucket: str,
    s3_client: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ATDATA_HOME", str(tmp_path / "home"))
    endpoint, key, secret = (
        s3_env["AWS_ENDPOINT_URL"],
        s3_env["AWS_ACCESS_KEY_ID"],
        s3_env["AWS_SECRET_ACCESS_KEY"],
    )

    # 2. Create local dataset
    samples = [
        FeatureSample(
            features=np.random.randn(128).astype(np.float32),
            label=i % 10,
        )
        for i in range(1000)
    ]

    with wds.writer.TarWriter("features.tar") as sink:
        for i, s in enumerate(samples):
            sink.write({**s.as_wds, "__key__": f"{i:06d}"})

    # 3. Set up index with S3 data store
    store = S3DataStore(
        credentials={
            "AWS_ENDPOINT": endpoint,
            "AWS_ACCESS_KEY_ID": key,
            "AWS_SECRET_ACCESS_KEY": secret,
        },
        bucket="datasets-bucket",
    )
    local_index = LocalIndex(data_store=store, **backend)

    # 4. Publish schema and insert dataset
    local_index.publish_schema(FeatureSample, version="1.0.0")
    dataset = atdata.Dataset[FeatureSample]("features.tar")
    local_entry = local_index.insert_dataset(dataset, name="feature-vectors-v1", prefix="features")

    # what step 5 (promotion) relies on
    entry = local_index.get_entry_by_name("feature-vectors-v1")
    assert entry == local_entry
    assert entry.schema_ref == "atdata://local/sampleSchema/FeatureSample@1.0.0"
    assert local_index.get_schema(entry.schema_ref)["sampleType"] == f"{__name__}.FeatureSample"
    (url,) = entry.data_urls
    assert url.startswith("s3://datasets-bucket/features/")
    stored = s3_client.get_object(Bucket=BUCKET, Key=url.removeprefix("s3://datasets-bucket/"))
    body = stored["Body"].read()
    assert body == Path("features.tar").read_bytes()  # a byte copy
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert tar.getnames()[:2] == ["000000.msgpack", "000001.msgpack"]

    expected = [[s.label, hashlib.sha256(s.features.tobytes()).hexdigest()] for s in samples]
    reader = textwrap.dedent(
        f"""
        import hashlib, json, sys
        from atdata.load import load_dataset
        from atdata.local import LocalIndex, S3DataStore

        store = S3DataStore(
            credentials={{"AWS_ENDPOINT": {endpoint!r}, "AWS_ACCESS_KEY_ID": {key!r},
                          "AWS_SECRET_ACCESS_KEY": {secret!r}}},
            bucket="datasets-bucket",
        )
        index = LocalIndex(data_store=store, **{backend!r})
        entry = index.get_entry_by_name("feature-vectors-v1")
        Decoded = index.decode_schema(entry.schema_ref)
        ds = index.dataset_for(entry)  # typed by the decoded schema, private bucket
        same = load_dataset("@local/feature-vectors-v1", index=index, split="train")
        assert same.sample_type is Decoded and same.list_shards() == entry.data_urls
        rows = []
        for s in ds:
            assert type(s) is Decoded and s.features.dtype.name == "float32"
            assert s.features.shape == (128,)
            rows.append([s.label, hashlib.sha256(s.features.tobytes()).hexdigest()])
        assert not [m for m in sys.modules if "test_team_workflow" in m or m.startswith("tests")]
        print(json.dumps({{"type": Decoded.__name__, "rows": rows, "cid": entry.cid}}))
        """
    )
    # Redis and PostgreSQL are shared: the reader has its own ATDATA_HOME, as on another
    # machine. The default SQLite index is a file: the reader shares ATDATA_HOME.
    home = tmp_path / ("other-machine" if backend else "home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.run(
        [sys.executable, "-c", reader],
        capture_output=True,
        text=True,
        env={**env, "ATDATA_HOME": str(home)},
        cwd=home.parent,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["type"] == "FeatureSample"
    assert result["rows"] == expected
    assert result["cid"] == local_entry.cid
