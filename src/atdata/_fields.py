"""Field types of sample classes: what each annotation means, read once per class.

>>> @dataclasses.dataclass
... class Box(SampleBase):
...     size: int
...     tags: list[str] | None
>>> [(s.name, s.type.describe()) for s in fields_of(Box)]
[('size', 'int'), ('tags', 'list[str] | None')]
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
import threading
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeGuard, TypeVar

import numpy as np

from atdata.errors import SchemaError

MISSING: Any = dataclasses.MISSING
"""The default of a required field (``dataclasses.MISSING``)."""

_PRIMITIVES: dict[type, str] = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    bytes: "bytes",
}


class SampleBase:
    """The root of every sample class; :class:`~atdata.PackableSample` adds packing to it.

    It lives here so that field parsing recognises nested sample types without
    importing the packing code.
    """


@dataclass(frozen=True, slots=True)
class FieldType:
    """The type of one field, as a small tree.

    ``kind`` is one of ``str int float bool bytes ndarray list dict sample``;
    ``dtype`` is set for arrays with a declared dtype, ``shape`` for arrays
    with a declared :class:`Shape` (``-1``: any size), ``item`` for lists and
    dict values, ``sample_type`` for nested packable types; ``optional`` means
    ``None`` is allowed.
    """

    kind: str
    optional: bool = False
    dtype: np.dtype | None = None
    item: FieldType | None = None
    sample_type: type | None = None
    shape: tuple[int, ...] | None = None

    def describe(self) -> str:
        """A short human-readable form, e.g. ``ndarray[uint8] | None``."""
        if self.kind == "ndarray":
            text = f"ndarray[{self.dtype}]" if self.dtype is not None else "ndarray"
            if self.shape is not None:
                text += "(" + ", ".join("*" if d < 0 else str(d) for d in self.shape) + ")"
        elif self.kind == "list":
            text = f"list[{self.item.describe() if self.item else '?'}]"
        elif self.kind == "dict":
            text = f"dict[str, {self.item.describe() if self.item else '?'}]"
        elif self.kind == "sample":
            text = self.sample_type.__name__ if self.sample_type else "sample"
        else:
            text = self.kind
        return text + " | None" if self.optional else text


@dataclass(frozen=True, slots=True, init=False)
class Shape:
    """The declared shape of an array field: ``Annotated[NDArray[np.uint8], Shape(3, None, None)]``.

    Each dimension is a size, or ``None`` (or ``-1``) for any size. The shape
    is recorded in the schema (``shape`` of the ``ndarray`` field type, ``-1``
    for any size) and in Croissant's ``arrayShape``; packing does not check it.

    >>> Shape(3, None, 224).dims
    (3, -1, 224)
    """

    dims: tuple[int, ...]

    def __init__(self, *dims: int | None) -> None:
        out = []
        for d in dims:
            if d is None:
                d = -1
            if not isinstance(d, int) or isinstance(d, bool) or d < -1:
                raise SchemaError(
                    f"Shape dimensions are sizes >= 0, or None for any size; got {d!r}"
                )
            out.append(d)
        object.__setattr__(self, "dims", tuple(out))


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a sample type: its name, type and default (``MISSING`` if required)."""

    name: str
    type: FieldType
    default: Any = MISSING
    default_factory: Callable[[], Any] | None = None

    @property
    def required(self) -> bool:
        """True when the field has no default."""
        return self.default is MISSING and self.default_factory is None


def _is_ndarray_annotation(tp: Any) -> bool:
    return tp is np.ndarray or typing.get_origin(tp) is np.ndarray


def _ndarray_dtype(tp: Any) -> np.dtype | None:
    args = typing.get_args(tp)
    if len(args) != 2:
        return None
    dargs = typing.get_args(args[1])
    if len(dargs) != 1 or isinstance(dargs[0], TypeVar) or dargs[0] is Any:
        return None
    try:
        return np.dtype(dargs[0])
    except TypeError:
        return None


