"""Query parameters of the XRPC endpoints: text queries, opaque cursors, limits.

Every parser raises :class:`BadParam`, which the server answers with HTTP 400 in
XRPC form; nothing a client sends reaches a database as syntax.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any

from atdata.errors import AtdataError

__all__ = [
    "MAX_LIMIT",
    "BadParam",
    "SearchParams",
    "TextQuery",
    "decode_cursor",
    "encode_cursor",
    "parse_limit",
    "parse_text_query",
]

DEFAULT_LIMIT = 25
MAX_LIMIT = 100
_MAX_Q = 500
_MAX_TERMS = 16
_MAX_CURSOR = 2048
_WORD = re.compile(r"\w+", re.UNICODE)


class BadParam(AtdataError, ValueError):
    """A query parameter that cannot be used; answered with HTTP 400 ``InvalidRequest``."""


@dataclass(frozen=True)
class TextQuery:
    """A parsed ``q``: every term must match; a term is a word or a quoted phrase (a word list)."""

    terms: tuple[tuple[str, ...], ...]

    def fts5(self) -> str:
        """The query in SQLite FTS5 syntax, every token quoted."""
        return " AND ".join('"' + " ".join(words) + '"' for words in self.terms)

    def tsquery(self) -> str:
        """The query in PostgreSQL ``to_tsquery`` syntax (tokens are plain words)."""
        return " & ".join("(" + " <-> ".join(words) + ")" for words in self.terms)


def parse_text_query(q: str) -> TextQuery | None:
    """Parse ``q``: words and ``"quoted phrases"``; punctuation separates words.

    >>> parse_text_query('cats "deep learning"').terms
    (('cats',), ('deep', 'learning'))
    >>> parse_text_query('"open')
    Traceback (most recent call last):
    ...
    atdata.appview._query.BadParam: q: unbalanced double quote
    """
    if len(q) > _MAX_Q:
        raise BadParam(f"q: longer than {_MAX_Q} characters")
    if q.count('"') % 2:
        raise BadParam("q: unbalanced double quote")
    terms: list[tuple[str, ...]] = []
    for i, part in enumerate(q.split('"')):
        words = [w.lower() for w in _WORD.findall(part)]
        if i % 2:
            if words:
                terms.append(tuple(words))
        else:
            terms.extend((w,) for w in words)
    if len(terms) > _MAX_TERMS:
        raise BadParam(f"q: more than {_MAX_TERMS} terms")
    return TextQuery(tuple(terms)) if terms else None


def parse_limit(value: str | None, default: int = DEFAULT_LIMIT) -> int:
    """A page size between 1 and :data:`MAX_LIMIT`."""
    if value is None or value == "":
        return default
    try:
        limit = int(value)
    except ValueError:
        raise BadParam(f"limit: {value[:40]!r} is not an integer") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadParam(f"limit: must be between 1 and {MAX_LIMIT}, got {limit}")
    return limit


def encode_cursor(kind: str, key: list[Any]) -> str:
    """An opaque cursor for the keyset ``key`` of a listing of ``kind``."""
    raw = json.dumps([kind, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, kind: str, types: tuple[type, ...]) -> list[Any] | None:
    """The keyset in ``cursor`` (None for the first page); :class:`BadParam` if it is not ours."""
    if not cursor:
        return None
    if len(cursor) > _MAX_CURSOR:
        raise BadParam("cursor: too long")
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError):
        raise BadParam("cursor: not a cursor this service issued") from None
    if (
        not isinstance(data, list)
        or len(data) != len(types) + 1
        or data[0] != kind
        or not all(isinstance(v, t) and not isinstance(v, bool) for v, t in zip(data[1:], types))
    ):
        raise BadParam("cursor: not a cursor for this query")
    return data[1:]


@dataclass(frozen=True)
class SearchParams:
    """``searchDatasets`` parameters after parsing."""

    text: TextQuery | None = None
    tags: tuple[str, ...] = ()
    schema: str | None = None
    repo: str | None = None
    license: str | None = None
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None
    schemas: tuple[str, ...] = field(default=())
