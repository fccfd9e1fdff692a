"""AT-URI parsing, blob shard ids and identifier syntax (no server needed)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atdata.atmosphere import AtUri, BlobUrl, is_blob_url, make_tid
from atdata.atmosphere.uri import (
    is_valid_did,
    is_valid_handle,
    is_valid_nsid,
    is_valid_rkey,
    is_valid_tid,
)

BLOB_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
RECORD_CID = "bafyreidsbnikhgk64lt3l65ypkmw37nujsatqsvfycolf52povmgwtz6jq"


@pytest.mark.parametrize(
    ("text", "authority", "collection", "rkey"),
    [
        (
            "at://did:plc:abc123/ac.foundation.dataset.sampleSchema/xyz789",
            "did:plc:abc123",
            "ac.foundation.dataset.sampleSchema",
            "xyz789",
        ),
        (
            "at://alice.bsky.social/ac.foundation.dataset.record/my-dataset",
            "alice.bsky.social",
            "ac.foundation.dataset.record",
            "my-dataset",
        ),
        (
            "at://did:web:example.com/app.bsky.feed.post/3jzfcijpj2z2a",
            "did:web:example.com",
            "app.bsky.feed.post",
            "3jzfcijpj2z2a",
        ),
        ("at://t1.test/com.example.thing/self", "t1.test", "com.example.thing", "self"),
        (
            "at://did:plc:x/com.example.thing/a.b_c:d~e-f",
            "did:plc:x",
            "com.example.thing",
            "a.b_c:d~e-f",
        ),
    ],
)
def test_parse_and_round_trip(text: str, authority: str, collection: str, rkey: str) -> None:
    uri = AtUri.parse(text)
    assert (uri.authority, uri.collection, uri.rkey) == (authority, collection, rkey)
    assert str(uri) == text
    assert AtUri.parse(uri) is uri
    assert uri.did == (authority if authority.startswith("did:") else None)


def test_equality_and_hash_ignore_cid() -> None:
    a = AtUri.parse("at://did:plc:abc/ac.foundation.dataset.record/3kabc")
    b = a.with_cid(RECORD_CID)
    assert a == b and hash(a) == hash(b)
    assert {a, b} == {a}
    assert b.cid == RECORD_CID and a.cid is None
    assert b.strong_ref() == {"uri": str(a), "cid": RECORD_CID}
    with pytest.raises(ValueError, match="no CID"):
        a.strong_ref()
    assert a != AtUri.parse("at://did:plc:abc/ac.foundation.dataset.record/3kabd")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("did:plc:abc/ac.foundation.dataset.record/x", "must start with 'at://'"),
        ("https://did:plc:abc/ac.foundation.dataset.record/x", "must start with 'at://'"),
        (
            "at://did:plc:abc/ac.foundation.dataset.record",
            "expected at://authority/collection/rkey",
        ),
        (
            "at://did:plc:abc/ac.foundation.dataset.record/a/b",
            "expected at://authority/collection/rkey",
        ),
        ("at://did:plc:abc/notansid/x", "is not an NSID"),
        ("at://did:plc:abc/ac.foundation.dataset.record/a b", "not a valid record key"),
        ("at://did:plc:abc/ac.foundation.dataset.record/..", "not a valid record key"),
        ("at://did:plc:abc/ac.foundation.dataset.record/.", "not a valid record key"),
        ("at://did:plc:abc/ac.foundation.dataset.record/a@1.0", "not a valid record key"),
        ("at://did:PLC:abc/ac.foundation.dataset.record/x", "not a valid DID"),
        ("at://not_a_handle/ac.foundation.dataset.record/x", "neither a DID nor a handle"),
        ("at://did:plc:abc/ac.foundation.dataset.record/x?y=1", "query and fragment"),
        ("at://did:plc:abc/ac.foundation.dataset.record/x#frag", "query and fragment"),
        (f"at://did:plc:abc/blob/{BLOB_CID}", "blob shard id"),
    ],
)
def test_parse_rejects_with_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AtUri.parse(text)


def test_parse_rejects_non_strings_and_long_uris() -> None:
    with pytest.raises(TypeError):
        AtUri.parse(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="longer than"):
        AtUri.parse("at://did:plc:abc/ac.foundation.dataset.record/" + "a" * 9000)


def test_blob_url_is_separate_from_at_uri() -> None:
    text = f"at://did:plc:abc/blob/{BLOB_CID}"
    url = BlobUrl.parse(text)
    assert (url.did, url.cid) == ("did:plc:abc", BLOB_CID)
    assert str(url) == text
    assert BlobUrl.parse(url) is url
    assert is_blob_url(text)
    assert not is_blob_url("at://did:plc:abc/ac.foundation.dataset.record/x")
    assert not is_blob_url(f"at://alice.test/blob/{BLOB_CID}")  # blobs are per DID, not handle
    assert not is_blob_url("at://did:plc:abc/blob/not-a-cid")
    with pytest.raises(ValueError, match="not a CID"):
        BlobUrl("did:plc:abc", "nope")
    with pytest.raises(ValueError, match="expected"):
        BlobUrl.parse("https://example.com/blob")


def test_make_tid_is_valid_and_increasing() -> None:
    tids = [make_tid() for _ in range(2000)]
    assert all(is_valid_tid(t) and is_valid_rkey(t) for t in tids)
    assert tids == sorted(tids) and len(set(tids)) == len(tids)


def test_identifier_syntax() -> None:
    assert is_valid_nsid("ac.foundation.dataset.sampleSchema")
    assert not is_valid_nsid("ac.foundation")  # needs three segments
    assert not is_valid_nsid("ac.foundation.9dataset")  # name starts with a digit
    assert is_valid_did("did:plc:ewvi7nxzyoun6zhxrhs64oiz")
    assert is_valid_did("did:web:localhost%3A8080")
    assert not is_valid_did("did:plc:")
    assert is_valid_handle("alice.bsky.social") and is_valid_handle("t0.test")
    assert not is_valid_handle("alice") and not is_valid_handle("-a.test")
    assert not is_valid_tid("3kabc") and is_valid_tid("3jzfcijpj2z2a")


@given(
    st.from_regex(r"[A-Za-z0-9._:~-]{1,80}", fullmatch=True).filter(lambda s: s not in (".", ".."))
)
def test_any_valid_rkey_round_trips(rkey: str) -> None:
    uri = AtUri("did:plc:abc", "com.example.thing", rkey)
    assert AtUri.parse(str(uri)) == uri
