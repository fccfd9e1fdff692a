"""The wire format, byte for byte: tar members, msgpack maps, ``.npy`` arrays, keys.

Expected bytes come from independent encoders (``msgpack.packb`` with
``use_bin_type=True`` and ``np.save``), as the existing atdata writes them.
"""

import ast
import io
import multiprocessing
import os
import pickle
import struct
import tarfile
from pathlib import Path
from typing import Any

import hypothesis.extra.numpy as hnp
import msgpack
import numpy as np
import pytest
import webdataset as wds
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import atdata
from atdata import DictSample, SampleError
from helpers import (
    arrays_equal,
    compact,
    npy,
    pack,
    private_atdata_home,  # noqa: F401 - autouse fixture
    same,
    tar_payloads,
    unpack_pairs,
    write_wds,
)


@atdata.packable
class ImageSample:
    image: NDArray
    label: str
    confidence: float


@atdata.packable
class Mixed:
    name: str
    count: int
    ratio: float
    ok: bool
    raw: bytes
    arr: NDArray
    maybe: NDArray | None
    ints: list[int]
    weights: dict[str, float]
    arrays: list[NDArray]


@atdata.packable
class Point:
    xy: NDArray[np.float32]
    tag: str


@atdata.packable
class Shape:
    points: list[Point]
    centre: Point
    named: dict[str, Point]
    hole: Point | None


# sixteen fields and more need a map16 header
Wide = atdata.packable(type("Wide", (), {"__annotations__": {f"f{i:02d}": int for i in range(20)}}))


@atdata.packable
class F32:
    x: NDArray[np.float32]


@atdata.packable
class AnyArray:
    x: NDArray


def header_of(blob: bytes) -> tuple[int, int, bytes]:
    """(major, minor, header text) of a .npy blob."""
    assert blob[:6] == b"\x93NUMPY"
    major, minor = blob[6], blob[7]
    if major == 1:
        (hlen,) = struct.unpack("<H", blob[8:10])
        return major, minor, blob[10 : 10 + hlen]
    (hlen,) = struct.unpack("<I", blob[8:12])
    return major, minor, blob[12 : 12 + hlen]


# ---------------------------------------------------------------------------- payload maps


def test_packed_is_exactly_the_reference_msgpack_encoding() -> None:
    image = np.random.default_rng(0).random((4, 5, 3)).astype(np.float32)
    s = ImageSample(image=image, label="cat", confidence=0.95)
    assert s.packed == pack({"image": npy(image), "label": "cat", "confidence": 0.95})


def test_every_value_kind_encodes_like_msgpack_python() -> None:
    arr = np.arange(12, dtype=">i2").reshape(3, 4)
    s = Mixed(
        name="ünïcode",
        count=-(2**63),
        ratio=float("nan"),
        ok=True,
        raw=b"\x00\x01",
        arr=arr,
        maybe=None,
        ints=[0, 127, 128, -33, 2**32, 2**63 - 1],
        weights={"b": 1.0, "a": -0.0},
        arrays=[np.zeros(0, np.uint8), np.ones((1, 2), np.complex64)],
    )
    expected = pack(
        {
            "name": "ünïcode",
            "count": -(2**63),
            "ratio": float("nan"),
            "ok": True,
            "raw": b"\x00\x01",
            "arr": npy(arr),
            "maybe": None,
            "ints": [0, 127, 128, -33, 2**32, 2**63 - 1],
            "weights": {"b": 1.0, "a": -0.0},
            "arrays": [npy(np.zeros(0, np.uint8)), npy(np.ones((1, 2), np.complex64))],
        }
    )
    assert s.packed == expected


def test_numpy_scalar_values_encode_as_plain_msgpack_numbers() -> None:
    s = Mixed(
        "n", np.int32(5), np.float32(0.1), np.bool_(False), b"", np.zeros(1), None, [], {}, []
    )
    expected = pack(
        {
            "name": "n",
            "count": 5,
            "ratio": float(np.float32(0.1)),  # float64 on the wire, as Python floats are
            "ok": False,
            "raw": b"",
            "arr": npy(np.zeros(1)),
            "maybe": None,
            "ints": [],
            "weights": {},
            "arrays": [],
        }
    )
    assert s.packed == expected


