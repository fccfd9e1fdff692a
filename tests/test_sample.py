"""``@atdata.packable`` sample types and ``DictSample``: field types, construction, round trips."""

import dataclasses
import string
import tempfile
from pathlib import Path
from typing import Any, Optional

import hypothesis.extra.numpy as hnp
import msgpack
import numpy as np
import pytest
import webdataset as wds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import atdata
from atdata import DictSample, PackableSample, SampleError, SchemaError
from helpers import (
    arrays_equal,
    compact,
    npy,
    private_atdata_home,  # noqa: F401 - autouse fixture
    same,
    tar_payloads,
)


@atdata.packable
class Primitives:
    text: str
    count: int
    score: float
    flag: bool
    blob: bytes


@atdata.packable
class ArrayForms:
    bare: NDArray
    f32: NDArray[np.float32]
    u8: NDArray[np.uint8]
    opt: Optional[NDArray]  # noqa: UP045 - the typing.Optional spelling is under test
    opt_i64: NDArray[np.int64] | None
    opt_typed: Optional[NDArray[np.float64]]  # noqa: UP045


@atdata.packable
class Containers:
    ints: list[int]
    names: list[str]
    arrays: list[NDArray]
    f32_arrays: list[NDArray[np.float32]]
    scores: dict[str, float]
    by_name: dict[str, NDArray]
    grid: list[list[int]]
    tags: dict[str, list[str]]
    maybe_ints: Optional[list[int]]  # noqa: UP045
    maybe_map: dict[str, bool] | None


@atdata.packable
class Inner:
    v: NDArray[np.int16]
    label: str


@atdata.packable
class Outer:
    inner: Inner
    inners: list[Inner]
    by_key: dict[str, Inner]
    maybe: Inner | None
    note: str


@atdata.packable
class WithDefaults:
    name: str
    count: int = 7
    maybe: str | None = None
    tags: list[str] = dataclasses.field(default_factory=list)


@atdata.packable
class Everything:
    s: str
    i: int
    f: float
    b: bool
    raw: bytes
    arr: NDArray
    arr32: NDArray[np.float32]
    maybe_arr: NDArray | None
    opt_int: Optional[int]  # noqa: UP045
    ints: list[int]
    nested: list[list[float]]
    arrays: list[NDArray]
    by_name: dict[str, str]
    deep: dict[str, list[dict[str, int]]]
    inner: Inner
    inners: list[Inner]
    maybe_inner: Inner | None


def array_forms(**overrides: Any) -> ArrayForms:
    values: dict[str, Any] = {
        "bare": np.arange(6, dtype=np.int32).reshape(2, 3),
        "f32": np.linspace(0, 1, 5, dtype=np.float32),
        "u8": np.arange(12, dtype=np.uint8).reshape(3, 4),
        "opt": np.array([True, False]),
        "opt_i64": np.array([-(2**63), 2**63 - 1], dtype=np.int64),
        "opt_typed": np.array([3.5, -1.0]),
    }
    values.update(overrides)
    return ArrayForms(**values)


def outer() -> Outer:
    return Outer(
        inner=Inner(np.arange(3, dtype=np.int16), "a"),
        inners=[Inner(np.arange(2, dtype=np.int16), "b"), Inner(np.zeros(0, np.int16), "c")],
        by_key={"x": Inner(np.full((2, 2), -1, np.int16), "d")},
        maybe=None,
        note="outer",
    )


# ---------------------------------------------------------------------------- the type itself


def test_packable_makes_a_dataclass_with_fields_in_declaration_order() -> None:
    assert dataclasses.is_dataclass(Primitives)
    assert [f.name for f in dataclasses.fields(Primitives)] == [
        "text",
        "count",
        "score",
        "flag",
        "blob",
    ]
    assert issubclass(Primitives, PackableSample)
    assert Primitives.__name__ == "Primitives"
    s = Primitives("t", 1, 2.0, True, b"x")
    assert (s.text, s.count, s.score, s.flag, s.blob) == ("t", 1, 2.0, True, b"x")
    assert isinstance(s, atdata.Packable)


