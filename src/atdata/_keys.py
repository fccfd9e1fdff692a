"""Sample keys: time-ordered, unique across processes, without dots (WebDataset splits on them)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable


class KeySource:
    """Time-ordered, process-unique sample keys without dots (like UUIDv7, as hex).

    One instance serves the process (:data:`new_key`); it reseeds itself in a forked child.

    >>> first, second = new_key(), new_key()
    >>> len(first), "." in first, first != second
    (32, False, True)
    """

    def __init__(self) -> None:
        self.token = ""
        self.counter = 0
        self.reseed()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        """Draw a new random token and counter (a forked child must not repeat its parent's keys)."""
        self.token = os.urandom(6).hex()
        self.counter = int.from_bytes(os.urandom(3), "big")

    def __call__(self) -> str:
        self.counter = (self.counter + 1) & 0xFFFFFF
        return f"{time.time_ns() // 1000:014x}{self.token}{self.counter:06x}"


new_key: Callable[[], str] = KeySource()
new_key.__doc__ = "Return a new sample key: 32 hex digits, time-ordered, unique across processes."
