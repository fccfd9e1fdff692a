"""Brace patterns from strangers' records: counted before they are expanded, refused past the limit.

A record may list ``x-{0..99999999}.tar`` (valid by the lexicon); expanding it
eagerly took every reader to ``MemoryError``. Every way in (``Dataset``,
``load_dataset``, ``atdata inspect``, a dataset record) refuses more shards than
the lexicon allows, quickly and in little memory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tracemalloc
from pathlib import Path

import braceexpand
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import atdata
from atdata._braces import count_shards
from atdata.errors import AtdataError, ShardListError
from atdata.sources import MAX_SHARDS, expand_urls
from helpers import private_atdata_home  # noqa: F401 - autouse fixture

ATDATA = Path(sys.executable).parent / "atdata"
LEXICONS = Path(atdata.__file__).parent / "atmosphere" / "lexicons"
HUGE = "https://example.org/x-{0..99999999}.tar"


def test_the_limit_is_the_lexicons_shard_limit() -> None:
    def max_length(name: str, *path: str) -> int:
        node = json.loads((LEXICONS / f"ac.foundation.dataset.{name}.json").read_text())
        node = node["defs"]["main"]
        for part in path:
            node = node[part]
        return int(node["maxLength"])

    assert max_length("storageExternal", "properties", "urls") == MAX_SHARDS
    assert max_length("storageExternal", "properties", "sha256") == MAX_SHARDS
    assert max_length("storageBlobs", "properties", "blobs") == MAX_SHARDS


def refused(call: object) -> ShardListError:
    tracemalloc.start()
    try:
        with pytest.raises(ShardListError) as info:
            call()  # type: ignore[operator]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20
    assert isinstance(info.value, AtdataError)
    assert re.search(r"names 10000000\d shards", str(info.value))
    assert f"at most {MAX_SHARDS}" in str(info.value)
    return info.value


@pytest.mark.timeout(60)
def test_expand_urls_counts_before_expanding() -> None:
    refused(lambda: expand_urls(HUGE))
    refused(lambda: expand_urls(["a.tar", "https://example.org/y-{0..9999}-{0..9999}.tar"]))


@pytest.mark.timeout(60)
def test_dataset_and_load_dataset_refuse_a_huge_pattern(tmp_path: Path) -> None:
    refused(lambda: atdata.Dataset(HUGE))
    refused(lambda: atdata.load_dataset(str(tmp_path / "x-{0..99999999}.tar")))


@pytest.mark.timeout(60)
def test_a_dataset_record_with_a_huge_pattern_is_refused() -> None:
    from atdata.atmosphere.datasets import EXTERNAL_STORAGE, open_record
    from atdata.atmosphere.records import Record

    record = Record(
        {
            "$type": "ac.foundation.dataset.record",
            "name": "hostile",
            "schemaRef": "at://did:plc:abc/ac.foundation.dataset.sampleSchema/x",
            "storage": {"$type": EXTERNAL_STORAGE, "urls": [HUGE]},
        },
        uri="at://did:plc:abc/ac.foundation.dataset.record/1",
        cid=None,
    )
    from atdata.atmosphere import AtmosphereClient

    client = AtmosphereClient("https://pds.example")  # never contacted: refused first
    refused(lambda: open_record(client, record, atdata.DictSample))


@pytest.mark.timeout(120)
def test_atdata_inspect_refuses_a_huge_pattern(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATDATA_", "AWS_"))}
    proc = subprocess.run(
        [str(ATDATA), "inspect", str(tmp_path / "x-{0..99999999}.tar")],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
        env={**env, "ATDATA_HOME": str(tmp_path / "home"), "COLUMNS": "200"},
    )
    assert proc.returncode != 0
    assert "100000000 shards" in proc.stderr and "Traceback" not in proc.stderr


def test_the_limit_itself_is_allowed(tmp_path: Path) -> None:
    urls = expand_urls(f"s3://b/x-{{1..{MAX_SHARDS}}}.tar")
    assert len(urls) == MAX_SHARDS and urls[-1] == f"s3://b/x-{MAX_SHARDS}.tar"
    with pytest.raises(ShardListError):
        expand_urls(f"s3://b/x-{{0..{MAX_SHARDS}}}.tar")
    plain = [f"s3://b/{i}.tar" for i in range(MAX_SHARDS + 5)]
    assert expand_urls(plain) == plain  # a list without patterns is the caller's own


@pytest.mark.parametrize("pattern", ["x-{0..3", "x-{{0..3}", "x-" + "{" * 3000 + "}" * 3000])
def test_a_malformed_pattern_is_a_shard_list_error(pattern: str) -> None:
    with pytest.raises(ShardListError):
        expand_urls(pattern)


# small pieces, so that braceexpand's own (eager) expansion of any pattern stays small
PIECES = st.sampled_from(
    [
        *["a", "-", ",", "{", "}", "..", "0", "1", "3", "-2", "x", "Z", "\\", "\\{", "/"],
        *["{1..3}", "{a,b}", "{a..c}", "{0..-4..2}", "{,}", "{{", "}}", ".tar"],
    ]
)


@settings(max_examples=600, deadline=None)
@given(st.lists(PIECES, max_size=10).map("".join))
def test_expansion_matches_braceexpand(pattern: str) -> None:
    """As many shards as ``braceexpand`` (which WebDataset uses) makes, the same, in order."""
    try:
        expected = list(braceexpand.braceexpand(pattern)) if "{" in pattern else [pattern]
    except ValueError:
        with pytest.raises(ShardListError):
            expand_urls(pattern)
        return
    assert count_shards(pattern) == len(expected)  # the count mirrors braceexpand's grammar
    if len(expected) <= MAX_SHARDS:
        assert expand_urls(pattern) == expected
