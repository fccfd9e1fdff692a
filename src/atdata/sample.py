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

from __future__ import annotations

import dataclasses
import inspect
import os
import struct
import sys
import time
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import msgpack
import msgspec
import numpy as np

from atdata.arrays import array_from_bytes, c_order, npy_header
from atdata.errors import SampleError, SchemaError

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

ST = TypeVar("ST", bound="PackableSample")
_PRIMITIVES: dict[type, str] = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    bytes: "bytes",
}
_MISSING: Any = dataclasses.MISSING


# --------------------------------------------------------------------------- field types


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
    default: Any = _MISSING
    default_factory: Callable[[], Any] | None = None

    @property
    def required(self) -> bool:
        """True when the field has no default."""
        return self.default is _MISSING and self.default_factory is None


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
    if isinstance(tp, type) and issubclass(tp, PackableSample):
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
        factory = None if f.default_factory is _MISSING else f.default_factory
        specs.append(FieldSpec(f.name, ft, f.default, factory))
    result = tuple(specs)
    cls._atdata_fields = result  # type: ignore[attr-defined]
    return result


def is_packable(obj: Any) -> bool:
    """True when ``obj`` is a packable sample type (not an instance)."""
    return isinstance(obj, type) and issubclass(obj, PackableSample)


# --------------------------------------------------------------------------- keys


class _KeySource:
    """Time-ordered, process-unique sample keys without dots (like UUIDv7, as hex)."""

    def __init__(self) -> None:
        self.reseed()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self.token = os.urandom(6).hex()
        self.counter = int.from_bytes(os.urandom(3), "big")

    def __call__(self) -> str:
        self.counter = (self.counter + 1) & 0xFFFFFF
        return f"{time.time_ns() // 1000:014x}{self.token}{self.counter:06x}"


new_key: Callable[[], str] = _KeySource()
new_key.__doc__ = "Return a new sample key: 32 hex digits, time-ordered, unique across processes."


# --------------------------------------------------------------------------- encoding


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, np.integer):
        return int(value)
    return None


def _encode_value(ft: FieldType, value: Any, field: str) -> Any:
    if value is None:
        if ft.optional:
            return None
        raise SampleError("is None but the field is not optional", field=field)
    kind = ft.kind
    if kind == "str":
        if isinstance(value, str):
            return str(value)
    elif kind == "int":
        n = _as_int(value)
        if n is not None:
            return n
    elif kind == "float":
        if isinstance(value, float | np.floating):
            return float(value)
        n = _as_int(value)
        if n is not None:
            return float(n)
    elif kind == "bool":
        if isinstance(value, bool | np.bool_):
            return bool(value)
    elif kind == "bytes":
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
    elif kind == "ndarray":
        if isinstance(value, np.ndarray):
            _check_array(ft, value, field)
            arr = c_order(value)
            return npy_header(arr) + arr.tobytes()
    elif kind == "list":
        if isinstance(value, list | tuple):
            assert ft.item is not None
            return [_encode_value(ft.item, v, f"{field}[{i}]") for i, v in enumerate(value)]
    elif kind == "dict":
        if isinstance(value, Mapping):
            assert ft.item is not None
            out = {}
            for k, v in value.items():
                if not isinstance(k, str):
                    raise SampleError(f"has a non-string key {k!r}", field=field)
                out[k] = _encode_value(ft.item, v, f"{field}[{k!r}]")
            return out
    elif kind == "sample":
        if isinstance(value, ft.sample_type):  # type: ignore[arg-type]
            return {
                s.name: _encode_value(s.type, getattr(value, s.name), f"{field}.{s.name}")
                for s in fields_of(type(value))
            }
    raise SampleError(f"expected {ft.describe()}, got {type(value).__name__}", field=field)


def _check_array(ft: FieldType, value: np.ndarray, field: str) -> None:
    if ft.dtype is not None and value.dtype != ft.dtype:
        raise SampleError(f"expected an array of dtype {ft.dtype}, got {value.dtype}", field=field)
    if value.dtype.hasobject:
        raise SampleError("arrays of Python objects cannot be stored", field=field)