def test_packable_keeps_methods_and_docstring() -> None:
    @atdata.packable
    class Documented:
        """Some docs."""

        x: int

        def doubled(self) -> int:
            return 2 * self.x

    assert Documented.__doc__ == "Some docs."
    assert Documented(x=4).doubled() == 8
    assert Documented.from_bytes(Documented(x=5).packed).doubled() == 10


def test_primitive_fields_round_trip_with_their_python_types() -> None:
    s = Primitives(text="héllo ✓", count=-(2**40), score=-0.25, flag=False, blob=b"\x00\xff")
    back = Primitives.from_bytes(s.packed)
    assert same(back, s)
    assert [type(getattr(back, n)) for n in ("text", "count", "score", "flag", "blob")] == [
        str,
        int,
        float,
        bool,
        bytes,
    ]


def test_every_ndarray_annotation_form_decodes_to_an_array() -> None:
    s = array_forms()
    back = ArrayForms.from_bytes(s.packed)
    for name in ("bare", "f32", "u8", "opt", "opt_i64", "opt_typed"):
        assert arrays_equal(getattr(back, name), getattr(s, name)), name


def test_optional_array_fields_accept_none() -> None:
    s = array_forms(opt=None, opt_i64=None, opt_typed=None)
    back = ArrayForms.from_bytes(s.packed)
    assert back.opt is None and back.opt_i64 is None and back.opt_typed is None
    assert arrays_equal(back.f32, s.f32)


def test_container_fields_round_trip() -> None:
    s = Containers(
        ints=[1, -2, 2**62],
        names=["a", "", "ü"],
        arrays=[np.zeros((2, 0)), np.array([7], dtype=np.int8), np.arange(3.0)],
        f32_arrays=[np.ones(2, np.float32)],
        scores={"a": 1.5, "b": float("inf")},
        by_name={"img": np.arange(8, dtype=np.uint8).reshape(2, 2, 2)},
        grid=[[1, 2], [], [3]],
        tags={"x": ["p", "q"], "y": []},
        maybe_ints=None,
        maybe_map={"t": True},
    )
    back = Containers.from_bytes(s.packed)
    assert same(back, s)


def test_nested_packable_types_round_trip() -> None:
    s = outer()
    back = Outer.from_bytes(s.packed)
    assert type(back.inner) is Inner and type(back.inners[0]) is Inner
    assert type(back.by_key["x"]) is Inner
    assert same(back, s)
    with_inner = dataclasses.replace(s, maybe=Inner(np.ones(1, np.int16), "m"))
    assert same(Outer.from_bytes(with_inner.packed), with_inner)


def test_declared_dtype_is_enforced_when_packing() -> None:
    s = array_forms(f32=np.zeros(3, dtype=np.float64))
    with pytest.raises(SampleError) as info:
        _ = s.packed
    assert info.value.field == "f32"
    assert "f32" in str(info.value)


@pytest.mark.parametrize("field", ["bare", "f32", "opt", "opt_typed"])
def test_zero_dimensional_arrays_keep_their_shape(field: str) -> None:
    value = np.array(2.5, dtype=np.float32 if field == "f32" else np.float64)
    back = getattr(ArrayForms.from_bytes(array_forms(**{field: value}).packed), field)
    assert back.shape == ()
    assert arrays_equal(back, value)


def test_zero_dimensional_arrays_in_containers_keep_their_shape() -> None:
    s = Inner(v=np.array(3, dtype=np.int16), label="0-d")
    back = Outer.from_bytes(dataclasses.replace(outer(), inner=s, inners=[s]).packed)
    assert back.inner.v.shape == () and back.inners[0].v.shape == ()


