"""Content identifiers (CIDs) for records: CIDv1, DAG-CBOR codec, SHA2-256, base32.

The same CIDs an AT Protocol repository computes for the same record value:
the object is encoded as canonical DAG-CBOR (map keys sorted, so key order in
the input does not matter), hashed with SHA-256 and rendered as a base32
multibase string starting ``bafyrei``.

>>> generate_cid({"b": 1, "a": "x"}) == generate_cid({"a": "x", "b": 1})
True
>>> verify_cid(generate_cid([1, 2]), [1, 2])
True
"""

from __future__ import annotations

import hashlib
from typing import Any

import libipld

__all__ = ["generate_cid", "verify_cid"]

# CIDv1 (0x01), dag-cbor codec (0x71), sha2-256 multihash (0x12) of 32 bytes (0x20)
_PREFIX = b"\x01\x71\x12\x20"


def generate_cid(obj: Any) -> str:
    """Return the CID of ``obj`` (str-keyed dicts, lists, str, int, float, bool, bytes, None).

    Raises :class:`ValueError` when ``obj`` cannot be encoded as DAG-CBOR
    (tuples, non-string map keys, NaN or infinite floats, other types).
    """
    try:
        encoded = libipld.encode_dag_cbor(obj)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(
            f"cannot compute a CID: the value is not DAG-CBOR encodable ({exc})"
        ) from None
    return libipld.encode_cid(_PREFIX + hashlib.sha256(encoded).digest())


def verify_cid(cid: str, obj: Any) -> bool:
    """True when ``cid`` is the CID of ``obj``."""
    return generate_cid(obj) == cid