def test_fields_are_in_declaration_order() -> None:
    s = Mixed("n", 1, 0.5, True, b"", np.zeros(1), np.ones(1), [1], {"k": 1.0}, [])
    assert [k for k, _ in unpack_pairs(s.packed)] == [
        "name",
        "count",
        "ratio",
        "ok",
        "raw",
        "arr",
        "maybe",
        "ints",
        "weights",
        "arrays",
    ]


def test_nested_samples_are_maps_in_declaration_order() -> None:
    p = Point(np.array([1, 2], np.float32), "p")
    s = Shape(points=[p, p], centre=p, named={"n": p}, hole=None)
    p_map = {"xy": npy(p.xy), "tag": "p"}
    assert s.packed == pack(
        {"points": [p_map, p_map], "centre": p_map, "named": {"n": p_map}, "hole": None}
    )


def test_wide_types_use_a_map16_header() -> None:
    s = Wide(**{f"f{i:02d}": i * 1000 for i in range(20)})
    assert s.packed[:1] == b"\xde"
    assert s.packed == pack({f"f{i:02d}": i * 1000 for i in range(20)})


@pytest.mark.parametrize("n", [0, 127, 128, 1000, 70_000], ids=lambda n: f"{n}B")
def test_bin8_bin16_bin32_array_values(n: int) -> None:
    arr = np.zeros(n, np.uint8)
    assert AnyArray(x=arr).packed == pack({"x": npy(arr)})


# ---------------------------------------------------------------------------- .npy arrays


@pytest.mark.parametrize(
    "arr",
    [
        np.arange(6, dtype="<f4").reshape(2, 3),
        np.arange(6, dtype=">i8"),
        np.array(True),
        np.zeros((0, 3), "<u2"),
        np.array(["ab", "c"], dtype="<U2"),
        np.array([b"xy"], dtype="|S2"),
        np.array([1 + 2j], dtype="<c16"),
        np.array(["2020-01-01"], dtype="<M8[D]"),
    ],
    ids=lambda a: f"{a.dtype.str}{a.shape}",
)
def test_array_values_are_standard_npy_1_0_files(arr: np.ndarray) -> None:
    (k, blob) = unpack_pairs(AnyArray(x=arr).packed)[0]
    assert k == "x" and isinstance(blob, bytes)
    assert blob[:8] == b"\x93NUMPY\x01\x00"
    _, _, text = header_of(blob)
    assert (10 + len(text)) % 64 == 0 and text.endswith(b"\n")
    meta = ast.literal_eval(text.decode("latin1"))
    assert meta == {"descr": arr.dtype.str, "fortran_order": False, "shape": arr.shape}
    loaded = np.load(io.BytesIO(blob), allow_pickle=False)
    assert arrays_equal(loaded, arr)
    assert blob == npy(arr)


@pytest.mark.parametrize(
    "dtype",
    [
        "<f4",
        "|u1",
        "<U12",
        [("position", "<f8", (3,)), ("velocity", "<f8", (3,))],
        [("x", "<f4"), ("y", "<f4")],
    ],
    ids=str,
)
@pytest.mark.parametrize("ndim", [1, 4, 12, 15, 18, 21, 25, 32])
def test_npy_header_is_padded_exactly_as_np_save_pads_it(dtype: Any, ndim: int) -> None:
    arr = np.zeros((2,) + (1,) * (ndim - 1), dtype=dtype)
    blob = unpack_pairs(AnyArray(x=arr).packed)[0][1]
    assert header_of(blob) == header_of(npy(arr))
    assert blob == npy(arr)


def test_fortran_ordered_input_is_written_in_c_order() -> None:
    arr = np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4))
    assert arr.flags.f_contiguous and not arr.flags.c_contiguous
    blob = unpack_pairs(AnyArray(x=arr).packed)[0][1]
    meta = ast.literal_eval(header_of(blob)[2].decode("latin1"))
    assert meta["fortran_order"] is False and meta["shape"] == (3, 4)
    assert blob == npy(np.ascontiguousarray(arr))
    assert blob.endswith(np.ascontiguousarray(arr).tobytes())
    assert arrays_equal(AnyArray.from_bytes(AnyArray(x=arr).packed).x, np.ascontiguousarray(arr))


