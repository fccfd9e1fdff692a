"""``DictSample``: a schema-free sample, the default type of a dataset opened without one."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, cast

import msgpack
import numpy as np

from atdata._keys import new_key
from atdata._values import values_equal
from atdata.arrays import NPY_MAGIC, UnsafeArrayError, array_from_bytes, array_to_bytes
from atdata.errors import SampleError

__all__ = ["DictSample"]


def _decode_value(value: Any, field: str) -> Any:
    if isinstance(value, bytes) and value[:6] == NPY_MAGIC:
        try:
            return array_from_bytes(value)
        except UnsafeArrayError as exc:
            raise SampleError(str(exc), field=field) from None
        except ValueError:
            return value  # bytes that merely start like a .npy file
    if isinstance(value, dict):
        return {k: _decode_value(v, f"{field}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_value(v, f"{field}[{i}]") for i, v in enumerate(value)]
    return value


def _encode_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return array_to_bytes(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _encode_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode_value(v) for v in value]
    return value


class DictSample:
    """A sample without a declared type: field access by attribute or item.

    Values that hold ``.npy`` bytes are decoded to NumPy arrays.

    >>> s = DictSample(name="a", value=1)
    >>> s.name, s["value"], s.keys()
    ('a', 1, ['name', 'value'])
    """

    __slots__ = ("_data",)
    _data: dict[str, Any]

    def __init__(self, _data: Mapping[str, Any] | None = None, **fields: Any) -> None:
        data = dict(_data or {})
        data.update(fields)
        object.__setattr__(self, "_data", data)

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> DictSample:
        """Wrap a mapping of field values."""
        return cls(data)

    @classmethod
    def from_bytes(
        cls, data: bytes | bytearray | memoryview, *, key: str | None = None
    ) -> DictSample:
        """Decode msgpack bytes holding a map."""
        try:
            raw = msgpack.unpackb(data, raw=False)
        except Exception as exc:
            raise SampleError(f"payload is not valid msgpack ({exc})", key=key) from None
        if not isinstance(raw, dict):
            raise SampleError(f"payload is a msgpack {type(raw).__name__}, not a map", key=key)
        try:
            return cls({k: _decode_value(v, k) for k, v in raw.items()})
        except SampleError as exc:
            raise SampleError(exc.reason, key=key, field=exc.field) from None

    @property
    def packed(self) -> bytes:
        """The msgpack encoding of the fields."""
        packed = msgpack.packb(
            {k: _encode_value(v) for k, v in self._data.items()}, use_bin_type=True
        )
        # untyped msgpack: pyright infers "bytes | None" (None only without autoreset)
        return cast(bytes, packed)

    @property
    def as_wds(self) -> dict[str, Any]:
        """A WebDataset sample dict with a new key."""
        return {"__key__": new_key(), "msgpack": self.packed}

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(
                f"DictSample has no field {name!r}; fields: {sorted(self._data)}"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._data[name] = value

    def __getitem__(self, name: str) -> Any:
        return self._data[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self._data[name] = value

    def __contains__(self, name: object) -> bool:
        return name in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def keys(self) -> list[str]:
        """Field names, in stored order."""
        return list(self._data)

    def values(self) -> list[Any]:
        """Field values, in stored order."""
        return list(self._data.values())

    def items(self) -> list[tuple[str, Any]]:
        """(name, value) pairs, in stored order."""
        return list(self._data.items())

    def get(self, name: str, default: Any = None) -> Any:
        """The value of ``name``, or ``default``."""
        return self._data.get(name, default)

    def to_dict(self) -> dict[str, Any]:
        """A shallow copy of the fields as a dict."""
        return dict(self._data)

    def as_mapping(self) -> Mapping[str, Any]:
        """A read-only, live view of the fields (no copy).

        >>> DictSample(a=1).as_mapping()
        mappingproxy({'a': 1})
        """
        return MappingProxyType(self._data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DictSample):
            return NotImplemented
        return values_equal(self._data, other.to_dict())

    __hash__: ClassVar[None] = None  # type: ignore[assignment]  # mutable: unhashable

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._data.items())
        return f"DictSample({inner})"
