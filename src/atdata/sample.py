"""Typed samples: ``@packable`` dataclasses serialized as one msgpack map each.

The wire format is the existing atdata's: a msgpack map from field name to
value, in declaration order; arrays are msgpack ``bin`` values holding a
``.npy`` file; ``None`` is nil. Nested sample types (an extension) are maps.

>>> import numpy as np
>>> from numpy.typing import NDArray
>>> @packable
... class Point:
...     xy: NDArray[np.float32]
...     label: str
>>> p = Point(xy=np.zeros(2, np.float32), label="origin")
>>> Point.from_bytes(p.packed).label
'origin'
"""

import dataclasses
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeVar, cast, dataclass_transform

from atdata._codec import decoder_for, from_python
from atdata._codec import encode_segments as encode_segments  # the writer's entry point
from atdata._fields import (
    MISSING,
    FieldSpec,
    FieldType,
    SampleBase,
    Shape,
    fields_of,
    is_packable,
    register_type,
)
from atdata._keys import new_key
from atdata._values import values_equal
from atdata.errors import SampleError

__all__ = [
    "FieldSpec",
    "FieldType",
    "PackableSample",
    "Shape",
    "fields_of",
    "is_packable",
    "new_key",
    "packable",
]

T = TypeVar("T")


class PackableSample(SampleBase):
    """Base class of every sample type. Use the :func:`packable` decorator to make one.

    ``@packable`` adds this base to a plain class at run time. Name it as a base
    yourself (``class Point(PackableSample)``) and a type checker sees
    :meth:`from_bytes`, :meth:`from_data`, :attr:`packed` and :attr:`as_wds` too.

    >>> @packable
    ... class Point(PackableSample):
    ...     x: int
    ...     y: int
    >>> Point.from_data({"x": 1, "y": 2}) == Point(1, 2)
    True
    """

    def __post_init__(self) -> None:
        # Array fields given as encoded bytes are decoded, as the existing atdata does.
        for spec in fields_of(type(self)):
            if spec.type.kind == "ndarray":
                value = self.__dict__[spec.name]
                if isinstance(value, bytes | bytearray | memoryview):
                    self.__dict__[spec.name] = from_python(spec.type, value, spec.name)

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Self:
        """Build a sample from a mapping of field values, checking every field.

        Arrays may be given as arrays or as encoded bytes; nested samples as
        mappings. Unknown or missing fields raise :class:`~atdata.SampleError`.
        """
        specs = fields_of(cls)
        names = {s.name for s in specs}
        unknown = [k for k in data if k not in names]
        if unknown:
            raise SampleError(f"unknown field(s) {unknown} for {cls.__name__}", field=unknown[0])
        obj = cls.__new__(cls)
        for spec in specs:
            if spec.name in data:
                value = from_python(spec.type, data[spec.name], spec.name)
            elif spec.default_factory is not None:
                value = spec.default_factory()
            elif spec.default is not MISSING:
                value = spec.default
            elif spec.type.optional:
                value = None
            else:
                raise SampleError(f"missing required field for {cls.__name__}", field=spec.name)
            obj.__dict__[spec.name] = value
        return obj

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Self:
        """Decode a sample from its msgpack bytes (``sample.packed``)."""
        return decoder_for(cls).decode(data)

    @property
    def packed(self) -> bytes:
        """The msgpack encoding of this sample."""
        return b"".join(encode_segments(self))

    @property
    def as_wds(self) -> dict[str, Any]:
        """A WebDataset sample dict: ``{"__key__": new key, "msgpack": packed bytes}``."""
        return {"__key__": new_key(), "msgpack": self.packed}

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(
            values_equal(self.__dict__[s.name], other.__dict__[s.name])
            for s in fields_of(type(self))
        )

    __hash__: ClassVar[None] = None  # type: ignore[assignment]  # mutable: unhashable


@dataclass_transform(eq_default=False, field_specifiers=(dataclasses.field, dataclasses.Field))
def packable(cls: type[T]) -> type[T]:
    """Turn an annotated class into a dataclass sample type (a :class:`PackableSample`).

    Type checkers see the fields and the constructor; they see the packing
    methods when the class names :class:`PackableSample` as a base.

    >>> @packable
    ... class Pair:
    ...     name: str
    ...     value: int
    >>> Pair.from_bytes(Pair("a", 1).packed)
    Pair(name='a', value=1)
    """
    if not isinstance(cls, type):
        raise TypeError("@packable decorates a class")
    if issubclass(cls, PackableSample) and "__dataclass_fields__" in cls.__dict__:
        new_cls: type = cls
    else:
        namespace = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
        bases = tuple(b for b in cls.__bases__ if b is not object)
        if not any(issubclass(b, PackableSample) for b in bases):
            bases = (*bases, PackableSample)
        new_cls = types.new_class(cls.__name__, bases, {}, lambda ns: ns.update(namespace))
        new_cls = dataclass(eq=False)(new_cls)
    register_type(new_cls)
    return cast("type[T]", new_cls)
