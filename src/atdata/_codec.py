r"""The msgpack codec of ``@packable`` samples: encoding to buffers, decoding with msgspec.

The wire format is the existing atdata's: a msgpack map from field name to
value, in declaration order; arrays are msgpack ``bin`` values holding a
``.npy`` file; ``None`` is nil; nested samples are maps.

>>> import dataclasses
>>> @dataclasses.dataclass
... class Tag(SampleBase):
...     name: str
>>> data = b"".join(encode_segments(Tag("a")))
>>> data
b'\x81\xa4name\xa1a'
>>> decoder_for(Tag).decode(data).name
'a'
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any

import msgpack
import msgspec
import numpy as np

from atdata._fields import MISSING, FieldType, SampleBase, fields_of
from atdata.arrays import array_from_bytes, c_order, npy_header
from atdata.errors import SampleError


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


def encode_segments(sample: SampleBase) -> list[bytes | memoryview]:
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
            segs.append(arr.reshape(-1).view(np.uint8).data)
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
        tp = decoder_for(ft.sample_type).wire
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
        nested = decoder_for(ft.sample_type)
        return lambda v: None if v is None else nested.from_wire(v, True, prefix=f"{field}.")
    return None


class Decoder:
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
            elif s.default is not MISSING:
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
    """What an unpickled ``_atdata_decoder`` becomes: none yet (see :func:`decoder_for`)."""
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


def decoder_for(cls: type) -> Decoder:
    dec = cls.__dict__.get("_atdata_decoder")
    if dec is None:
        dec = Decoder(cls)
        cls._atdata_decoder = dec  # type: ignore[attr-defined]
    return dec


def from_python(ft: FieldType, value: Any, field: str) -> Any:
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
        return [from_python(ft.item, v, f"{field}[{i}]") for i, v in enumerate(value)]
    elif kind == "dict" and isinstance(value, Mapping):
        assert ft.item is not None
        for k in value:
            if not isinstance(k, str):
                raise SampleError(f"has a non-string key {k!r}", field=field)
        return {k: from_python(ft.item, v, f"{field}[{k!r}]") for k, v in value.items()}
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
