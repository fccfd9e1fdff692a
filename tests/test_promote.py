"""Promotion against the real servers: the seed's example, schema dedup, copies, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import atdata
from atdata.atmosphere import (
    AtmosphereIndex,
    CredentialURLError,
    DatasetLoader,
    PDSBlobStore,
    PrivateURLError,
    PrivateURLWarning,
    SchemaLoader,
)
from atdata.local import LocalIndex, S3DataStore
from atdata.promote import SOURCE_CID_KEY, promote_to_atmosphere
from fixtures_servers import _empty_bucket

# The seed's "Complete Workflow Example" of promotion, as the seed wrote it (its odd indentation
# included). The test swaps only its S3 credentials and login line for the test servers'.
SEED_COMPLETE_EXAMPLE = """\
import numpy as np
from numpy.typing import NDArray
import atdata
from atdata.local import LocalIndex, S3DataStore
from atdata.atmosphere import AtmosphereClient
from atdata.promote import promote_to_atmosphere
import webdataset as wds

# 1. Define sample type
@atdata.packable
class FeatureSample:
    features: NDArray
    label: int

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
    "AWS_ENDPOINT": "http://localhost:9000",
    "AWS_ACCESS_KEY_ID": "minioadmin",
    "AWS_SECRET_ACCESS_KEY": "minioadmin",
},
    bucket="datasets-bucket",
)
local_index = LocalIndex(data_store=store)

# 4. Publish schema and insert dataset
local_index.publish_schema(FeatureSample, version="1.0.0")
dataset = atdata.Dataset[FeatureSample]("features.tar")
local_entry = local_index.insert_dataset(dataset, name="feature-vectors-v1", prefix="features")

# 5. Promote to atmosphere
client = AtmosphereClient()
client.login("myhandle.bsky.social", "app-password")

at_uri = promote_to_atmosphere(
    local_entry,
    local_index,
    client,
    description="Feature vectors for classification",
    tags=["features", "embeddings"],
    license="MIT",
)

print(f"Dataset published: {at_uri}")

# 6. Verify on atmosphere
from atdata.atmosphere import AtmosphereIndex

