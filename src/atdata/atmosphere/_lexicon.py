"""Check records against the AT Protocol data model and atdata's lexicons before writing.

The lexicon documents ship in ``atdata/atmosphere/lexicons/``. The validator covers
the subset of the Lexicon language those documents use (record, object, ref, union,
array, string with formats, integer, boolean, bytes, cid-link, blob, unknown); a
document using anything else is rejected when it is loaded, so nothing is silently
left unchecked.

String formats: ``datetime`` and ``language`` are checked by the ``atproto`` SDK's
validators; DID, handle, NSID, record key and TID by :mod:`atdata.atmosphere.uri`
(which says why). Kept here: ``at-uri`` (the SDK's parser accepts a missing scheme,
a query and extra path segments; records need :class:`~atdata.atmosphere.AtUri`'s
strict form, or a repository/collection URI), ``cid`` (decoded, where the SDK only
matches characters) and ``uri`` (the SDK lets tabs and newlines through).

Every error is a :class:`LexiconValidationError` naming the NSID and the path of the
offending value:

    >>> validate_record("ac.foundation.dataset.lens", {"$type": "ac.foundation.dataset.lens",
    ...     "name": "x", "sourceSchema": "at://did:plc:a/ac.foundation.dataset.sampleSchema/1",
    ...     "targetSchema": "at://did:plc:a/ac.foundation.dataset.sampleSchema/2",
    ...     "createdAt": "2026-01-01T00:00:00Z", "metadata": {"score": 0.5}})
    Traceback (most recent call last):
    ...
    atdata.atmosphere._lexicon.LexiconValidationError: ac.foundation.dataset.lens: metadata.score: floats are not allowed in ATProto records (use an integer or a string)
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

import libipld

from atdata.atmosphere.uri import (
    AtUri,
    is_valid_did,
    is_valid_handle,
    is_valid_nsid,
    is_valid_rkey,
    is_valid_tid,
)
from atdata.errors import AtdataError

__all__ = [
    "MAX_RECORD_BYTES",
    "LexiconValidationError",
    "check_data_model",
    "check_rkey",
    "get_lexicon",
    "lexicon_ids",
    "to_record_json",
    "validate_record",
]

MAX_RECORD_BYTES = 1_000_000 - 4_096
"""Largest record accepted, as compact JSON. The reference PDS caps a write request body
at 1,000,000 bytes; 4 KiB is left for the request envelope (repo, collection, rkey)."""

_MAX_DEPTH = 32
_MAX_CONTAINER = 131_072
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1

_URI_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:[^\s]+$")

# The lexicon subset understood here: type -> the keywords allowed on it.
_COMMON = {"type", "description"}
_KEYWORDS: dict[str, set[str]] = {
    "record": _COMMON | {"key", "record"},
    "object": _COMMON | {"required", "nullable", "properties"},
    "ref": _COMMON | {"ref"},
    "union": _COMMON | {"refs", "closed"},
    "array": _COMMON | {"items", "minLength", "maxLength"},
    "string": _COMMON
    | {"format", "minLength", "maxLength", "knownValues", "enum", "const", "default"},
    "integer": _COMMON | {"minimum", "maximum", "enum", "const", "default"},
    "boolean": _COMMON | {"const", "default"},
    "bytes": _COMMON | {"minLength", "maxLength"},
    "cid-link": _COMMON,
    "blob": _COMMON | {"accept", "maxSize"},
    "unknown": _COMMON,
    "token": _COMMON,
    "null": _COMMON,
}
_FORMATS = {
    "at-identifier",
    "at-uri",
    "cid",
    "datetime",
    "did",
    "handle",
    "language",
    "nsid",
    "record-key",
    "tid",
    "uri",
}


class LexiconValidationError(AtdataError, ValueError):
    """A record breaks the AT Protocol data model or its lexicon.

    ``nsid`` is the collection (or lexicon) and ``path`` the location of the bad value
    inside the record, e.g. ``fields[2].fieldType.primitive``.
    """

    def __init__(self, nsid: str, path: str, message: str) -> None:
        where = f"{nsid}: {path}" if path else nsid
        super().__init__(f"{where}: {message}")
        self.nsid = nsid
        self.path = path


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


# --------------------------------------------------------------------------- documents


def _check_schema_node(nsid: str, where: str, node: Any) -> None:
    """Reject lexicon constructs this validator does not implement."""
    if not isinstance(node, Mapping) or not isinstance(node.get("type"), str):
        raise LexiconValidationError(nsid, where, "lexicon definition without a 'type'")
    kind = node["type"]
    allowed = _KEYWORDS.get(kind)
    if allowed is None:
        raise LexiconValidationError(
            nsid, where, f"lexicon type {kind!r} is not supported by atdata's validator"
        )
    extra = set(node) - allowed
    if extra:
        raise LexiconValidationError(
            nsid, where, f"unsupported keywords {sorted(extra)} on {kind!r}"
        )
    if kind == "string" and "format" in node and node["format"] not in _FORMATS:
        raise LexiconValidationError(nsid, where, f"unknown string format {node['format']!r}")
    if kind == "record":
        _check_schema_node(nsid, _join(where, "record"), node["record"])
    elif kind == "object":
        for name, prop in node.get("properties", {}).items():
            _check_schema_node(nsid, _join(where, name), prop)
        missing = set(node.get("required", [])) - set(node.get("properties", {}))
        if missing:
            raise LexiconValidationError(
                nsid, where, f"required properties not defined: {sorted(missing)}"
            )
    elif kind == "array":
        _check_schema_node(nsid, _join(where, "items"), node["items"])


@cache
def _documents() -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    folder = resources.files("atdata.atmosphere") / "lexicons"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        doc = json.loads(entry.read_text(encoding="utf-8"))
        nsid = doc.get("id", "")
        if doc.get("lexicon") != 1 or not is_valid_nsid(nsid) or entry.name != f"{nsid}.json":
            raise LexiconValidationError(nsid or entry.name, "", "malformed lexicon document")
        for name, definition in doc.get("defs", {}).items():
            _check_schema_node(nsid, f"defs.{name}", definition)
        docs[nsid] = doc
    return docs


@cache
def _defs() -> dict[str, tuple[str, dict[str, Any]]]:
    """Map ``nsid`` / ``nsid#name`` to (nsid, definition)."""
    table: dict[str, tuple[str, dict[str, Any]]] = {}
    for nsid, doc in _documents().items():
        for name, definition in doc.get("defs", {}).items():
            table[nsid if name == "main" else f"{nsid}#{name}"] = (nsid, definition)
    return table