def _parse_annotation(tp: Any, where: str) -> FieldType:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        inner, *extras = typing.get_args(tp)
        ft = _parse_annotation(inner, where)
        shapes = [e for e in extras if isinstance(e, Shape)]
        if shapes:
            if ft.kind != "ndarray" or len(shapes) > 1:
                raise SchemaError(f"{where}: one Shape(...) goes on an NDArray annotation")
            ft = dataclasses.replace(ft, shape=shapes[0].dims)
        return ft
    if origin is typing.Union or origin is types.UnionType:
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(members) != 1:
            raise SchemaError(f"{where}: unions other than 'T | None' are not supported ({tp!r})")
        inner = _parse_annotation(members[0], where)
        return dataclasses.replace(inner, optional=True)
    if tp in _PRIMITIVES:
        return FieldType(_PRIMITIVES[tp])
    if _is_ndarray_annotation(tp):
        return FieldType("ndarray", dtype=_ndarray_dtype(tp))
    if origin is list:
        args = typing.get_args(tp)
        if len(args) != 1:
            raise SchemaError(f"{where}: write list[T] with an item type, not a bare list")
        return FieldType("list", item=_parse_annotation(args[0], where + "[]"))
    if origin is dict:
        args = typing.get_args(tp)
        if len(args) != 2 or args[0] is not str:
            raise SchemaError(f"{where}: dict fields must be dict[str, T]")
        return FieldType("dict", item=_parse_annotation(args[1], where + "{}"))
    if tp is list or tp is dict:
        raise SchemaError(f"{where}: write {tp.__name__}[...] with its item types")
    if isinstance(tp, type) and issubclass(tp, SampleBase):
        return FieldType("sample", sample_type=tp)
    raise SchemaError(
        f"{where}: unsupported field type {tp!r}; use str, int, float, bool, bytes, NDArray, "
        "list[T], dict[str, T], T | None or a @packable type"
    )


def _resolve_hints(cls: type) -> dict[str, Any]:
    """Evaluate the annotations of the dataclass fields of ``cls`` (string annotations too)."""
    names = {f.name for f in dataclasses.fields(cls)}
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        annotations = inspect.get_annotations(klass)
        module = sys.modules.get(klass.__module__)
        globalns = dict(vars(module)) if module else {}
        localns = {klass.__name__: klass, cls.__name__: cls}
        for name, tp in annotations.items():
            if name not in names:
                continue
            if isinstance(tp, str):
                try:
                    # annotations are the class author's code, never data from a shard or record
                    tp = eval(tp, globalns, localns)
                except NameError as exc:
                    raise SchemaError(
                        f"{klass.__qualname__}.{name}: cannot resolve the annotation {tp!r}; "
                        "define nested sample types at module level, before they are used"
                    ) from exc
            hints[name] = tp
    return hints


def fields_of(cls: type) -> tuple[FieldSpec, ...]:
    """Return the field specs of a packable type, in declaration order (cached)."""
    cached = cls.__dict__.get("_atdata_fields")
    if cached is not None:
        return cached
    if not dataclasses.is_dataclass(cls):
        raise SchemaError(f"{cls!r} is not a @packable sample type")
    hints = _resolve_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        ft = _parse_annotation(hints[f.name], f"{cls.__qualname__}.{f.name}")
        factory: Callable[[], Any] | None = (
            None if f.default_factory is MISSING else f.default_factory  # type: ignore[assignment]
        )
        specs.append(FieldSpec(f.name, ft, f.default, factory))
    result = tuple(specs)
    cls._atdata_fields = result  # type: ignore[attr-defined]
    return result


def is_packable(obj: Any) -> TypeGuard[type[SampleBase]]:
    """True when ``obj`` is a packable sample type (not an instance)."""
    return isinstance(obj, type) and issubclass(obj, SampleBase)


_lock = threading.Lock()
_registered: dict[tuple[str, str], type] = {}


def register_type(cls: type) -> None:
    """Record a sample type made by ``@packable``; it replaces an earlier one of the same name."""
    key = (cls.__module__, cls.__qualname__)
    with _lock:
        _registered.pop(key, None)
        _registered[key] = cls


def registered_types() -> list[type]:
    """Every recorded sample type, oldest first (lenses reach each of them from ``DictSample``)."""
    with _lock:
        return list(_registered.values())