def _map_header(n: int) -> bytes:
    return bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)


def _bin_header(n: int) -> bytes:
    if n < 0x100:
        return b"\xc4" + bytes([n])
    if n < 0x10000:
        return b"\xc5" + struct.pack(">H", n)
    return b"\xc6" + struct.pack(">I", n)


_packb = msgpack.Packer(use_bin_type=True).pack


def encode_segments(sample: PackableSample) -> list[bytes | memoryview]:
    """The msgpack encoding of ``sample`` as a list of buffers (arrays are not copied)."""
    specs = fields_of(type(sample))
    segs: list[bytes | memoryview] = [_map_header(len(specs))]
    keys = _packed_keys(type(sample))
    values = sample.__dict__
    for spec, key in zip(specs, keys):
        segs.append(key)
        value = values[spec.name]
        ft = spec.type
        if ft.kind == "ndarray" and isinstance(value, np.ndarray):
            _check_array(ft, value, spec.name)
            arr = c_order(value)
            header = npy_header(arr)
            segs.append(_bin_header(len(header) + arr.nbytes))
            segs.append(header)
            segs.append(memoryview(arr.reshape(-1).view(np.uint8)))
        else:
            segs.append(_packb(_encode_value(ft, value, spec.name)))
    return segs


def _packed_keys(cls: type) -> tuple[bytes, ...]:
    cached = cls.__dict__.get("_atdata_packed_keys")
    if cached is None:
        cached = tuple(_packb(s.name) for s in fields_of(cls))
        cls._atdata_packed_keys = cached  # type: ignore[attr-defined]
    return cached


# --------------------------------------------------------------------------- decoding


def _wire_type(ft: FieldType) -> Any:
    kind = ft.kind
    if kind == "ndarray":
        tp: Any = memoryview
    elif kind == "list":
        assert ft.item is not None
        tp = list[_wire_type(ft.item)]  # type: ignore[misc]
    elif kind == "dict":
        assert ft.item is not None
        tp = dict[str, _wire_type(ft.item)]  # type: ignore[misc]
    elif kind == "sample":
        assert ft.sample_type is not None
        tp = _decoder_for(ft.sample_type).wire
    else:
        tp = {"str": str, "int": int, "float": float, "bool": bool, "bytes": bytes}[kind]
    return tp | None if ft.optional else tp