def lexicon_ids() -> list[str]:
    """NSIDs of the lexicon documents shipped with atdata.

    >>> "ac.foundation.dataset.record" in lexicon_ids()
    True
    """
    return sorted(_documents())


def get_lexicon(nsid: str) -> dict[str, Any]:
    """The shipped lexicon document for ``nsid`` (a copy); ``KeyError`` if there is none."""
    return json.loads(json.dumps(_documents()[nsid]))


def _resolve(ref: str, context: str) -> str:
    full = f"{context}{ref}" if ref.startswith("#") else ref
    return full[: -len("#main")] if full.endswith("#main") else full


# --------------------------------------------------------------------------- data model


def to_record_json(value: Any) -> Any:
    """Convert Python values to the JSON form of the data model.

    ``bytes`` become ``{"$bytes": base64}``, tuples become lists and :class:`AtUri`
    values become strings; everything else is returned as is (and checked later).

    >>> to_record_json({"metadata": b"\\x81\\xa1a\\x01", "tags": ("a", "b")})
    {'metadata': {'$bytes': 'gaFhAQ'}, 'tags': ['a', 'b']}
    """
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii").rstrip("=")}
    if isinstance(value, Mapping):
        return {k: to_record_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_record_json(v) for v in value]
    if isinstance(value, AtUri):
        return str(value)
    return value