atm_index = AtmosphereIndex(client)
entry = atm_index.get_dataset(at_uri)
print(f"Name: {entry.name}")
print(f"Schema: {entry.schema_ref}")
print(f"URLs: {entry.data_urls}")
"""


@atdata.packable
class Vec:
    features: NDArray[np.float32]
    label: int


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ATDATA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ATDATA_ALLOW_PRIVATE_URLS", raising=False)
    return tmp_path


def creds(s3_env: dict[str, str]) -> dict[str, str]:
    return {
        "AWS_ENDPOINT": s3_env["AWS_ENDPOINT_URL"],
        "AWS_ACCESS_KEY_ID": s3_env["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": s3_env["AWS_SECRET_ACCESS_KEY"],
    }


def team_entry(tmp_path: Path, s3_env: dict[str, str], bucket: str, name: str, n: int = 40) -> Any:
    index = LocalIndex(data_store=S3DataStore(credentials=creds(s3_env), bucket=bucket))
    index.publish_schema(Vec, version="1.0.0")
    ds = atdata.write_samples(
        [Vec(features=np.full(8, i, np.float32), label=i) for i in range(n)],
        tmp_path / f"{name}.tar",
        maxcount=15,
    )
    entry = index.insert_dataset(
        ds, name=name, prefix=name, metadata={"description": "from the team", "owner": "vision"}
    )
    return index, entry


def seed_complete_example() -> str:
    return SEED_COMPLETE_EXAMPLE


def test_seed_complete_example_runs_with_test_credentials(
    home: Path, s3_env: dict[str, str], s3_client: Any, pds_account: dict[str, str], monkeypatch
) -> None:
    code = seed_complete_example()
    # Only the S3 credentials and the login line change, as the issue allows; the bucket is
    # the seed's own name, created in our test server.
    code = code.replace('"http://localhost:9000"', repr(s3_env["AWS_ENDPOINT_URL"]))
    code = code.replace(
        '"minioadmin",\n    "AWS_SECRET', f'{s3_env["AWS_ACCESS_KEY_ID"]!r},\n    "AWS_SECRET'
    )
    code = code.replace(
        '"AWS_SECRET_ACCESS_KEY": "minioadmin"',
        f'"AWS_SECRET_ACCESS_KEY": {s3_env["AWS_SECRET_ACCESS_KEY"]!r}',
    )
    code = code.replace(
        'client = AtmosphereClient()\nclient.login("myhandle.bsky.social", "app-password")',
        f"client = AtmosphereClient({pds_account['pds_url']!r}, plc_url={pds_account['plc_url']!r})\n"
        f"client.login({pds_account['handle']!r}, {pds_account['password']!r})",
    )
    assert "minioadmin" not in code and "myhandle" not in code
    s3_client.create_bucket(Bucket="datasets-bucket")
    monkeypatch.chdir(home)
    namespace: dict[str, Any] = {"__name__": "seed_promotion"}
    try:
        # The seed's default keeps the existing URLs; the team's endpoint is on loopback,
        # so the promotion warns, naming the URL and why, and publishes.
        with pytest.warns(PrivateURLWarning) as caught:
            exec(compile(code, "promotion-workflow.md", "exec", dont_inherit=True), namespace)
    finally:
        _empty_bucket(s3_client, "datasets-bucket")
        s3_client.delete_bucket(Bucket="datasets-bucket")
    (warning,) = [w for w in caught if issubclass(w.category, PrivateURLWarning)]
    text = str(warning.message)
    assert "s3://datasets-bucket/features/" in text and "loopback" in text
    assert s3_env["AWS_ENDPOINT_URL"] in text
    assert warning.filename == "promotion-workflow.md"  # points at the user's call

    entry = namespace["entry"]
    assert entry.name == "feature-vectors-v1"
    assert entry.schema_ref.startswith("at://") and "sampleSchema" in entry.schema_ref
    assert entry.data_urls == namespace["local_entry"].data_urls
    assert all(u.startswith("s3://datasets-bucket/features/") for u in entry.data_urls)
    assert entry.description == "Feature vectors for classification"
    assert entry.tags == ["features", "embeddings"] and entry.license == "MIT"
    # The endpoint is recorded, so others can read the bucket if it is public.
    assert entry.record["storage"]["endpoint"] == s3_env["AWS_ENDPOINT_URL"]


def schema_count(client: Any) -> int:
    return len(SchemaLoader(client).list_all())


def test_second_promotion_reuses_the_schema_record(
    home: Path, s3_env: dict[str, str], s3_bucket: str, pds_client: Any
) -> None:
    index, first = team_entry(home, s3_env, s3_bucket, "first")
    _, second = team_entry(home, s3_env, s3_bucket, "second", n=10)
    uri1 = promote_to_atmosphere(first, index, pds_client)
    assert schema_count(pds_client) == 1
    uri2 = promote_to_atmosphere(second, index, pds_client)
    assert schema_count(pds_client) == 1  # no second schema record
    loader = DatasetLoader(pds_client)
    assert loader.get(uri1)["schemaRef"] == loader.get(uri2)["schemaRef"]


def test_promoting_the_same_entry_twice_returns_the_same_record(
    home: Path, s3_env: dict[str, str], s3_bucket: str, pds_client: Any
) -> None:
    index, entry = team_entry(home, s3_env, s3_bucket, "twice")
    uri1 = promote_to_atmosphere(entry, index, pds_client)
    uri2 = promote_to_atmosphere(entry, index, pds_client)
    assert uri1 == uri2
    assert len(DatasetLoader(pds_client).list_all()) == 1
    other = promote_to_atmosphere(entry, index, pds_client, name="twice-v2")
    assert other != uri1 and len(DatasetLoader(pds_client).list_all()) == 2


def test_metadata_carries_over_and_arguments_override(
    home: Path, s3_env: dict[str, str], s3_bucket: str, pds_client: Any
) -> None:
    index, entry = team_entry(home, s3_env, s3_bucket, "meta")
    uri = promote_to_atmosphere(entry, index, pds_client, tags=["a", "b"], license="MIT")
    got = AtmosphereIndex(pds_client).get_dataset(uri)
    assert got.description == "from the team"
    assert got.tags == ["a", "b"] and got.license == "MIT"
    assert got.metadata["owner"] == "vision"
    assert got.metadata[SOURCE_CID_KEY] == entry.cid
    assert [s.sha256 for s in got.shards] == [s.sha256 for s in entry.shards]
    over = promote_to_atmosphere(entry, index, pds_client, name="meta-2", description="public")
    assert AtmosphereIndex(pds_client).get_dataset(over).description == "public"


def original_bytes(index: Any, entry: Any) -> list[bytes]:
    source = index.dataset_for(entry).source
    out = []
    for shard in source.list_shards():
        with source.open_shard(shard) as f:
            out.append(f.read())
    return out


def test_copy_to_pds_blobs_reads_back_byte_identical(
    home: Path, s3_env: dict[str, str], s3_bucket: str, pds_client: Any
) -> None:
    index, entry = team_entry(home, s3_env, s3_bucket, "blobs")
    uri = promote_to_atmosphere(entry, index, pds_client, data_store=PDSBlobStore(pds_client))
    loader = DatasetLoader(pds_client)
    assert loader.get_storage_type(uri) == "blobs"
    source = AtmosphereIndex(pds_client).dataset_for(uri).source
    copies = []
    for shard in source.list_shards():
        with source.open_shard(shard) as f:
            copies.append(f.read())
    assert copies == original_bytes(index, entry)
    ds = loader.to_dataset(uri, Vec)
    assert sorted(s.label for s in ds) == list(range(40))


def test_copy_to_another_bucket(
    home: Path, s3_env: dict[str, str], s3_bucket: str, s3_client: Any, pds_client: Any
) -> None:
    index, entry = team_entry(home, s3_env, s3_bucket, "copy")
    public = f"{s3_bucket}-pub"
    s3_client.create_bucket(Bucket=public)
    try:
        store = S3DataStore(credentials=creds(s3_env), bucket=public)
        uri = promote_to_atmosphere(entry, index, pds_client, data_store=store)
        got = AtmosphereIndex(pds_client).get_dataset(uri)
        assert len(got.data_urls) == len(entry.data_urls) == 3
        assert all(u.startswith(f"s3://{public}/promoted/copy/") for u in got.data_urls)
        copies = []
        for url in got.data_urls:
            key = url.split("/", 3)[3]
            copies.append(s3_client.get_object(Bucket=public, Key=key)["Body"].read())
        assert copies == original_bytes(index, entry)
    finally:
        _empty_bucket(s3_client, public)
        s3_client.delete_bucket(Bucket=public)


def test_errors(
    home: Path, s3_env: dict[str, str], s3_bucket: str, s3_client: Any, pds_client: Any
) -> None:
    index, entry = team_entry(home, s3_env, s3_bucket, "errors")
    with pytest.raises(PrivateURLError, match="copy the shards") as raised:
        promote_to_atmosphere(entry, index, pds_client, require_public_urls=True)
    assert "loopback" in str(raised.value)
    assert DatasetLoader(pds_client).list_all() == []
    assert SchemaLoader(pds_client).list_all() == []  # refused before anything was published

    empty = LocalIndex(path=home / "other.db")
    with pytest.raises(KeyError):
        promote_to_atmosphere(entry, empty, pds_client)  # schema not in that index

    class NoURLs:
        name, schema_ref, data_urls, metadata = "x", entry.schema_ref, [], None

    with pytest.raises(ValueError, match="no data URLs"):
        promote_to_atmosphere(NoURLs(), index, pds_client)


def test_public_urls_only_refuses_before_copying(
    home: Path, s3_env: dict[str, str], s3_bucket: str, s3_client: Any, pds_client: Any
) -> None:
    index, entry = team_entry(home, s3_env, s3_bucket, "nocopy")
    target = f"{s3_bucket}-target"
    s3_client.create_bucket(Bucket=target)
    try:
        store = S3DataStore(credentials=creds(s3_env), bucket=target)  # on loopback
        with pytest.raises(PrivateURLError, match="loopback"):
            promote_to_atmosphere(
                entry, index, pds_client, data_store=store, require_public_urls=True
            )
        assert s3_client.list_objects_v2(Bucket=target).get("KeyCount", 0) == 0
        assert DatasetLoader(pds_client).list_all() == []
    finally:
        _empty_bucket(s3_client, target)
        s3_client.delete_bucket(Bucket=target)


def test_a_url_with_a_credential_is_never_published(home: Path, pds_client: Any) -> None:
    index = LocalIndex(path=home / "signed.db")
    ref = index.publish_schema(Vec, version="1.0.0")
    signed = (
        "https://bucket.s3.amazonaws.com/d.tar?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIDEXAMPLE%2F20260101&X-Amz-Signature=deadbeef"
    )
    entry = index.add_entry(signed, name="signed", schema_ref=ref)
    for require in (False, True):
        with pytest.raises(CredentialURLError) as raised:
            promote_to_atmosphere(entry, index, pds_client, require_public_urls=require)
        assert "deadbeef" not in str(raised.value) and "AKIDEXAMPLE" not in str(raised.value)
    assert DatasetLoader(pds_client).list_all() == []


def test_local_paths_are_published_as_file_uris_with_a_warning(home: Path, pds_client: Any) -> None:
    index = LocalIndex(path=home / "disk.db")  # the default LocalDiskStore: local paths
    index.publish_schema(Vec, version="1.0.0")
    ds = atdata.write_samples(
        [Vec(features=np.zeros(8, np.float32), label=i) for i in range(5)], home / "l.tar"
    )
    entry = index.insert_dataset(ds, name="on-disk")
    with pytest.raises(PrivateURLError, match="local file path"):
        promote_to_atmosphere(entry, index, pds_client, require_public_urls=True)
    with pytest.warns(PrivateURLWarning, match="local file path"):
        uri = promote_to_atmosphere(entry, index, pds_client)
    urls = DatasetLoader(pds_client).get_urls(uri)
    assert urls == ["file://" + str(Path(u).resolve()) for u in entry.data_urls]