def test_strided_views_are_written_as_their_values() -> None:
    base = np.arange(40, dtype=np.float64).reshape(5, 8)
    view = base[::2, 1::3]
    assert AnyArray(x=view).packed == pack({"x": npy(np.ascontiguousarray(view))})


def test_reader_accepts_fortran_ordered_npy() -> None:
    arr = np.asfortranarray(np.arange(6, dtype="<i2").reshape(2, 3))
    blob = npy(arr)
    assert b"'fortran_order': True" in blob
    back = AnyArray.from_bytes(pack({"x": blob})).x
    assert arrays_equal(back, np.ascontiguousarray(arr))


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_reader_accepts_npy_versions(version: tuple[int, int]) -> None:
    arr = np.arange(10, dtype="<f8").reshape(2, 5)
    blob = npy(arr, version)
    assert blob[6:8] == bytes(version)
    assert arrays_equal(AnyArray.from_bytes(pack({"x": blob})).x, arr)
    assert arrays_equal(DictSample.from_bytes(pack({"x": blob})).x, arr)


def test_reader_accepts_npy_3_0_with_utf8_field_names() -> None:
    arr = np.zeros(3, dtype=[("größe", "<f4"), ("名前", "<i4")])
    blob = npy(arr, (3, 0))
    assert blob[6] == 3
    assert arrays_equal(AnyArray.from_bytes(pack({"x": blob})).x, arr)


@pytest.mark.parametrize(
    "arr",
    [
        np.arange(6, dtype="<f4").reshape(2, 3),
        np.arange(5, dtype=">i8"),
        np.array(7, dtype="<i4"),
        np.zeros((3, 0, 2), dtype="|u1"),
        np.array([True, False]),
        np.array(["abc"], dtype="<U3"),
        np.ones((2, 2), dtype="<c8"),
    ],
    ids=lambda a: f"{a.dtype.str}{a.shape}",
)
def test_reader_accepts_the_compact_array_layout(arr: np.ndarray, tmp_path: Path) -> None:
    payload = pack({"x": compact(arr)})
    assert arrays_equal(AnyArray.from_bytes(payload).x, arr)
    shard = write_wds(tmp_path / "compact.tar", [("k0", payload)])
    (back,) = list(atdata.Dataset[AnyArray](shard))
    assert arrays_equal(back.x, arr)
    (via_dict,) = list(atdata.Dataset(shard).as_type(AnyArray))
    assert arrays_equal(via_dict.x, arr)


def test_compact_layout_with_declared_dtype() -> None:
    arr = np.linspace(0, 1, 4, dtype=np.float32)
    assert arrays_equal(F32.from_bytes(pack({"x": compact(arr)})).x, arr)


# ---------------------------------------------------------------------------- no pickles, ever