def _decode_bytes(nsid: str, path: str, value: Mapping[str, Any]) -> bytes:
    text = value.get("$bytes")
    if set(value) != {"$bytes"} or not isinstance(text, str):
        raise LexiconValidationError(
            nsid, path, 'bytes must be {"$bytes": "<base64>"} and nothing else'
        )
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise LexiconValidationError(nsid, path, "$bytes is not valid base64") from None


def _check_cid(nsid: str, path: str, text: Any) -> dict[str, Any]:
    if not isinstance(text, str) or not text or len(text) > 100:
        raise LexiconValidationError(nsid, path, f"not a CID: {text!r}")
    try:
        return dict(libipld.decode_cid(text))
    except Exception:
        raise LexiconValidationError(nsid, path, f"not a CID: {text!r}") from None


def _check_blob(nsid: str, path: str, value: Mapping[str, Any]) -> None:
    ref = value.get("ref")
    if not isinstance(ref, Mapping) or set(ref) != {"$link"}:
        raise LexiconValidationError(
            nsid, _join(path, "ref"), 'blob ref must be {"$link": "<cid>"}'
        )
    cid = _check_cid(nsid, _join(path, "ref.$link"), ref["$link"])
    if (
        cid.get("version") != 1
        or cid.get("codec") != 0x55
        or cid.get("hash", {}).get("code") != 0x12
    ):
        raise LexiconValidationError(
            nsid,
            _join(path, "ref.$link"),
            "a blob CID must be CIDv1, raw codec, sha2-256 (bafkrei...)",
        )
    mime = value.get("mimeType")
    if not isinstance(mime, str) or "/" not in mime:
        raise LexiconValidationError(nsid, _join(path, "mimeType"), f"not a MIME type: {mime!r}")
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise LexiconValidationError(
            nsid, _join(path, "size"), f"blob size must be a non-negative integer, got {size!r}"
        )