def test_bare_ndarray_keeps_any_dtype() -> None:
    for dtype in ("<f2", ">i4", "|b1", "<c16", "<U3", "|S2", "<M8[ms]"):
        arr = np.zeros((2,), dtype=dtype)
        back = ArrayForms.from_bytes(array_forms(bare=arr).packed).bare
        assert arrays_equal(back, arr), dtype


def test_default_values_are_used_when_fields_are_omitted() -> None:
    s = WithDefaults("n")
    assert (s.count, s.maybe, s.tags) == (7, None, [])
    assert same(WithDefaults.from_bytes(s.packed), s)
    assert same(WithDefaults.from_data({"name": "n"}), s)


# ---------------------------------------------------------------------------- NumPy scalars


def test_numpy_scalars_are_accepted_and_packed_like_python_values() -> None:
    np_values = Primitives(
        text=np.str_("x"),
        count=np.int64(-3),
        score=np.float32(0.5),
        flag=np.bool_(True),
        blob=b"b",
    )
    py_values = Primitives(text="x", count=-3, score=0.5, flag=True, blob=b"b")
    assert np_values.packed == py_values.packed
    back = Primitives.from_bytes(np_values.packed)
    assert same(back, py_values)


@pytest.mark.parametrize(
    "value", [np.int8(-5), np.uint16(65535), np.int32(7), np.uint64(2**40), np.intc(3)]
)
def test_every_numpy_integer_type_is_an_int(value: Any) -> None:
    s = Primitives("t", value, 1.0, True, b"")
    assert Primitives.from_bytes(s.packed).count == int(value)


def test_numpy_scalars_inside_containers() -> None:
    s = Containers(
        ints=[np.int16(1), np.uint8(2)],
        names=[np.str_("n")],
        arrays=[],
        f32_arrays=[],
        scores={"a": np.float64(0.5), "b": np.float16(2.0)},
        by_name={},
        grid=[[np.int64(9)]],
        tags={},
        maybe_ints=[np.int32(4)],
        maybe_map={"t": np.bool_(False)},
    )
    back = Containers.from_bytes(s.packed)
    assert back.ints == [1, 2] and back.grid == [[9]] and back.maybe_ints == [4]
    assert back.scores == {"a": 0.5, "b": 2.0} and back.maybe_map == {"t": False}
    assert all(type(v) is float for v in back.scores.values())


def test_numpy_scalars_in_from_data_become_python_values() -> None:
    s = Primitives.from_data(
        {
            "text": "t",
            "count": np.int64(3),
            "score": np.float32(1.5),
            "flag": np.bool_(True),
            "blob": b"",
        }
    )
    assert same(s, Primitives("t", 3, 1.5, True, b""))


# ---------------------------------------------------------------------------- from_data / from_bytes


def test_from_data_builds_the_same_sample_as_the_constructor() -> None:
    s = outer()
    data = {
        "inner": {"v": s.inner.v, "label": "a"},
        "inners": [{"v": s.inners[0].v, "label": "b"}, s.inners[1]],
        "by_key": {"x": {"v": s.by_key["x"].v, "label": "d"}},
        "maybe": None,
        "note": "outer",
    }
    assert same(Outer.from_data(data), s)


@pytest.mark.parametrize("encode", [npy, compact], ids=["npy", "compact"])
def test_from_data_and_constructor_accept_encoded_arrays(encode: Any) -> None:
    arr = np.arange(6, dtype=np.float32).reshape(3, 2)
    s = array_forms()
    data = {f.name: getattr(s, f.name) for f in dataclasses.fields(ArrayForms)}
    data["f32"] = encode(arr)
    assert arrays_equal(ArrayForms.from_data(data).f32, arr)
    assert arrays_equal(ArrayForms(**data).f32, arr)


def test_from_data_rejects_missing_and_unknown_fields_by_name() -> None:
    with pytest.raises(SampleError) as info:
        Primitives.from_data({"text": "t", "score": 1.0, "flag": True, "blob": b""})
    assert info.value.field == "count" and "count" in str(info.value)
    with pytest.raises(SampleError) as info:
        Primitives.from_data(
            {"text": "t", "count": 1, "score": 1.0, "flag": True, "blob": b"", "nope": 1}
        )
    assert "nope" in str(info.value)