class _FieldValueError(ValueError):
    """A decoded value is invalid; carries the field path for the error message."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _converter(ft: FieldType, copy: bool, field: str) -> Callable[[Any], Any] | None:
    """A function turning a decoded wire value into the Python value, or None for identity.

    Only top-level arrays may stay views (``copy=False``, for batching, which
    copies them once); arrays inside lists, dicts and nested samples are copied.
    """
    kind = ft.kind
    if kind == "ndarray":
        dtype = ft.dtype

        def conv(v: Any) -> Any:
            if v is None:
                return None
            try:
                arr = array_from_bytes(v, copy=copy)
            except ValueError as exc:
                raise _FieldValueError(field, str(exc)) from None
            if dtype is not None and arr.dtype != dtype:
                raise _FieldValueError(
                    field, f"expected an array of dtype {dtype}, got {arr.dtype}"
                )
            return arr

        return conv
    if kind in ("list", "dict"):
        assert ft.item is not None
        inner = _converter(ft.item, True, f"{field}[]")
        if inner is None:
            return None
        if kind == "list":
            return lambda v: None if v is None else [inner(x) for x in v]
        return lambda v: None if v is None else {k: inner(x) for k, x in v.items()}
    if kind == "sample":
        assert ft.sample_type is not None
        nested = _decoder_for(ft.sample_type)
        return lambda v: None if v is None else nested.from_wire(v, True, prefix=f"{field}.")
    return None


class _Decoder:
    """Decodes msgpack payloads of one sample type, validating every field in C (msgspec)."""

    def __init__(self, cls: type) -> None:
        self.cls = cls
        specs = fields_of(cls)
        self.names = tuple(s.name for s in specs)
        wire_fields = []
        for s in specs:
            tp = _wire_type(s.type)
            if s.default_factory is not None:
                wire_fields.append((s.name, tp, msgspec.field(default_factory=s.default_factory)))
            elif s.default is not _MISSING:
                wire_fields.append((s.name, tp, s.default))
            elif s.type.optional:
                wire_fields.append((s.name, tp, None))
            else:
                wire_fields.append((s.name, tp))
        # gc=False: a freshly decoded wire struct is dropped at once and cannot be part of a
        # reference cycle, so the garbage collector need not track it (faster to allocate)
        self.wire = msgspec.defstruct(
            f"{cls.__name__}Wire",
            wire_fields,
            kw_only=True,
            forbid_unknown_fields=True,
            gc=False,
        )
        self._decode = msgspec.msgpack.Decoder(self.wire).decode
        self.specs = specs
        self._top = {copy: self.converters(copy) for copy in (True, False)}
        self._asdict = msgspec.structs.asdict
        self._new = object.__new__

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        # msgspec decoders do not pickle; a class pickled by value (cloudpickle) gets a
        # fresh one on first use in the other process
        return _no_decoder, ()

    def converters(self, copy: bool, prefix: str = "") -> list[tuple[str, Callable[[Any], Any]]]:
        """(field, converter) pairs for the fields that need converting, cached per mode."""
        cache = self.__dict__.setdefault("_converters", {})
        found = cache.get((copy, prefix))
        if found is None:
            found = [
                (s.name, c) for s in self.specs if (c := _converter(s.type, copy, prefix + s.name))
            ]
            cache[(copy, prefix)] = found
        return found

    def fast(self, copy: bool) -> Callable[[Any], Any]:
        """``payload -> sample`` for the hot path: no error wrapping, fewest calls.

        It raises msgspec's or the converters' own errors; call :meth:`decode`
        on the same payload to get the :class:`~atdata.SampleError` naming the
        shard, key and field.
        """
        decode_raw, asdict, new, cls = self._decode, self._asdict, self._new, self.cls
        convs = self._top[copy]
        if not convs:

            def plain(data: Any) -> Any:
                obj = new(cls)
                obj.__dict__ = asdict(decode_raw(data))
                return obj

            return plain

        def converted(data: Any) -> Any:
            values = asdict(decode_raw(data))
            for name, conv in convs:
                values[name] = conv(values[name])
            obj = new(cls)
            obj.__dict__ = values
            return obj

        return converted

    def from_wire(self, wire: Any, copy: bool, prefix: str = "") -> Any:
        values = self._asdict(wire)
        for name, conv in self._top[copy] if not prefix else self.converters(copy, prefix):
            values[name] = conv(values[name])
        obj = self._new(self.cls)
        obj.__dict__ = values
        return obj

    def decode(
        self, data: Any, copy: bool = True, key: str | None = None, shard: str | None = None
    ) -> Any:
        """Decode one payload. Arrays are copies unless ``copy=False`` (read-only views)."""
        try:
            return self.from_wire(self._decode(data), copy)
        except msgspec.ValidationError as exc:
            raise _validation_error(exc, key, shard) from None
        except msgspec.DecodeError as exc:
            raise SampleError(
                f"payload is not valid msgpack ({exc})", key=key, shard=shard
            ) from None
        except _FieldValueError as exc:  # arrays: bad header, object dtype, size, dtype
            raise SampleError(str(exc), key=key, field=exc.field, shard=shard) from None


def _no_decoder() -> None:
    """What an unpickled ``_atdata_decoder`` becomes: none yet (see :func:`_decoder_for`)."""
    return None


def _validation_error(
    exc: msgspec.ValidationError, key: str | None, shard: str | None
) -> SampleError:
    text = str(exc)
    field = None
    if "at `$." in text:
        field = text.rsplit("at `$.", 1)[1].rstrip("`")
    elif "field `" in text:
        field = text.split("field `", 1)[1].split("`", 1)[0]
    return SampleError(
        text.replace("memoryview", "array (msgpack bin)"), key=key, field=field, shard=shard
    )


def _decoder_for(cls: type) -> _Decoder:
    dec = cls.__dict__.get("_atdata_decoder")
    if dec is None:
        dec = _Decoder(cls)
        cls._atdata_decoder = dec  # type: ignore[attr-defined]
    return dec


def _from_python(ft: FieldType, value: Any, field: str) -> Any:
    """Convert a plain Python value (as ``from_data`` receives it) to the field's type."""
    if value is None:
        if ft.optional:
            return None
        raise SampleError("is None but the field is not optional", field=field)
    kind = ft.kind
    if kind == "ndarray":
        if isinstance(value, bytes | bytearray | memoryview):
            try:
                value = array_from_bytes(value)
            except ValueError as exc:
                raise SampleError(str(exc), field=field) from None
        if isinstance(value, np.ndarray):
            _check_array(ft, value, field)
            return value
    elif kind == "list" and isinstance(value, list | tuple):
        assert ft.item is not None
        return [_from_python(ft.item, v, f"{field}[{i}]") for i, v in enumerate(value)]
    elif kind == "dict" and isinstance(value, Mapping):
        assert ft.item is not None
        for k in value:
            if not isinstance(k, str):
                raise SampleError(f"has a non-string key {k!r}", field=field)
        return {k: _from_python(ft.item, v, f"{field}[{k!r}]") for k, v in value.items()}
    elif kind == "sample":
        assert ft.sample_type is not None
        if isinstance(value, ft.sample_type):
            return value
        if isinstance(value, Mapping):
            return ft.sample_type.from_data(value)
    else:
        _encode_value(ft, value, field)  # type check only
        if kind == "float" and not isinstance(value, float):
            return float(value)
        if kind in ("int", "bool") and isinstance(value, np.generic):
            return value.item()
        return value
    raise SampleError(f"expected {ft.describe()}, got {type(value).__name__}", field=field)