def check_data_model(nsid: str, value: Any, path: str = "", _depth: int = 0) -> None:
    """Check that ``value`` (JSON form) fits the AT Protocol data model.

    No floats, 64-bit integers, string keys, ``$``-keys only for ``$type``, ``$bytes``,
    ``$link``, well-formed blobs, at most 32 levels and 131,072 elements per container.
    """
    if _depth > _MAX_DEPTH:
        raise LexiconValidationError(nsid, path, f"nested deeper than {_MAX_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise LexiconValidationError(nsid, path, f"integer {value} does not fit in 64 bits")
        return
    if isinstance(value, float):
        raise LexiconValidationError(
            nsid, path, "floats are not allowed in ATProto records (use an integer or a string)"
        )
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise LexiconValidationError(nsid, path, "string is not valid Unicode") from None
        return
    if isinstance(value, list):
        if len(value) > _MAX_CONTAINER:
            raise LexiconValidationError(nsid, path, f"array longer than {_MAX_CONTAINER} elements")
        for i, item in enumerate(value):
            check_data_model(nsid, item, _join(path, i), _depth + 1)
        return
    if isinstance(value, Mapping):
        if len(value) > _MAX_CONTAINER:
            raise LexiconValidationError(nsid, path, f"object with more than {_MAX_CONTAINER} keys")
        if "$bytes" in value:
            _decode_bytes(nsid, path, value)
            return
        if "$link" in value:
            if set(value) != {"$link"}:
                raise LexiconValidationError(
                    nsid, path, 'a link must be {"$link": "<cid>"} and nothing else'
                )
            _check_cid(nsid, _join(path, "$link"), value["$link"])
            return
        for key, item in value.items():
            if not isinstance(key, str):
                raise LexiconValidationError(
                    nsid, path, f"object keys must be strings, got {key!r}"
                )
            if key.startswith("$") and key != "$type":
                raise LexiconValidationError(
                    nsid, _join(path, key), "keys starting with '$' are reserved"
                )
            check_data_model(nsid, item, _join(path, key), _depth + 1)
        if "$type" in value:
            kind = value["$type"]
            if not isinstance(kind, str) or not kind:
                raise LexiconValidationError(
                    nsid, _join(path, "$type"), "$type must be a non-empty string"
                )
            if kind == "blob":
                _check_blob(nsid, path, value)
        return
    if isinstance(value, bytes | bytearray | memoryview):
        raise LexiconValidationError(nsid, path, "raw bytes: convert with to_record_json() first")
    raise LexiconValidationError(nsid, path, f"{type(value).__name__} is not an ATProto data type")


def check_rkey(nsid: str, rkey: str, key_type: str | None = None) -> None:
    """Check record-key syntax, and the lexicon's key type (``tid``, ``nsid``, ``literal:x``)."""
    if not isinstance(rkey, str) or not is_valid_rkey(rkey):
        raise LexiconValidationError(
            nsid,
            "rkey",
            f"{rkey!r} is not a valid record key (1-512 of A-Za-z0-9 . _ : ~ -, not '.' or '..')",
        )
    if key_type == "tid" and not is_valid_tid(rkey):
        raise LexiconValidationError(
            nsid, "rkey", f"{rkey!r} is not a TID, which this collection requires"
        )
    if key_type == "nsid" and not is_valid_nsid(rkey):
        raise LexiconValidationError(
            nsid, "rkey", f"{rkey!r} is not an NSID, which this collection requires"
        )
    if key_type and key_type.startswith("literal:") and rkey != key_type[len("literal:") :]:
        raise LexiconValidationError(
            nsid, "rkey", f"this collection only allows the record key {key_type[8:]!r}"
        )


# --------------------------------------------------------------------------- lexicon


def _sdk_accepts(validator: str, value: str) -> bool:
    """Whether the ``atproto`` SDK's string-format ``validator`` accepts ``value``."""
    from atproto_client.models import string_formats

    # The SDK runs its validators only in its models' strict mode; ``__wrapped__`` is the
    # check itself (set by functools.wraps), which takes the value and a validation info.
    gated: Any = getattr(string_formats, validator)
    check = gated.__wrapped__
    try:
        check(value, None)
    except ValueError:
        return False
    return True


def _check_format(nsid: str, path: str, fmt: str, value: str) -> None:
    ok = True
    if fmt == "datetime":
        ok = _sdk_accepts("validate_datetime", value)
    elif fmt == "uri":
        ok = bool(_URI_RE.match(value)) and len(value) <= 8192
    elif fmt == "at-uri":
        ok = value.startswith("at://")
        if ok:
            try:
                AtUri.parse(value)
            except ValueError:
                # collection- and repo-level AT-URIs are valid too
                rest = value[len("at://") :].split("/")
                ok = len(rest) <= 2 and (is_valid_did(rest[0]) or is_valid_handle(rest[0]))
                ok = ok and (len(rest) == 1 or is_valid_nsid(rest[1]))
    elif fmt == "did":
        ok = is_valid_did(value)
    elif fmt == "handle":
        ok = is_valid_handle(value)
    elif fmt == "at-identifier":
        ok = is_valid_did(value) or is_valid_handle(value)
    elif fmt == "nsid":
        ok = is_valid_nsid(value)
    elif fmt == "record-key":
        ok = is_valid_rkey(value)
    elif fmt == "tid":
        ok = is_valid_tid(value)
    elif fmt == "language":
        ok = _sdk_accepts("validate_language", value)
    elif fmt == "cid":
        _check_cid(nsid, path, value)
    if not ok:
        raise LexiconValidationError(nsid, path, f"{value[:80]!r} is not a valid {fmt}")


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, Mapping) else type(value).__name__