def test_from_data_leaves_missing_optional_fields_as_none() -> None:
    s = Containers.from_data(
        {
            "ints": [],
            "names": [],
            "arrays": [],
            "f32_arrays": [],
            "scores": {},
            "by_name": {},
            "grid": [],
            "tags": {},
        }
    )
    assert s.maybe_ints is None and s.maybe_map is None


def test_from_bytes_of_packed_is_a_new_equal_sample_with_independent_arrays() -> None:
    s = array_forms()
    back = ArrayForms.from_bytes(s.packed)
    back.f32[0] = 99.0  # decoded arrays are writable copies, not views of the payload
    assert s.f32[0] == 0.0
    assert ArrayForms.from_bytes(s.packed).f32[0] == 0.0


# ---------------------------------------------------------------------------- as_wds


def test_as_wds_is_a_webdataset_sample_with_key_and_msgpack() -> None:
    s = outer()
    wds_sample = s.as_wds
    assert set(wds_sample) == {"__key__", "msgpack"}
    assert wds_sample["msgpack"] == s.packed
    key = wds_sample["__key__"]
    assert isinstance(key, str) and key and "." not in key
    assert s.as_wds["__key__"] != key


def test_as_wds_with_webdataset_tarwriter_as_the_seeds_do(tmp_path: Any) -> None:
    samples = [array_forms(u8=np.full((3, 4), i, np.uint8)) for i in range(5)]
    path = tmp_path / "seed.tar"
    with wds.writer.TarWriter(str(path)) as sink:
        for i, s in enumerate(samples):
            sink.write({**s.as_wds, "__key__": f"{i:06d}"})
    assert tar_payloads(path) == [(f"{i:06d}.msgpack", s.packed) for i, s in enumerate(samples)]
    back = list(atdata.Dataset[ArrayForms](str(path)))
    assert len(back) == 5 and all(same(a, b) for a, b in zip(back, samples))


# ---------------------------------------------------------------------------- unsupported types


@pytest.mark.parametrize(
    "annotation",
    [set[int], int | str, list, dict, dict[int, str], complex, object, tuple[int, int]],
    ids=lambda a: repr(a),
)
def test_unsupported_field_types_raise_schema_error(annotation: Any) -> None:
    with pytest.raises(SchemaError):
        Bad = atdata.packable(type("Bad", (), {"__annotations__": {"x": annotation}}))
        Bad.from_bytes(msgpack.packb({"x": 1}))


# ---------------------------------------------------------------------------- DictSample


def test_dict_sample_attribute_and_item_access() -> None:
    d = DictSample(name="a", value=1)
    assert d.name == "a" and d["value"] == 1
    assert "name" in d and "other" not in d
    assert d.keys() == ["name", "value"]
    assert d.get("other", 5) == 5
    with pytest.raises(AttributeError, match="name"):
        d.other  # noqa: B018 - the error lists the available fields
    with pytest.raises(KeyError):
        d["other"]


def test_dict_sample_to_dict_is_a_copy() -> None:
    d = DictSample({"a": 1}, b=2)
    out = d.to_dict()
    assert out == {"a": 1, "b": 2}
    out["a"] = 100
    assert d.a == 1


def test_dict_sample_decodes_typed_payloads_with_arrays() -> None:
    s = outer()
    d = DictSample.from_bytes(s.packed)
    assert d.keys() == ["inner", "inners", "by_key", "maybe", "note"]
    assert arrays_equal(d.inner["v"], s.inner.v)
    assert arrays_equal(d.inners[1]["v"], s.inners[1].v)
    assert d.maybe is None and d.note == "outer"


