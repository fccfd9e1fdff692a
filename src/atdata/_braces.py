"""Brace patterns (``data-{000000..000009}.tar``): counted before they are expanded.

A pattern is expanded exactly as ``braceexpand`` (which WebDataset uses) expands
it, but only after its shards are counted without expanding anything, so a
pattern naming a hundred million shards is refused at once instead of filling
memory. The limit is the lexicon's: a dataset record lists at most
:data:`MAX_SHARDS` shards.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import braceexpand

from atdata.errors import ShardListError

__all__ = ["MAX_SHARDS", "count_shards", "iter_shards"]

#: The most shards one dataset names (``maxLength`` of the lexicon's shard lists).
MAX_SHARDS = 10_000
_MAX_NESTING = 32

# braceexpand's own grammar (version 0.1.7), mirrored to count instead of expand
_INT_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)(?:\.\.-?(\d+))?$")
_CHAR_RANGE = re.compile(r"^([A-Za-z])\.\.([A-Za-z])(?:\.\.-?(\d+))?$")
_ALPHABET = braceexpand.alphabet


def _unbalanced(pattern: str) -> ShardListError:
    return ShardListError(f"unbalanced braces in the shard pattern {pattern[:200]!r}")


def _count_pattern(pattern: str, depth: int) -> int:
    if depth > _MAX_NESTING:
        raise ShardListError(f"braces nested more than {_MAX_NESTING} deep in a shard pattern")
    total = 1
    start = pos = level = 0
    while pos < len(pattern):
        char = pattern[pos]
        if char == "\\":
            pos += 2
            continue
        if char == "{":
            if level == 0:
                start = pos
            level += 1
        elif char == "}":
            level -= 1
            if level == 0:
                expr = pattern[start + 1 : pos]
                n = _count_expression(expr, depth + 1)
                total *= _count_pattern(expr, depth + 1) if n is None else n
                start = pos + 1
        pos += 1
    if level != 0:
        raise _unbalanced(pattern)
    return total


def _count_expression(expr: str, depth: int) -> int | None:
    """The number of items of a ``{...}`` expression, or None if it is not one (literal braces)."""
    match = _INT_RANGE.match(expr)
    if match:
        first, last, step = match.groups()
        try:
            a, b = int(first), int(last)
        except ValueError:  # more digits than Python converts
            raise ShardListError(f"number too long in the shard pattern {{{expr[:40]}}}") from None
        return abs(b - a) // ((int(step) or 1) if step else 1) + 1
    match = _CHAR_RANGE.match(expr)
    if match:
        first, last, step = match.groups()
        by = (int(step) or 1) if step else 1
        a, b = _ALPHABET.index(first), _ALPHABET.index(last)
        if a < b:
            return len(_ALPHABET[a : b + 1 : by])
        return len(_ALPHABET[a : (b or -len(_ALPHABET)) - 1 : -by])
    return _count_sequence(expr, depth)


def _count_sequence(seq: str, depth: int) -> int | None:
    items: list[str] = []
    start = pos = level = 0
    while pos < len(seq):
        char = seq[pos]
        if char == "\\":
            pos += 2
            continue
        if char == "{":
            level += 1
        elif char == "}":
            level -= 1
        elif char == "," and level == 0:
            items.append(seq[start:pos])
            start = pos + 1
        pos += 1
    if level != 0 or not items:
        return None
    items.append(seq[start:])
    return sum(_count_pattern(item, depth) for item in items)


def count_shards(pattern: str) -> int:
    """How many shards ``pattern`` names, without expanding it.

    >>> count_shards("data-{000..099}-{a,b}.tar")
    200
    """
    if "{" not in pattern:
        return 1
    return _count_pattern(pattern, 0)


def iter_shards(pattern: str, limit: int = MAX_SHARDS) -> Iterator[str]:
    """The shards ``pattern`` names, in order, generated lazily; more than ``limit`` are refused.

    >>> list(iter_shards("data-{0..2}.tar"))
    ['data-0.tar', 'data-1.tar', 'data-2.tar']
    """
    n = count_shards(pattern)
    if n > limit:
        raise ShardListError(too_many(repr(pattern[:200]), n, limit))
    if "{" not in pattern:
        return iter([pattern])
    return braceexpand.braceexpand(pattern)  # lazy; each range it holds is at most ``limit``


def too_many(what: str, n: int, limit: int = MAX_SHARDS) -> str:
    """The message refusing ``what`` (a description) for naming ``n`` shards."""
    return (
        f"{what} names {n} shards; a dataset has at most {limit} "
        "(the limit of the dataset record's shard list)"
    )