def _expect(nsid: str, path: str, value: Any, wanted: str) -> None:
    actual = _type_name(value)
    if actual != wanted:
        raise LexiconValidationError(nsid, path, f"expected {wanted}, got {actual}")


def _validate(value: Any, schema: Mapping[str, Any], context: str, nsid: str, path: str) -> None:
    kind = schema["type"]
    if kind == "record":
        _validate(value, schema["record"], context, nsid, path)
    elif kind == "object":
        _expect(nsid, path, value, "object")
        nullable = set(schema.get("nullable", []))
        for name in schema.get("required", []):
            if name not in value or (value[name] is None and name not in nullable):
                raise LexiconValidationError(nsid, _join(path, name), "required field is missing")
        for name, prop in schema.get("properties", {}).items():
            if name not in value:
                continue
            if value[name] is None:
                if name not in nullable:
                    raise LexiconValidationError(
                        nsid, _join(path, name), "null is not allowed here"
                    )
                continue
            _validate(value[name], prop, context, nsid, _join(path, name))
    elif kind == "ref":
        target = _resolve(schema["ref"], context)
        found = _defs().get(target)
        if found is None:
            raise LexiconValidationError(
                nsid, path, f"lexicon reference {target!r} is not available"
            )
        _validate(value, found[1], found[0], nsid, path)
    elif kind == "union":
        _expect(nsid, path, value, "object")
        variant = value.get("$type")
        if not isinstance(variant, str) or not variant:
            raise LexiconValidationError(nsid, _join(path, "$type"), "a union member needs a $type")
        variant = _resolve(variant, context)
        refs = {_resolve(r, context) for r in schema.get("refs", [])}
        if variant in refs:
            found = _defs().get(variant)
            if found is None:
                raise LexiconValidationError(
                    nsid, path, f"lexicon reference {variant!r} is not available"
                )
            _validate(value, found[1], found[0], nsid, path)
        elif schema.get("closed"):
            raise LexiconValidationError(
                nsid, _join(path, "$type"), f"{variant!r} is not one of {sorted(refs)}"
            )
        # an open union accepts other variants unchecked (they passed the data-model checks)
    elif kind == "array":
        _expect(nsid, path, value, "array")
        _check_length(nsid, path, len(value), schema, "elements")
        for i, item in enumerate(value):
            _validate(item, schema["items"], context, nsid, _join(path, i))
    elif kind == "string":
        _expect(nsid, path, value, "string")
        _check_length(nsid, path, len(value.encode("utf-8")), schema, "bytes (UTF-8)")
        if "const" in schema and value != schema["const"]:
            raise LexiconValidationError(nsid, path, f"must be {schema['const']!r}")
        if "enum" in schema and value not in schema["enum"]:
            raise LexiconValidationError(nsid, path, f"{value!r} is not one of {schema['enum']}")
        if "format" in schema:
            _check_format(nsid, path, schema["format"], value)
    elif kind == "integer":
        _expect(nsid, path, value, "integer")
        if "minimum" in schema and value < schema["minimum"]:
            raise LexiconValidationError(
                nsid, path, f"{value} is below the minimum {schema['minimum']}"
            )
        if "maximum" in schema and value > schema["maximum"]:
            raise LexiconValidationError(
                nsid, path, f"{value} is above the maximum {schema['maximum']}"
            )
        if "const" in schema and value != schema["const"]:
            raise LexiconValidationError(nsid, path, f"must be {schema['const']}")
        if "enum" in schema and value not in schema["enum"]:
            raise LexiconValidationError(nsid, path, f"{value} is not one of {schema['enum']}")
    elif kind == "boolean":
        _expect(nsid, path, value, "boolean")
        if "const" in schema and value != schema["const"]:
            raise LexiconValidationError(nsid, path, f"must be {schema['const']}")
    elif kind == "bytes":
        _expect(nsid, path, value, "object")
        data = _decode_bytes(nsid, path, value)
        _check_length(nsid, path, len(data), schema, "bytes")
    elif kind == "cid-link":
        _expect(nsid, path, value, "object")
        if set(value) != {"$link"}:
            raise LexiconValidationError(nsid, path, 'expected a link {"$link": "<cid>"}')
        _check_cid(nsid, _join(path, "$link"), value["$link"])
    elif kind == "blob":
        _expect(nsid, path, value, "object")
        if value.get("$type") != "blob":
            raise LexiconValidationError(
                nsid, _join(path, "$type"), 'a blob must have "$type": "blob"'
            )
        _check_blob(nsid, path, value)
        accept = schema.get("accept")
        if accept and not any(
            fnmatch.fnmatchcase(value["mimeType"], pattern) for pattern in accept
        ):
            raise LexiconValidationError(
                nsid, _join(path, "mimeType"), f"{value['mimeType']!r} is not one of {accept}"
            )
        if "maxSize" in schema and value["size"] > schema["maxSize"]:
            raise LexiconValidationError(
                nsid, _join(path, "size"), f"blob larger than {schema['maxSize']} bytes"
            )
    elif kind == "unknown":
        _expect(nsid, path, value, "object")
    elif kind == "null":
        _expect(nsid, path, value, "null")
    elif kind == "token":
        _expect(nsid, path, value, "string")


