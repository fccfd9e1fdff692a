"""AT-URIs, atdata's blob shard ids, and the AT Protocol identifier syntaxes.

An AT-URI names one record: ``at://{authority}/{collection}/{rkey}``, where the
authority is a DID or a handle, the collection an NSID and the rkey a record key.

    >>> uri = AtUri.parse("at://alice.bsky.social/ac.foundation.dataset.record/my-dataset")
    >>> uri.authority, uri.collection, uri.rkey
    ('alice.bsky.social', 'ac.foundation.dataset.record', 'my-dataset')
    >>> str(uri)
    'at://alice.bsky.social/ac.foundation.dataset.record/my-dataset'

Shards stored as PDS blobs are identified by ``at://{did}/blob/{cid}`` (see
:class:`BlobUrl`). That string is an atdata shard id, **not** an AT-URI: ``blob``
is not an NSID and a blob is not a record, so :meth:`AtUri.parse` rejects it.

NSIDs are checked by the ``atproto`` SDK (``atproto_core.nsid``). Kept here, and why:

- :class:`AtUri` parsing: the SDK's ``AtUri.from_str`` accepts a missing ``at://``,
  a query and a fragment, and drops extra path segments
  (``at://did:plc:a/x.y.z/a/b`` reads as record ``a``); a record URI must be exact.
- the DID, handle, record-key and TID syntax checks (the specs' regular expressions):
  the SDK's live in ``atproto_client.models.string_formats``, whose import loads every
  generated model of the SDK (over a second, more than all of atdata), and these checks
  run for every shard id, including in worker processes that never open a client.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field, replace

import libipld

__all__ = [
    "AtUri",
    "BlobUrl",
    "is_blob_url",
    "is_valid_did",
    "is_valid_handle",
    "is_valid_nsid",
    "is_valid_rkey",
    "is_valid_tid",
    "make_tid",
]

# Syntax rules from the AT Protocol specs (did, handle, record-key, tid).
_DID_RE = re.compile(r"^did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]$")
_HANDLE_RE = re.compile(
    r"^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$"
)
_RKEY_RE = re.compile(r"^[A-Za-z0-9._:~-]{1,512}$")
_TID_RE = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
_MAX_URI_LENGTH = 8 * 1024


def is_valid_did(value: str) -> bool:
    """True if ``value`` has DID syntax (``did:<method>:<id>``, at most 2 KiB)."""
    return len(value) <= 2048 and _DID_RE.match(value) is not None


def is_valid_handle(value: str) -> bool:
    """True if ``value`` has handle syntax (a domain name such as ``alice.bsky.social``)."""
    return len(value) <= 253 and _HANDLE_RE.match(value) is not None


def is_valid_nsid(value: str) -> bool:
    """True if ``value`` is an NSID such as ``ac.foundation.dataset.record``.

    >>> is_valid_nsid("ac.foundation.dataset.record"), is_valid_nsid("ac.foundation")
    (True, False)
    """
    from atproto_core.nsid import validate_nsid

    return validate_nsid(value, soft_fail=True)


def is_valid_rkey(value: str) -> bool:
    """True if ``value`` is a record key: 1-512 of ``A-Za-z0-9._:~-``, not ``.`` or ``..``."""
    return value not in (".", "..") and _RKEY_RE.match(value) is not None


def is_valid_tid(value: str) -> bool:
    """True if ``value`` is a TID (13 sortable base32 characters)."""
    return _TID_RE.match(value) is not None


_tid_lock = threading.Lock()
_tid_last = 0
_tid_clock = int.from_bytes(os.urandom(2), "big") & 0x3FF


def make_tid() -> str:
    """A new TID record key: microseconds since the epoch plus a random clock id.

    TIDs from one process are strictly increasing.

    >>> len(make_tid()), is_valid_tid(make_tid())
    (13, True)
    """
    global _tid_last
    with _tid_lock:
        micros = time.time_ns() // 1000
        if micros <= _tid_last:
            micros = _tid_last + 1
        _tid_last = micros
    value = (micros << 10) | _tid_clock
    chars = []
    for _ in range(13):
        chars.append(_TID_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def _check_authority(authority: str, text: str) -> None:
    if authority.startswith("did:"):
        if not is_valid_did(authority):
            raise ValueError(f"invalid AT-URI {text!r}: {authority!r} is not a valid DID")
    elif not is_valid_handle(authority):
        raise ValueError(f"invalid AT-URI {text!r}: {authority!r} is neither a DID nor a handle")


@dataclass(frozen=True)
class AtUri:
    """The address of one record: ``at://{authority}/{collection}/{rkey}``.

    ``cid``, when known (URIs returned by record writes and listings carry it), is the
    CID of the record version that was written or read. It does not take part in
    equality or hashing: two URIs are equal when they name the same record.

    >>> AtUri.parse("at://did:plc:abc123/ac.foundation.dataset.sampleSchema/xyz789").rkey
    'xyz789'
    >>> AtUri("did:plc:abc123", "ac.foundation.dataset.lens", "3kabc") == AtUri.parse(
    ...     "at://did:plc:abc123/ac.foundation.dataset.lens/3kabc")
    True
    """

    authority: str
    collection: str
    rkey: str
    cid: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        text = f"at://{self.authority}/{self.collection}/{self.rkey}"
        _check_authority(self.authority, text)
        if not is_valid_nsid(self.collection):
            raise ValueError(
                f"invalid AT-URI {text!r}: collection {self.collection!r} is not an NSID"
            )
        if not is_valid_rkey(self.rkey):
            raise ValueError(f"invalid AT-URI {text!r}: {self.rkey!r} is not a valid record key")

    @classmethod
    def parse(cls, text: str | AtUri) -> AtUri:
        """Parse ``at://authority/collection/rkey``; ``ValueError`` naming the bad part.

        >>> AtUri.parse("at://alice.test/ac.foundation.dataset.record/3kzq2").collection
        'ac.foundation.dataset.record'
        """
        if isinstance(text, AtUri):
            return text
        if not isinstance(text, str):
            raise TypeError(f"an AT-URI must be a string, got {type(text).__name__}")
        if len(text) > _MAX_URI_LENGTH:
            raise ValueError(f"invalid AT-URI: longer than {_MAX_URI_LENGTH} characters")
        if not text.startswith("at://"):
            raise ValueError(f"invalid AT-URI {text!r}: must start with 'at://'")
        if "?" in text or "#" in text:
            raise ValueError(f"invalid AT-URI {text!r}: query and fragment are not supported")
        parts = text[len("at://") :].split("/")
        if len(parts) != 3:
            hint = ""
            if len(parts) > 1 and parts[1] == "blob":
                hint = " (at://{did}/blob/{cid} is a blob shard id: use BlobUrl.parse)"
            raise ValueError(
                f"invalid AT-URI {text!r}: expected at://authority/collection/rkey{hint}"
            )
        if parts[1] == "blob":
            raise ValueError(
                f"invalid AT-URI {text!r}: this is a blob shard id, not a record URI; "
                "use BlobUrl.parse"
            )
        return cls(parts[0], parts[1], parts[2])

    @property
    def did(self) -> str | None:
        """The authority if it is a DID, else None (a handle must be resolved first)."""
        return self.authority if self.authority.startswith("did:") else None

    def with_cid(self, cid: str | None) -> AtUri:
        """A copy of this URI that carries ``cid``."""
        return replace(self, cid=cid)

    def strong_ref(self) -> dict[str, str]:
        """``{"uri", "cid"}`` (``com.atproto.repo.strongRef``): pins this exact record version."""
        if self.cid is None:
            raise ValueError(f"{self} has no CID; use a URI returned by a write or a read")
        return {"uri": str(self), "cid": self.cid}

    def __str__(self) -> str:
        return f"at://{self.authority}/{self.collection}/{self.rkey}"


@dataclass(frozen=True)
class BlobUrl:
    """atdata's shard id for a blob in a PDS: ``at://{did}/blob/{cid}``.

    This is **not** an AT-URI (``blob`` is not a collection NSID and blobs are not
    records); it only names ``cid`` in the repository of ``did`` so that shard lists can
    mix blobs with other URLs. It parses strictly: the authority must be a DID and the
    CID must decode.

    >>> url = BlobUrl.parse("at://did:plc:abc/blob/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
    >>> url.did
    'did:plc:abc'
    >>> str(url) == "at://did:plc:abc/blob/" + url.cid
    True
    """

    did: str
    cid: str

    def __post_init__(self) -> None:
        if not is_valid_did(self.did):
            raise ValueError(f"invalid blob URL: {self.did!r} is not a DID")
        try:
            libipld.decode_cid(self.cid)
        except Exception:
            raise ValueError(f"invalid blob URL: {self.cid!r} is not a CID") from None

    @classmethod
    def parse(cls, text: str | BlobUrl) -> BlobUrl:
        """Parse ``at://{did}/blob/{cid}``; ``ValueError`` otherwise."""
        if isinstance(text, BlobUrl):
            return text
        if not isinstance(text, str) or not text.startswith("at://"):
            raise ValueError(f"invalid blob URL {text!r}: expected at://{{did}}/blob/{{cid}}")
        parts = text[len("at://") :].split("/")
        if len(parts) != 3 or parts[1] != "blob":
            raise ValueError(f"invalid blob URL {text!r}: expected at://{{did}}/blob/{{cid}}")
        return cls(parts[0], parts[2])

    def __str__(self) -> str:
        return f"at://{self.did}/blob/{self.cid}"


def is_blob_url(text: str) -> bool:
    """True if ``text`` is a well-formed ``at://{did}/blob/{cid}`` shard id."""
    try:
        BlobUrl.parse(text)
    except (ValueError, TypeError):
        return False
    return True
