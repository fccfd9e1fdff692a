"""Value equality for sample fields: arrays by dtype and contents, NaN equal to NaN."""

from __future__ import annotations

from typing import Any

import numpy as np


def values_equal(a: Any, b: Any) -> bool:
    """True when two field values are equal, looking inside lists, tuples and dicts.

    >>> values_equal([np.array([1.0, np.nan])], [np.array([1.0, np.nan])])
    True
    >>> values_equal(np.zeros(2, np.int32), np.zeros(2, np.int64))
    False
    """
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
        )
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return bool(a == b)
