"""Verified reading of repository data: CAR blocks, signed commits and MST lookups.

The ``atproto`` SDK's CAR reader decodes blocks without checking them against
their CIDs, so blocks are read here with their raw bytes kept: every block used
is hashed and compared with its CID, then decoded as DAG-CBOR (``libipld``, the
SDK's codec). A commit's signature is checked against the repository's signing
key, and every record is proven by a path through the repository's Merkle
search tree (MST) from the signed root.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import libipld

from atdata.errors import AtdataError

__all__ = [
    "Blocks",
    "Commit",
    "RepoVerificationError",
    "cid_str",
    "mst_get",
    "mst_walk",
    "read_car",
    "verify_commit",
]

MAX_CAR_BYTES = 64 * 1024 * 1024
"""Largest CAR accepted from ``getRepo`` (the firehose's own limit is far lower)."""

_MAX_BLOCK = 2 * 1024 * 1024
_MAX_MST_DEPTH = 64
_DAG_CBOR = 0x71
_RAW = 0x55
_SHA256 = 0x12


class RepoVerificationError(AtdataError, ValueError):
    """Repository data that does not decode, does not hash to its CID, or is not signed by its owner."""


def _varint(data: memoryview, pos: int, where: str) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise RepoVerificationError(f"{where}: truncated varint at byte offset {pos}")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _read_cid(data: memoryview, pos: int, where: str) -> tuple[bytes, int]:
    start = pos
    version, pos = _varint(data, pos, where)
    if version != 1:
        raise RepoVerificationError(f"{where}: CID version {version} at byte offset {start}")
    _codec, pos = _varint(data, pos, where)
    _code, pos = _varint(data, pos, where)
    size, pos = _varint(data, pos, where)
    if size > 64 or pos + size > len(data):
        raise RepoVerificationError(f"{where}: bad CID digest at byte offset {start}")
    return bytes(data[start : pos + size]), pos + size


def cid_str(cid: bytes) -> str:
    """The base32 text form of a binary CID."""
    return libipld.encode_cid(cid)


def _check_hash(cid: bytes, raw: bytes, where: str) -> None:
    # CIDv1 with single-byte varints: version 0x01, codec, sha2-256 (0x12), length 32.
    if len(cid) != 36 or cid[2] != _SHA256 or cid[3] != 32 or cid[1] not in (_DAG_CBOR, _RAW):
        raise RepoVerificationError(f"{where}: block {cid_str(cid)} is not a sha2-256 CIDv1")
    if hashlib.sha256(raw).digest() != cid[4:]:
        raise RepoVerificationError(f"{where}: block {cid_str(cid)} does not hash to its CID")


class Blocks:
    """The blocks of one CAR file: raw bytes by binary CID, hash-checked and decoded on use."""

    def __init__(self, roots: list[bytes], raw: dict[bytes, bytes], where: str) -> None:
        self.roots = roots
        self._raw = raw
        self._decoded: dict[bytes, Any] = {}
        self.nodes: dict[bytes, Any] = {}
        self.where = where

    def __contains__(self, cid: bytes) -> bool:
        return cid in self._raw

    def get(self, cid: bytes) -> Any:
        """The decoded block ``cid``; raises if it is missing or does not hash to its CID."""
        if cid in self._decoded:
            return self._decoded[cid]
        raw = self._raw.get(cid)
        if raw is None:
            raise RepoVerificationError(f"{self.where}: block {cid_str(cid)} is missing")
        _check_hash(cid, raw, self.where)
        try:
            value = libipld.decode_dag_cbor(raw)
        except ValueError as exc:
            raise RepoVerificationError(
                f"{self.where}: block {cid_str(cid)} is not DAG-CBOR ({exc})"
            ) from None
        self._decoded[cid] = value
        return value


def read_car(data: bytes, where: str) -> Blocks:
    """Split a CAR v1 file into its blocks (nothing is trusted until :meth:`Blocks.get`)."""
    if len(data) > MAX_CAR_BYTES:
        raise RepoVerificationError(f"{where}: CAR of {len(data):,} bytes is too large")
    view = memoryview(data)
    length, pos = _varint(view, 0, where)
    if pos + length > len(view):
        raise RepoVerificationError(f"{where}: truncated CAR header")
    try:
        header = libipld.decode_dag_cbor(bytes(view[pos : pos + length]))
    except ValueError as exc:
        raise RepoVerificationError(f"{where}: bad CAR header ({exc})") from None
    roots = header.get("roots") if isinstance(header, dict) else None
    if header.get("version") != 1 or not isinstance(roots, list):
        raise RepoVerificationError(f"{where}: not a CAR v1 file")
    pos += length
    raw: dict[bytes, bytes] = {}
    while pos < len(view):
        start = pos
        size, pos = _varint(view, pos, where)
        if size > _MAX_BLOCK or pos + size > len(view):
            raise RepoVerificationError(f"{where}: bad block length at byte offset {start}")
        cid, body = _read_cid(view, pos, where)
        if body > pos + size:
            raise RepoVerificationError(f"{where}: bad block at byte offset {start}")
        raw[cid] = bytes(view[body : pos + size])
        pos += size
    return Blocks([bytes(r) for r in roots if isinstance(r, bytes)], raw, where)


@dataclass(frozen=True)
class Commit:
    """A signed repository commit: ``did``, ``rev`` and the MST root ``data``."""

    did: str
    rev: str
    data: bytes
    cid: bytes


def verify_commit(blocks: Blocks, commit_cid: bytes, did: str, did_key: str) -> Commit:
    """Check the commit block's signature with ``did_key`` (a ``did:key``) and its subject."""
    from atproto_crypto.verify import verify_signature

    commit = blocks.get(commit_cid)
    if not isinstance(commit, dict) or not isinstance(commit.get("sig"), bytes):
        raise RepoVerificationError(f"{blocks.where}: commit {cid_str(commit_cid)} is malformed")
    if commit.get("did") != did:
        raise RepoVerificationError(
            f"{blocks.where}: commit names repository {commit.get('did')!r}, not {did}"
        )
    if commit.get("version") not in (2, 3) or not isinstance(commit.get("data"), bytes):
        raise RepoVerificationError(f"{blocks.where}: commit {cid_str(commit_cid)} is malformed")
    unsigned = {k: v for k, v in commit.items() if k != "sig"}
    try:
        ok = verify_signature(did_key, libipld.encode_dag_cbor(unsigned), commit["sig"])
    except Exception as exc:  # the SDK raises several kinds for bad keys and signatures
        raise RepoVerificationError(
            f"{blocks.where}: cannot check the signature of {did} ({type(exc).__name__})"
        ) from None
    if not ok:
        raise RepoVerificationError(
            f"{blocks.where}: commit {cid_str(commit_cid)} is not signed by {did}'s signing key"
        )
    return Commit(did, str(commit.get("rev", "")), commit["data"], commit_cid)


def _entries(
    blocks: Blocks, node_cid: bytes
) -> tuple[bytes | None, list[tuple[bytes, bytes, Any]]]:
    """(left subtree, [(key, value cid, right subtree)]) of one MST node."""
    if node_cid in blocks.nodes:
        return blocks.nodes[node_cid]
    node = blocks.get(node_cid)
    if not isinstance(node, dict) or not isinstance(node.get("e"), list):
        raise RepoVerificationError(f"{blocks.where}: MST node {cid_str(node_cid)} is malformed")
    out = []
    key = b""
    for entry in node["e"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("k"), bytes):
            raise RepoVerificationError(
                f"{blocks.where}: MST node {cid_str(node_cid)} is malformed"
            )
        prefix = entry.get("p", 0)
        if not isinstance(prefix, int) or not 0 <= prefix <= len(key):
            raise RepoVerificationError(
                f"{blocks.where}: MST node {cid_str(node_cid)} is malformed"
            )
        key = key[:prefix] + entry["k"]
        out.append((key, entry.get("v"), entry.get("t")))
    blocks.nodes[node_cid] = (node.get("l"), out)
    return node.get("l"), out


def mst_get(blocks: Blocks, root: bytes, key: str) -> bytes | None:
    """The record CID stored under ``key`` (``collection/rkey``), or None when provably absent."""
    wanted = key.encode()
    node: bytes | None = root
    for _ in range(_MAX_MST_DEPTH):
        if node is None:
            return None
        left, entries = _entries(blocks, node)
        nxt = left
        for k, value, right in entries:
            if k == wanted:
                return value
            if k > wanted:
                break
            nxt = right
        node = nxt
    raise RepoVerificationError(f"{blocks.where}: MST deeper than {_MAX_MST_DEPTH} levels")


def mst_walk(
    blocks: Blocks, root: bytes, prefix: str = "", _depth: int = 0
) -> Iterator[tuple[str, bytes]]:
    """Every ``(key, record cid)`` of the tree in key order whose key starts with ``prefix``.

    Subtrees whose key range cannot hold such a key are not visited (nor fetched).
    """
    if _depth > _MAX_MST_DEPTH:
        raise RepoVerificationError(f"{blocks.where}: MST deeper than {_MAX_MST_DEPTH} levels")
    want = prefix.encode()
    left, entries = _entries(blocks, root)
    # Subtree i holds the keys strictly between bound i and bound i + 1.
    bounds: list[bytes | None] = [None, *(k for k, _, _ in entries), None]
    subtrees = [left, *(t for _, _, t in entries)]
    for i, subtree in enumerate(subtrees):
        if i > 0:
            key, value, _ = entries[i - 1]
            if key.startswith(want):
                yield key.decode("utf-8", "replace"), value
        lo, hi = bounds[i], bounds[i + 1]
        below = hi is not None and hi <= want
        above = lo is not None and lo > want and not lo.startswith(want)
        if subtree is not None and not below and not above:
            yield from mst_walk(blocks, subtree, prefix, _depth + 1)