# --------------------------------------------------------------------------- the base class


class PackableSample:
    """Base class of every sample type. Use the :func:`packable` decorator to make one."""

    def __post_init__(self) -> None:
        # Array fields given as encoded bytes are decoded, as the existing atdata does.
        for spec in fields_of(type(self)):
            if spec.type.kind == "ndarray":
                value = self.__dict__[spec.name]
                if isinstance(value, bytes | bytearray | memoryview):
                    self.__dict__[spec.name] = _from_python(spec.type, value, spec.name)

    @classmethod
    def from_data(cls: type[ST], data: Mapping[str, Any]) -> ST:
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
                value = _from_python(spec.type, data[spec.name], spec.name)
            elif spec.default_factory is not None:
                value = spec.default_factory()
            elif spec.default is not _MISSING:
                value = spec.default
            elif spec.type.optional:
                value = None
            else:
                raise SampleError(f"missing required field for {cls.__name__}", field=spec.name)
            obj.__dict__[spec.name] = value
        return obj

    @classmethod
    def from_bytes(cls: type[ST], data: bytes | bytearray | memoryview) -> ST:
        """Decode a sample from its msgpack bytes (``sample.packed``)."""
        return _decoder_for(cls).decode(data)

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
            _values_equal(self.__dict__[s.name], other.__dict__[s.name])
            for s in fields_of(type(self))
        )

    __hash__ = None  # type: ignore[assignment]


def _values_equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
        )
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_values_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_values_equal(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return bool(a == b)


def packable(cls: type) -> type:
    """Turn an annotated class into a dataclass sample type (a :class:`PackableSample`).

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
        new_cls = cls
    else:
        namespace = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
        bases = tuple(b for b in cls.__bases__ if b is not object)
        if not any(issubclass(b, PackableSample) for b in bases):
            bases = (*bases, PackableSample)
        new_cls = types.new_class(cls.__name__, bases, {}, lambda ns: ns.update(namespace))
        new_cls = dataclass(eq=False)(new_cls)
    from atdata.lens import register_sample_type  # local import: lens imports this module

    register_sample_type(new_cls)
    return new_cls
