"""CIDs: CIDv1, DAG-CBOR, SHA2-256, base32 — checked against an independent encoder."""

from __future__ import annotations

import base64
import hashlib

import libipld
import pytest
from atproto_core.cid import CID
from hypothesis import given
from hypothesis import strategies as st

from atdata.cid import generate_cid, verify_cid

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=20,
)


def reference_cid(obj: object) -> str:
    """CIDv1 by hand: multibase 'b' + lowercase unpadded base32 of the binary CID."""
    digest = hashlib.sha256(libipld.encode_dag_cbor(obj)).digest()
    raw = bytes([0x01, 0x71, 0x12, 0x20]) + digest
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


def test_known_layout() -> None:
    cid = generate_cid({"name": "mnist", "data_urls": ["a.tar"]})
    assert cid.startswith("bafyrei")
    assert cid == reference_cid({"name": "mnist", "data_urls": ["a.tar"]})
    decoded = CID.decode(cid)
    assert decoded.version == 1
    assert decoded.codec == 0x71


@given(json_values)
def test_matches_reference_and_verifies(obj: object) -> None:
    cid = generate_cid(obj)
    assert cid == reference_cid(obj)
    assert verify_cid(cid, obj)


def test_key_order_does_not_matter() -> None:
    assert generate_cid({"a": 1, "b": [1, 2]}) == generate_cid({"b": [1, 2], "a": 1})


def test_content_changes_the_cid() -> None:
    cid = generate_cid({"a": 1})
    assert not verify_cid(cid, {"a": 2})
    assert generate_cid({"a": 1.0}) != cid  # floats and ints are distinct in DAG-CBOR


@pytest.mark.parametrize("bad", [{1: "x"}, float("nan"), (1, 2), object()])
def test_unencodable_values_raise_value_error(bad: object) -> None:
    with pytest.raises(ValueError, match="DAG-CBOR"):
        generate_cid(bad)