def test_dict_sample_packs_like_msgpack_of_its_fields() -> None:
    arr = np.arange(4, dtype=np.uint16)
    d = DictSample(x=arr, label="l", n=np.int64(3))
    assert d.packed == msgpack.packb({"x": npy(arr), "label": "l", "n": 3}, use_bin_type=True)
    back = DictSample.from_bytes(d.packed)
    assert arrays_equal(back.x, arr) and back.label == "l" and back.n == 3
    assert set(d.as_wds) == {"__key__", "msgpack"} and "." not in d.as_wds["__key__"]


# ---------------------------------------------------------------------------- property-based round trips

ARRAY_DTYPES = st.one_of(
    hnp.scalar_dtypes(),
    hnp.byte_string_dtypes(max_len=4),
    hnp.unicode_string_dtypes(max_len=4),
)
SHAPES = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)
any_array = ARRAY_DTYPES.flatmap(lambda dt: hnp.arrays(dt, SHAPES))
f32_array = hnp.arrays(np.float32, SHAPES)
int16_array = hnp.arrays(np.int16, SHAPES)
int64s = st.integers(min_value=-(2**63), max_value=2**63 - 1)
floats = st.floats(allow_nan=True, allow_infinity=True)
text = st.text()
keys = st.text(alphabet=string.ascii_letters + "é_✓", max_size=6)
inner = st.builds(Inner, v=int16_array, label=text)

everything = st.builds(
    Everything,
    s=text,
    i=int64s,
    f=floats,
    b=st.booleans(),
    raw=st.binary(),
    arr=any_array,
    arr32=f32_array,
    maybe_arr=st.none() | any_array,
    opt_int=st.none() | int64s,
    ints=st.lists(int64s, max_size=5),
    nested=st.lists(st.lists(floats, max_size=3), max_size=3),
    arrays=st.lists(any_array, max_size=3),
    by_name=st.dictionaries(keys, text, max_size=4),
    deep=st.dictionaries(
        keys, st.lists(st.dictionaries(keys, int64s, max_size=2), max_size=2), max_size=2
    ),
    inner=inner,
    inners=st.lists(inner, max_size=2),
    maybe_inner=st.none() | inner,
)

HYPO = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@HYPO
@given(everything)
def test_property_from_bytes_of_packed_is_identical(sample: Everything) -> None:
    back = Everything.from_bytes(sample.packed)
    assert same(back, sample)
    assert back.packed == sample.packed


@HYPO
@given(everything)
def test_property_from_data_round_trip(sample: Everything) -> None:
    data = {f.name: getattr(sample, f.name) for f in dataclasses.fields(Everything)}
    assert same(Everything.from_data(data), sample)


@HYPO
@given(everything)
def test_property_dict_sample_reads_every_typed_payload(sample: Everything) -> None:
    d = DictSample.from_bytes(sample.packed)
    assert d.keys() == [f.name for f in dataclasses.fields(Everything)]
    assert same(d.arr, sample.arr) and same(d.i, sample.i) and same(d.f, sample.f)
    assert same(d.s, sample.s) and same(d.opt_int, sample.opt_int)
    assert all(same(a, b) for a, b in zip(d.arrays, sample.arrays, strict=True))
    assert same(d.inner["v"], sample.inner.v)


@HYPO
@given(any_array)
def test_property_arrays_of_any_dtype_and_shape(arr: np.ndarray) -> None:
    s = array_forms(bare=arr)
    back = ArrayForms.from_bytes(s.packed).bare
    assert arrays_equal(back, arr)
    assert back.shape == arr.shape and back.dtype.str == arr.dtype.str


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(everything, min_size=1, max_size=4))
def test_property_round_trip_through_a_shard(samples: list[Everything]) -> None:
    with tempfile.TemporaryDirectory() as d:
        ds = atdata.write_samples(samples, Path(d) / "prop.tar")
        back = list(ds)
        assert len(back) == len(samples)
        assert all(same(a, b) for a, b in zip(back, samples, strict=True))
        via_dict = list(atdata.Dataset(ds.list_shards()).as_type(Everything))
        assert all(same(a, b) for a, b in zip(via_dict, samples, strict=True))
