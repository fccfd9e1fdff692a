"""Verified repository reading: CAR blocks checked against their CIDs, MST lookups and walks."""

from __future__ import annotations

import hashlib

import libipld
import pytest

from atdata.appview._repo import RepoVerificationError, mst_get, mst_walk, read_car


def cid(data: bytes) -> bytes:
    return b"\x01\x71\x12\x20" + hashlib.sha256(data).digest()


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def car(root: bytes, blocks: list[tuple[bytes, bytes]]) -> bytes:
    header = libipld.encode_dag_cbor({"roots": [root], "version": 1})
    return (
        varint(len(header)) + header + b"".join(varint(len(c) + len(d)) + c + d for c, d in blocks)
    )


def node(entries: list[tuple[str, bytes, bytes | None]], left: bytes | None = None) -> bytes:
    """An MST node; keys compressed against the previous one, as the spec writes them."""
    out, prev = [], b""
    for key, value, right in entries:
        k = key.encode()
        p = 0
        while p < min(len(k), len(prev)) and k[p] == prev[p]:
            p += 1
        out.append({"k": k[p:], "p": p, "t": right, "v": value})
        prev = k
    return libipld.encode_dag_cbor({"e": out, "l": left})


def test_a_two_level_tree_is_searched_and_walked_by_prefix() -> None:
    values = {name: cid(name.encode()) for name in ("a", "b", "c", "d", "e")}
    low = node(
        [("aa.x/1", values["a"], None), ("ac.foundation.dataset.record/1", values["b"], None)]
    )
    high = node(
        [("ac.foundation.dataset.record/3", values["d"], None), ("zz/1", values["e"], None)]
    )
    root = node([("ac.foundation.dataset.record/2", values["c"], cid(high))], left=cid(low))
    blocks = read_car(car(cid(root), [(cid(b), b) for b in (root, low, high)]), "test")
    assert mst_get(blocks, cid(root), "ac.foundation.dataset.record/3") == values["d"]
    assert mst_get(blocks, cid(root), "aa.x/1") == values["a"]
    assert mst_get(blocks, cid(root), "ac.foundation.dataset.record/9") is None
    walked = list(mst_walk(blocks, cid(root), "ac.foundation."))
    assert walked == [
        ("ac.foundation.dataset.record/1", values["b"]),
        ("ac.foundation.dataset.record/2", values["c"]),
        ("ac.foundation.dataset.record/3", values["d"]),
    ]
    assert [k for k, _ in mst_walk(blocks, cid(root))] == [
        "aa.x/1",
        "ac.foundation.dataset.record/1",
        "ac.foundation.dataset.record/2",
        "ac.foundation.dataset.record/3",
        "zz/1",
    ]


def test_a_walk_never_fetches_subtrees_outside_the_prefix() -> None:
    other = node([("zz/1", cid(b"z"), None)])
    before = node([("aa/1", cid(b"a"), None)])
    root = node(
        [
            ("ab/0", cid(b"b"), None),
            ("ac.foundation.dataset.record/1", cid(b"r"), None),
            ("zz/0", cid(b"y"), cid(other)),
        ],
        left=cid(before),
    )
    # Only the root is present: the subtrees before "ab/0" and after "zz/0" cannot hold the prefix.
    blocks = read_car(car(cid(root), [(cid(root), root)]), "test")
    assert [k for k, _ in mst_walk(blocks, cid(root), "ac.foundation.")] == [
        "ac.foundation.dataset.record/1"
    ]
    with pytest.raises(RepoVerificationError, match="missing"):
        list(mst_walk(blocks, cid(root)))


def test_tampered_truncated_and_garbage_cars_are_refused() -> None:
    block = libipld.encode_dag_cbor({"e": [], "l": None})
    good = car(cid(block), [(cid(block), block)])
    assert read_car(good, "ok").get(cid(block)) == {"e": [], "l": None}
    tampered = good[:-1] + bytes([good[-1] ^ 1])
    with pytest.raises(RepoVerificationError, match="does not hash to its CID"):
        read_car(tampered, "tampered").get(cid(block))
    for bad in (good[: len(good) - 5], b"\xff\xff\xff", b"", b"\x05abcde"):
        with pytest.raises(RepoVerificationError):
            read_car(bad, "bad").get(cid(block))