class _CreatesFile:
    """Unpickling this object creates (opens for writing) the file at ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def pickled_npy(path: Path) -> bytes:
    arr = np.empty(1, dtype=object)
    arr[0] = _CreatesFile(str(path))
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def test_the_crafted_pickle_is_live(tmp_path: Path) -> None:
    """The payload the next test feeds to atdata really runs code when NumPy unpickles it."""
    canary = tmp_path / "canary"
    np.load(io.BytesIO(pickled_npy(canary)), allow_pickle=True)
    assert canary.exists()


READERS = {
    "from_bytes": lambda payload, shard, blob: AnyArray.from_bytes(payload),
    "typed_dataset": lambda payload, shard, blob: list(atdata.Dataset[AnyArray](shard)),
    "dict_dataset": lambda payload, shard, blob: list(atdata.Dataset(shard)),
    "dict_from_bytes": lambda payload, shard, blob: DictSample.from_bytes(payload),
    "as_type": lambda payload, shard, blob: list(atdata.Dataset(shard).as_type(AnyArray)),
    "from_data": lambda payload, shard, blob: AnyArray.from_data({"x": blob}),
    "constructor": lambda payload, shard, blob: AnyArray(x=blob),
    "batched": lambda payload, shard, blob: list(
        atdata.Dataset[AnyArray](shard).ordered(batch_size=4)
    ),
}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_pickled_npy_is_refused_and_never_executed(reader: str, tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    blob = pickled_npy(target)
    payload = pack({"x": blob})
    shard = write_wds(tmp_path / "evil.tar", [("evil0", payload)])
    with pytest.raises(SampleError) as info:
        READERS[reader](payload, shard, blob)
    assert "object" in str(info.value).lower() or "pickle" in str(info.value).lower()
    assert not target.exists()


def test_pickle_error_names_the_field_and_the_sample(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    shard = write_wds(tmp_path / "evil.tar", [("evil0", pack({"x": pickled_npy(target)}))])
    with pytest.raises(SampleError) as info:
        list(atdata.Dataset[AnyArray](shard))
    assert "evil0" in str(info.value) and "'x'" in str(info.value)
    assert not target.exists()


def test_compact_layout_with_object_dtype_is_refused() -> None:
    blob = bytes([2]) + b"|O" + bytes([1]) + struct.pack("<q", 1) + pickle.dumps([1])[:8]
    with pytest.raises(SampleError, match="object"):
        AnyArray.from_bytes(pack({"x": blob}))


def test_object_arrays_are_refused_when_writing() -> None:
    arr = np.array([1, "a", None], dtype=object)
    with pytest.raises(SampleError) as info:
        _ = AnyArray(x=arr).packed
    assert info.value.field == "x"
    with pytest.raises(SampleError):
        _ = Mixed("n", 1, 0.5, True, b"", np.zeros(1), None, [], {}, [arr]).packed


def test_dict_sample_refuses_to_write_object_arrays() -> None:
    with pytest.raises(ValueError, match="object"):
        _ = DictSample(x=np.array([{"a": 1}], dtype=object)).packed


# ---------------------------------------------------------------------------- tar members and keys


def test_one_member_per_sample_named_key_dot_msgpack(tmp_path: Path) -> None:
    samples = [Point(np.full(2, i, np.float32), f"p{i}") for i in range(7)]
    ds = atdata.write_samples(samples, tmp_path / "pts.tar")
    members = tar_payloads(ds.list_shards()[0])
    assert len(members) == 7
    for (name, payload), s in zip(members, samples, strict=True):
        key, ext = name.split(".", 1)
        assert ext == "msgpack" and key
        assert payload == s.packed
    assert len({name for name, _ in members}) == 7


def test_our_tar_files_are_plain_regular_file_members(tmp_path: Path) -> None:
    ds = atdata.write_samples([Point(np.zeros(2, np.float32), "p")] * 3, tmp_path / "x.tar")
    path = ds.list_shards()[0]
    with tarfile.open(path) as tar:
        infos = tar.getmembers()
    assert [i.isreg() for i in infos] == [True] * 3
    assert os.path.getsize(path) % 512 == 0


def test_webdataset_reads_our_shards(tmp_path: Path) -> None:
    samples = [Point(np.full(2, i, np.float32), f"p{i}") for i in range(25)]
    ds = atdata.write_samples(samples, tmp_path / "w.tar", maxcount=10)
    read = list(wds.WebDataset(ds.list_shards(), shardshuffle=False))
    assert [r["msgpack"] for r in read] == [s.packed for s in samples]
    ours = [name.split(".")[0] for shard in ds.list_shards() for name, _ in tar_payloads(shard)]
    assert [r["__key__"] for r in read] == ours
    assert len(read) == 25
    assert all(same(Point.from_bytes(r["msgpack"]), s) for r, s in zip(read, samples, strict=True))


def test_long_keys_survive_in_tarfile_webdataset_and_atdata(tmp_path: Path) -> None:
    key = "k" * 150
    writer = atdata.ShardWriter(str(tmp_path / "long.tar"))
    with writer:
        writer.write(Point(np.ones(2, np.float32), "long"), key=key)
    path = writer.shards[0]
    assert tar_payloads(path)[0][0] == key + ".msgpack"
    (record,) = list(wds.WebDataset(path, shardshuffle=False))
    assert record["__key__"] == key
    (back,) = list(atdata.Dataset[Point](path))
    assert back.tag == "long"


def _keys_in_child(n: int) -> list[str]:
    s = Point(np.zeros(1, np.float32), "k")
    return [s.as_wds["__key__"] for _ in range(n)] + [DictSample(a=1).as_wds["__key__"]]


def test_default_keys_are_unique_across_forked_processes_and_have_no_dots() -> None:
    ctx = multiprocessing.get_context("fork")
    here = _keys_in_child(500)
    with ctx.Pool(4) as pool:
        results = pool.map(_keys_in_child, [500] * 8)
    keys = here + [k for r in results for k in r]
    assert len(keys) == 9 * 501
    assert len(set(keys)) == len(keys)
    assert all(k and "." not in k and "/" not in k for k in keys)


# ---------------------------------------------------------------------------- old writers


def test_payloads_of_the_existing_atdata_are_read(tmp_path: Path) -> None:
    """The seed-era writer: msgpack-python defaults, ``np.save(allow_pickle=True)`` arrays,
    and plain Python values as given (an int where a float is declared)."""
    image = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    buf = io.BytesIO()
    np.save(buf, image, allow_pickle=True)
    payload = msgpack.packb({"image": buf.getvalue(), "label": "dog", "confidence": 1})
    shard = write_wds(tmp_path / "old.tar", [("000000", payload)])
    (s,) = list(atdata.Dataset[ImageSample](shard))
    assert arrays_equal(s.image, image) and s.label == "dog"
    assert s.confidence == 1.0 and type(s.confidence) is float


# ---------------------------------------------------------------------------- properties

PLAIN_DTYPES = st.one_of(
    hnp.boolean_dtypes(),
    hnp.integer_dtypes(),
    hnp.unsigned_integer_dtypes(),
    hnp.floating_dtypes(),
    hnp.complex_number_dtypes(),
    hnp.byte_string_dtypes(max_len=3),
    hnp.unicode_string_dtypes(max_len=3),
)
small_arrays = PLAIN_DTYPES.flatmap(
    lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=3))
)


@settings(max_examples=200, deadline=None)
@given(
    small_arrays,
    st.text(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.booleans(),
    st.binary(),
    st.none() | small_arrays,
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=4),
    st.dictionaries(st.text(max_size=4), st.floats(), max_size=3),
    st.lists(small_arrays, max_size=3),
)
def test_property_packed_equals_reference_encoding(
    arr: np.ndarray,
    name: str,
    count: int,
    ratio: float,
    ok: bool,
    raw: bytes,
    maybe: np.ndarray | None,
    ints: list[int],
    weights: dict[str, float],
    arrays: list[np.ndarray],
) -> None:
    s = Mixed(name, count, ratio, ok, raw, arr, maybe, ints, weights, arrays)
    reference = pack(
        {
            "name": name,
            "count": count,
            "ratio": ratio,
            "ok": ok,
            "raw": raw,
            "arr": npy(arr),
            "maybe": None if maybe is None else npy(maybe),
            "ints": ints,
            "weights": weights,
            "arrays": [npy(a) for a in arrays],
        }
    )
    assert s.packed == reference


@settings(max_examples=200, deadline=None)
@given(small_arrays)
def test_property_written_arrays_load_with_numpy_without_pickle(arr: np.ndarray) -> None:
    blob = unpack_pairs(AnyArray(x=arr).packed)[0][1]
    assert arrays_equal(np.load(io.BytesIO(blob), allow_pickle=False), arr)


@settings(max_examples=200, deadline=None)
@given(small_arrays)
def test_property_compact_and_npy_decode_alike(arr: np.ndarray) -> None:
    from_compact = AnyArray.from_bytes(pack({"x": compact(arr)})).x
    from_npy = AnyArray.from_bytes(pack({"x": npy(arr)})).x
    assert arrays_equal(from_compact, arr) and arrays_equal(from_npy, arr)
