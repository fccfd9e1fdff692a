"""``atdata.load_dataset``: every path form and URI form, against real files and servers.

Local files, directories, globs and brace patterns; HTTP on a loopback server;
``s3://`` URLs and globs on SeaweedFS; ``@local/name`` in SQLite, Redis and
PostgreSQL indexes; ``@handle/name``, ``@did/name`` and ``at://`` on the local PDS.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import atdata
from atdata.load import (
    DatasetDict,
    detect_split,
    get_default_index,
    index_from_env,
    load_dataset,
    set_default_index,
)
from atdata.local import LocalIndex, S3DataStore
from helpers import private_atdata_home, serve_directory  # noqa: F401 - autouse fixture


@atdata.packable
class Row:
    """One numbered row."""

    features: NDArray[np.float32]
    label: int
    split: str


def rows(split: str, n: int, start: int = 0) -> list[Row]:
    return [
        Row(features=np.full(4, i, np.float32), label=i, split=split)
        for i in range(start, start + n)
    ]


def write(path: Path, split: str, n: int = 3, start: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atdata.write_samples(rows(split, n, start), path)
    return path


@pytest.fixture
def twenty(tmp_path: Path) -> Path:
    """``{train,test}-{000..009}.tar`` under ``tmp_path/shards`` (3 samples each)."""
    root = tmp_path / "shards"
    for split in ("train", "test"):
        for i in range(10):
            write(root / f"{split}-{i:03d}.tar", split, 3, 3 * i)
    return root


@pytest.fixture(autouse=True)
def reset_default_index() -> Iterator[None]:
    set_default_index(None)
    yield
    set_default_index(None)


# --------------------------------------------------------------------------- split names


@pytest.mark.parametrize(
    ("path", "split"),
    [
        ("train-000.tar", "train"),
        ("training_data.tar", "train"),
        ("mnist-train.tar", "train"),
        ("test-000.tar", "test"),
        ("TESTING.tar", "test"),
        ("data_eval_01.tar", "test"),
        ("validation-000.tar", "validation"),
        ("valid.tar", "validation"),
        ("val-0.tar", "validation"),
        ("dev_000.tar", "validation"),
        ("development.tar", "validation"),
        ("splits/validation/000.tar", "validation"),
        ("splits/test/000.tar", "test"),
        ("data-000.tar", "train"),
        ("latest-000.tar", "train"),  # "test" inside a word is not a split
        ("contest.tar", "train"),
        ("device.tar", "train"),
    ],
)
def test_detect_split(path: str, split: str) -> None:
    assert detect_split(path) == split


# --------------------------------------------------------------------------- local paths


def test_single_file_is_train_and_reads_typed(tmp_path: Path) -> None:
    shard = write(tmp_path / "data.tar", "x", 5)
    splits = load_dataset(str(shard))
    assert isinstance(splits, DatasetDict) and list(splits) == ["train"]
    assert splits.entry is None
    untyped = splits["train"].head(1)[0]
    assert isinstance(untyped, atdata.DictSample) and untyped.label == 0
    typed = load_dataset(shard, Row, split="train")  # a Path works too
    assert [s.label for s in typed] == [0, 1, 2, 3, 4]
    assert typed.sample_type is Row


def test_parent_directory_names_are_not_splits(tmp_path: Path) -> None:
    # pytest's tmp_path has a "test_..." component; only names below the given path count
    shard = write(tmp_path / "test_dir" / "test-like" / "data.tar", "x")
    assert list(load_dataset(str(shard))) == ["train"]
    assert list(load_dataset(str(shard.parent))) == ["train"]
    assert list(load_dataset(str(shard.parent / "*.tar"))) == ["train"]


def test_brace_pattern_gives_two_splits(twenty: Path) -> None:
    splits = load_dataset(str(twenty / "{train,test}-{000..009}.tar"), Row)
    assert sorted(splits) == ["test", "train"]
    assert splits.num_shards == {"train": 10, "test": 10}
    assert splits.sample_type is Row
    test = load_dataset(str(twenty / "{train,test}-{000..009}.tar"), Row, split="test")
    labels = [s.label for s in test]
    assert labels == list(range(30))
    assert {s.split for s in test} == {"test"}
    assert len(test) == 30


def test_brace_pattern_with_glob(twenty: Path) -> None:
    splits = load_dataset(str(twenty / "{train,test}-*.tar"))
    assert splits.num_shards == {"train": 10, "test": 10}


def test_brace_pattern_with_a_missing_shard_raises(twenty: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"train-010\.tar"):
        load_dataset(str(twenty / "{train,test}-{000..010}.tar"))


def test_nothing_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no shards found"):
        load_dataset(str(tmp_path / "nope.tar"))
    with pytest.raises(FileNotFoundError):
        load_dataset(str(tmp_path / "*.tar"))
    with pytest.raises(FileNotFoundError):
        load_dataset(str(tmp_path / "missing-{0..3}.tar"))


def test_glob_and_directory(twenty: Path) -> None:
    assert load_dataset(str(twenty / "*.tar")).num_shards == {"test": 10, "train": 10}
    assert load_dataset(str(twenty)).num_shards == {"test": 10, "train": 10}
    assert load_dataset(str(twenty / "train-00[0-4].tar")).num_shards == {"train": 5}
    assert load_dataset(f"file://{twenty}/test-*.tar").num_shards == {"test": 10}


def test_directory_with_split_folders(tmp_path: Path) -> None:
    root = tmp_path / "mnist"
    write(root / "train" / "000.tar", "train")
    write(root / "train" / "001.tar", "train")
    write(root / "validation" / "000.tar", "validation")
    write(root / "dev" / "000.tar", "validation")
    write(root / "test" / "000.tar", "test")
    splits = load_dataset(str(root))
    assert splits.num_shards == {"test": 1, "train": 2, "validation": 2}
    assert load_dataset(str(root / "{train,test}")).num_shards == {"train": 2, "test": 1}


def test_shards_are_sorted_and_unique(twenty: Path) -> None:
    ds = load_dataset(str(twenty / "{train-*.tar,train-00*.tar}"), split="train")
    shards = ds.list_shards()
    assert shards == sorted(shards) and len(shards) == 10


def test_split_not_found_lists_the_available_ones(twenty: Path) -> None:
    with pytest.raises(ValueError, match=r"split 'validation' not found.*\['test', 'train'\]"):
        load_dataset(str(twenty), split="validation")


def test_data_files(twenty: Path) -> None:
    one = load_dataset(str(twenty), data_files="train-00[0-2].tar")
    assert one.num_shards == {"train": 3}
    listed = load_dataset(str(twenty), data_files=["test-000.tar", "test-001.tar"])
    assert listed.num_shards == {"train": 2}  # a str or list is the train split
    mapped = load_dataset(
        str(twenty),
        Row,
        data_files={
            "train": "train-*.tar",
            "validation": ["test-000.tar"],
            "holdout": "test-00{1..2}.tar",
        },
    )
    assert mapped.num_shards == {"train": 10, "validation": 1, "holdout": 2}
    assert mapped["validation"].head(1)[0].split == "test"
    absolute = load_dataset(str(twenty), data_files={"test": str(twenty / "test-009.tar")})
    assert absolute.num_shards == {"test": 1}
    with pytest.raises(FileNotFoundError, match="data_files"):
        load_dataset(str(twenty), data_files={"train": "nothing-*.tar"})


# --------------------------------------------------------------------------- remote URLs


def test_http_urls_and_brace_patterns(twenty: Path) -> None:
    with serve_directory(twenty) as base:
        ds = load_dataset(f"{base}/train-{{000..002}}.tar", Row, split="train")
        assert [s.label for s in ds] == list(range(9))
        splits = load_dataset(f"{base}/{{train,test}}-000.tar")
        assert splits.num_shards == {"train": 1, "test": 1}
        with pytest.raises(ValueError, match="cannot be listed"):
            load_dataset(f"{base}/*.tar")


def _upload(client: Any, bucket: str, root: Path) -> None:
    for path in sorted(root.glob("*.tar")):
        client.upload_file(str(path), bucket, f"ds/{path.name}")


def test_s3_glob_brace_and_url(
    twenty: Path, s3_environ: dict[str, str], s3_client: Any, s3_bucket: str
) -> None:
    _upload(s3_client, s3_bucket, twenty)
    splits = load_dataset(f"s3://{s3_bucket}/ds/*.tar", Row)
    assert splits.num_shards == {"test": 10, "train": 10}
    assert [s.label for s in splits["test"]] == list(range(30))
    braced = load_dataset(f"s3://{s3_bucket}/ds/{{train,test}}-*.tar")
    assert braced.num_shards == {"train": 10, "test": 10}
    one = load_dataset(f"s3://{s3_bucket}/ds/test-{{000..001}}.tar", Row, split="test")
    assert len(one) == 6
    with pytest.raises(FileNotFoundError):
        load_dataset(f"s3://{s3_bucket}/elsewhere/*.tar")


# --------------------------------------------------------------------------- @local/name


@pytest.fixture
def indexed(twenty: Path, tmp_path: Path) -> LocalIndex:
    index = LocalIndex(path=tmp_path / "index.db")
    index.publish_schema(Row, version="1.0.0")
    index.insert_dataset(atdata.Dataset[Row](str(twenty / "train-{000..009}.tar")), name="rows")
    return index


def test_local_name_in_a_given_index(indexed: LocalIndex) -> None:
    splits = load_dataset("@local/rows", index=indexed)
    assert list(splits) == ["train"]
    assert splits.entry.name == "rows"
    ds = splits["train"]
    assert ds.sample_type.__name__ == "Row" and ds.sample_type is not Row  # decoded, not imported
    assert [s.label for s in ds] == list(range(30))
    typed = load_dataset("@local/rows", Row, index=indexed, split="train")
    assert typed.sample_type is Row and len(typed) == 30


def test_local_name_in_the_default_index(indexed: LocalIndex) -> None:
    set_default_index(indexed)
    assert get_default_index() is indexed
    assert len(load_dataset("@local/rows", split="train")) == 30
    with pytest.raises(KeyError, match="no dataset named 'missing'"):
        load_dataset("@local/missing")
    for bad in ("@local", "@local/", "@/rows"):
        with pytest.raises(ValueError, match="@local/name"):
            load_dataset(bad)


def test_default_index_is_atdata_home(twenty: Path) -> None:
    import os

    home_index = LocalIndex()
    assert os.environ["ATDATA_HOME"] in home_index.provider.location
    home_index.insert_dataset(
        atdata.Dataset[Row](str(twenty / "test-000.tar")), name="home-rows", overwrite=True
    )
    assert len(load_dataset("@local/home-rows", split="train")) == 3


def test_default_index_from_environment(
    indexed: LocalIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATDATA_INDEX", str(tmp_path / "index.db"))
    assert len(load_dataset("@local/rows", split="train")) == 30
    set_default_index(None)
    monkeypatch.setenv("ATDATA_INDEX", f"sqlite://{tmp_path / 'index.db'}")
    assert len(load_dataset("@local/rows", split="train")) == 30


def test_index_from_env_redis_postgres_and_bucket(
    redis_server: Any, postgres_dsn: str, s3_env: dict[str, str], s3_bucket: str
) -> None:
    from atdata.local import PostgresProvider, RedisProvider

    redis_index = index_from_env({"ATDATA_INDEX": redis_server.url})
    assert isinstance(redis_index.provider, RedisProvider)
    pg_index = index_from_env({"ATDATA_INDEX": postgres_dsn})
    assert isinstance(pg_index.provider, PostgresProvider)
    with_bucket = index_from_env(
        {**s3_env, "ATDATA_BUCKET": s3_bucket, "ATDATA_INDEX": postgres_dsn}
    )
    assert isinstance(with_bucket.data_store, S3DataStore)
    assert with_bucket.data_store.bucket == s3_bucket
    assert with_bucket.data_store.endpoint == s3_env["AWS_ENDPOINT_URL"]
    for index in (redis_index, pg_index, with_bucket):
        index.close()


def test_local_name_on_redis_with_s3_store(
    twenty: Path, redis_server: Any, redis_client: Any, s3_env: dict[str, str], s3_bucket: str
) -> None:
    index = index_from_env({**s3_env, "ATDATA_INDEX": redis_server.url, "ATDATA_BUCKET": s3_bucket})
    entry = index.insert_dataset(
        atdata.Dataset[Row](str(twenty / "{train,test}-000.tar")), name="team-rows"
    )
    assert all(u.startswith(f"s3://{s3_bucket}/") for u in entry.data_urls)
    set_default_index(index)
    ds = load_dataset("@local/team-rows", split="train")
    assert sorted(s.split for s in ds) == ["test"] * 3 + ["train"] * 3
    index.close()


# --------------------------------------------------------------------------- schema references


def test_schema_reference_as_sample_type(indexed: LocalIndex, twenty: Path) -> None:
    set_default_index(indexed)

    @atdata.packable
    class Row2:
        features: NDArray[np.float32]
        label: int
        split: str
        note: str = ""

    indexed.publish_schema(Row, version="1.2.0")
    pinned = load_dataset(
        str(twenty / "train-000.tar"), "atdata://local/sampleSchema/Row@1.0.0", split="train"
    )
    assert pinned.sample_type.__name__ == "Row" and pinned.head(1)[0].label == 0
    # without @version: the latest version (1.2.0, published after 1.0.0 but also greater)
    latest = load_dataset(str(twenty / "train-000.tar"), "atdata://local/sampleSchema/Row")
    assert latest.sample_type.__name__ == "Row"
    assert indexed.get_schema("atdata://local/sampleSchema/Row")["version"] == "1.2.0"
    indexed.publish_schema(Row2, version="0.9.0")
    assert indexed.get_schema("atdata://local/sampleSchema/Row2")["version"] == "0.9.0"
    with pytest.raises(KeyError, match="Nope"):
        load_dataset(str(twenty), "atdata://local/sampleSchema/Nope")
    with pytest.raises(TypeError):
        load_dataset(str(twenty), 42)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- @handle/name, @did/name, at://


@pytest.fixture
def published(
    twenty: Path, pds_client: Any, pds_account: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """``rows`` (the train shards) published as blobs by a fresh account; readers use the env."""
    from atdata.atmosphere import AtmosphereIndex, PDSBlobStore

    index = AtmosphereIndex(pds_client, data_store=PDSBlobStore(pds_client))
    schema_uri = index.publish_schema(Row, version="1.0.0")
    entry = index.insert_dataset(
        atdata.Dataset[Row](str(twenty / "train-{000..009}.tar")),
        name="rows",
        schema_ref=schema_uri,
    )
    monkeypatch.setenv("ATDATA_PDS_URL", pds_account["pds_url"])
    monkeypatch.setenv("ATDATA_PLC_URL", pds_account["plc_url"])
    return {"entry": entry, "schema_uri": schema_uri, "index": index, **pds_account}


def test_handle_name(published: dict[str, Any]) -> None:
    splits = load_dataset(f"@{published['handle']}/rows")
    assert list(splits) == ["train"] and splits.entry.uri == published["entry"].uri
    ds = splits["train"]
    assert ds.sample_type.__name__ == "Row"  # decoded from the published schema record
    assert [s.label for s in ds] == list(range(30))
    assert len(load_dataset(f"@{published['handle']}/rows", Row, split="train")) == 30


def test_did_name(published: dict[str, Any]) -> None:
    ds = load_dataset(f"@{published['did']}/rows", Row, split="train")
    assert ds.sample_type is Row
    assert sorted(s.label for s in ds.shuffled(seed=1)) == list(range(30))


def test_at_uri(published: dict[str, Any]) -> None:
    uri = published["entry"].uri
    assert uri.startswith(f"at://{published['did']}/ac.foundation.dataset.record/")
    ds = load_dataset(uri, split="train")
    assert [s.label for s in ds][:3] == [0, 1, 2]
    handle_uri = uri.replace(published["did"], published["handle"])
    assert len(load_dataset(handle_uri, Row, split="train")) == 30


def test_at_schema_uri_as_sample_type(published: dict[str, Any], twenty: Path) -> None:
    ds = load_dataset(str(twenty / "test-000.tar"), published["schema_uri"], split="test")
    assert ds.sample_type.__name__ == "Row" and ds.head(1)[0].split == "test"


def test_atmosphere_index_argument(published: dict[str, Any]) -> None:
    index = published["index"]
    ds = load_dataset(f"@{published['handle']}/rows", split="train", index=index)
    assert len(ds) == 30
    with pytest.raises(TypeError, match="AtmosphereIndex"):
        load_dataset(f"@{published['handle']}/rows", index=LocalIndex(path=":memory:"))


def test_unknown_names_and_uris(published: dict[str, Any]) -> None:
    with pytest.raises(KeyError, match="no dataset named 'nothing'"):
        load_dataset(f"@{published['handle']}/nothing")
    missing = published["entry"].uri.rsplit("/", 1)[0] + "/3zzzzzzzzzzzz"
    with pytest.raises(KeyError):
        load_dataset(missing)
    from atdata.atmosphere import IdentityError

    with pytest.raises(IdentityError):
        load_dataset("@nobody-here.test/rows")


def test_external_urls_record(
    twenty: Path, pds_client: Any, pds_account: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from atdata.atmosphere import AtmosphereIndex

    monkeypatch.setenv("ATDATA_PDS_URL", pds_account["pds_url"])
    monkeypatch.setenv("ATDATA_PLC_URL", pds_account["plc_url"])
    monkeypatch.delenv("ATDATA_ALLOW_PRIVATE_URLS", raising=False)
    with serve_directory(twenty) as base:
        index = AtmosphereIndex(pds_client)
        with pytest.warns(atdata.PrivateURLWarning, match="loopback"):
            entry = index.insert_dataset(
                atdata.Dataset[Row](f"{base}/test-{{000..004}}.tar"), name="served"
            )
        assert entry.storage_type == "external"
        ref = f"@{pds_account['handle']}/served"
        # a record's loopback URLs are not opened by default...
        with pytest.raises(atdata.PrivateURLError, match="loopback"):
            load_dataset(ref, split="train")
        # ...only when the reader opts in: the parameter, or the environment variable
        ds = load_dataset(ref, split="train", allow_private_urls=True)
        assert [s.label for s in ds] == list(range(15))
        monkeypatch.setenv("ATDATA_ALLOW_PRIVATE_URLS", "1")
        ds = load_dataset(ref, split="train")
        assert [s.label for s in ds] == list(range(15))


def test_blob_shard_ids(published: dict[str, Any]) -> None:
    urls = published["entry"].data_urls
    assert all(u.startswith(f"at://{published['did']}/blob/") for u in urls)
    ds = load_dataset(urls[0], Row, split="train")
    assert [s.label for s in ds] == list(range(len(ds)))
    did = published["did"]
    cids = ",".join(u.rsplit("/", 1)[1] for u in urls)
    every = load_dataset(f"at://{did}/blob/{{{cids}}}", split="train")
    assert len(every) == 30 and isinstance(every.head(1)[0], atdata.DictSample)


def test_legacy_local_schema_ref(indexed: LocalIndex, twenty: Path) -> None:
    set_default_index(indexed)
    ds = load_dataset(
        str(twenty / "test-000.tar"), "local://schemas/mymodule.Row@1.0.0", split="test"
    )
    assert ds.sample_type.__name__ == "Row"