def _check_length(nsid: str, path: str, length: int, schema: Mapping[str, Any], unit: str) -> None:
    if "maxLength" in schema and length > schema["maxLength"]:
        raise LexiconValidationError(
            nsid, path, f"{length} {unit}, more than the maximum {schema['maxLength']}"
        )
    if "minLength" in schema and length < schema["minLength"]:
        raise LexiconValidationError(
            nsid, path, f"{length} {unit}, fewer than the minimum {schema['minLength']}"
        )


def record_size(record: Any) -> int:
    """Size of ``record`` as compact UTF-8 JSON, the form the PDS receives."""
    return len(json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def validate_record(
    collection: str, record: Mapping[str, Any], *, rkey: str | None = None, lexicon: bool = True
) -> None:
    """Check a record (JSON form) before it is written to ``collection``.

    Always: ``$type`` equals ``collection``, the data-model rules of
    :func:`check_data_model`, the encoded size (at most :data:`MAX_RECORD_BYTES`) and
    the record key, if given. With ``lexicon=True`` and a shipped lexicon for
    ``collection``, also every constraint of that lexicon. Raises
    :class:`LexiconValidationError`.

    >>> validate_record("ac.foundation.dataset.record", {"$type": "ac.foundation.dataset.record"})
    Traceback (most recent call last):
    ...
    atdata.atmosphere._lexicon.LexiconValidationError: ac.foundation.dataset.record: name: required field is missing
    """
    if not isinstance(collection, str) or not is_valid_nsid(collection):
        raise LexiconValidationError(str(collection), "", "collection is not a valid NSID")
    if not isinstance(record, Mapping):
        raise LexiconValidationError(
            collection, "", f"a record must be an object, got {type(record).__name__}"
        )
    if record.get("$type") != collection:
        found = record.get("$type")
        raise LexiconValidationError(
            collection,
            "$type",
            "missing" if found is None else f"{found!r} does not match the collection",
        )
    check_data_model(collection, record)
    size = record_size(record)
    if size > MAX_RECORD_BYTES:
        raise LexiconValidationError(
            collection,
            "",
            f"record is {size:,} bytes as JSON, over the {MAX_RECORD_BYTES:,}-byte limit",
        )
    found = _defs().get(collection) if lexicon else None
    if found is not None and found[1].get("type") == "record":
        if rkey is not None:
            check_rkey(collection, rkey, found[1].get("key"))
        _validate(record, found[1], found[0], collection, "")
    elif rkey is not None:
        check_rkey(collection, rkey)
