"""Bad input: truncated and corrupt shards, bad members, bad payloads, missing and empty shards.

Every failure is an ``atdata`` error that says where: the shard and byte offset
(``ShardError``) or the sample key and field (``SampleError``). Nothing is coerced.
"""

import io
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import webdataset as wds
from numpy.typing import NDArray

import atdata
from atdata import SampleError, ShardError
from helpers import (
    BytesSource,
    npy,
    pack,
    private_atdata_home,  # noqa: F401 - autouse fixture
    serve_directory,
    write_tar,
    write_wds,
)


@atdata.packable
class Feature:
    features: NDArray[np.float32]
    label: int


@atdata.packable
class Point:
    xy: NDArray[np.float32]
    tag: str


@atdata.packable
class Strict:
    n: int
    f: float
    b: bool
    s: str
    raw: bytes
    x32: NDArray[np.float32]
    ints: list[int]
    names: dict[str, str]
    point: Point
    opt: int | None = None


def feature(i: int) -> Feature:
    # 200 float32 values: each payload spans two tar blocks
    return Feature(features=np.full(200, i, np.float32), label=i)


def strict_values() -> dict[str, Any]:
    return {
        "n": 1,
        "f": 0.5,
        "b": True,
        "s": "s",
        "raw": b"r",
        "x32": np.zeros(2, np.float32),
        "ints": [1, 2],
        "names": {"a": "b"},
        "point": Point(np.zeros(2, np.float32), "p"),
        "opt": None,
    }


def strict_wire() -> dict[str, Any]:
    """The payload map of ``Strict(**strict_values())`` built by hand."""
    return {
        "n": 1,
        "f": 0.5,
        "b": True,
        "s": "s",
        "raw": b"r",
        "x32": npy(np.zeros(2, np.float32)),
        "ints": [1, 2],
        "names": {"a": "b"},
        "point": {"xy": npy(np.zeros(2, np.float32)), "tag": "p"},
        "opt": None,
    }


@pytest.fixture(params=["atdata writer", "webdataset writer"])
def shard(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A shard of six ``Feature`` samples (the webdataset writer adds PAX headers)."""
    samples = [feature(i) for i in range(6)]
    if request.param == "atdata writer":
        ds = atdata.write_samples(samples, tmp_path / "good.tar")
        return Path(ds.list_shards()[0])
    return Path(
        write_wds(tmp_path / "good.tar", [(f"k{i}", s.packed) for i, s in enumerate(samples)])
    )


def members(path: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return tar.getmembers()


def cut_points(path: Path) -> dict[str, int]:
    """Interesting places to cut a shard, by name."""
    infos = members(path)
    m1, last = infos[1], infos[-1]
    return {
        "empty file": 0,
        "inside the first header": 100,
        "after the first header block": 512,
        "inside member data": m1.offset_data + 700,
        "at the end of member data": m1.offset_data + m1.size,
        "at a member boundary": m1.offset,
        "after a member header": m1.offset_data,
        "inside the last member": last.offset_data + 10,
        "before the end-of-archive blocks": last.offset_data + ((last.size + 511) // 512) * 512,
    }


CUTS = [
    "empty file",
    "inside the first header",
    "after the first header block",
    "inside member data",
    "at the end of member data",
    "at a member boundary",
    "after a member header",
    "inside the last member",
    "before the end-of-archive blocks",
]


def assert_shard_error(exc: ShardError, shard_id: str, limit: int | None = None) -> None:
    assert shard_id in str(exc)
    assert exc.shard == shard_id
    assert isinstance(exc.offset, int) and exc.offset >= 0
    assert "offset" in str(exc) and str(exc.offset) in str(exc)
    if limit is not None:
        assert exc.offset <= limit


# ---------------------------------------------------------------------------- truncated shards


@pytest.mark.parametrize("where", CUTS)
def test_truncated_local_shard_raises_shard_error(where: str, shard: Path, tmp_path: Path) -> None:
    cut = cut_points(shard)[where]
    bad = tmp_path / "cut.tar"
    bad.write_bytes(shard.read_bytes()[:cut])
    with pytest.raises(ShardError) as info:
        list(atdata.Dataset[Feature](str(bad)))
    assert_shard_error(info.value, str(bad), limit=cut)


@pytest.mark.parametrize("where", CUTS)
def test_truncated_streamed_shard_raises_shard_error(
    where: str, shard: Path, tmp_path: Path
) -> None:
    cut = cut_points(shard)[where]
    shard_id = str(tmp_path / "streamed-cut.tar")  # not on disk: the source hands out a stream
    src = BytesSource({shard_id: shard.read_bytes()[:cut]})
    with pytest.raises(ShardError) as info:
        list(atdata.Dataset[Feature](src))
    assert_shard_error(info.value, shard_id, limit=cut)


@pytest.mark.parametrize("where", ["inside member data", "at a member boundary"])
def test_truncated_shard_over_http_raises_shard_error(
    where: str, shard: Path, tmp_path: Path
) -> None:
    cut = cut_points(shard)[where]
    served = tmp_path / "served"
    served.mkdir()
    name = f"cut-{tmp_path.name}.tar"  # a URL no other test uses
    (served / name).write_bytes(shard.read_bytes()[:cut])
    with serve_directory(served) as url:
        with pytest.raises(ShardError) as info:
            list(atdata.Dataset[Feature](f"{url}/{name}"))
        assert_shard_error(info.value, f"{url}/{name}", limit=cut)


def test_skip_warns_about_a_truncated_shard_and_reads_the_rest(tmp_path: Path) -> None:
    first = atdata.write_samples([feature(i) for i in range(0, 5)], tmp_path / "a.tar")
    middle = atdata.write_samples([feature(i) for i in range(5, 10)], tmp_path / "b.tar")
    last = atdata.write_samples([feature(i) for i in range(10, 15)], tmp_path / "c.tar")
    bad = Path(middle.list_shards()[0])
    data = bad.read_bytes()
    bad.write_bytes(data[: members(bad)[2].offset_data + 100])
    paths = [first.list_shards()[0], str(bad), last.list_shards()[0]]
    ds = atdata.Dataset[Feature](paths, on_error="skip")
    with pytest.warns(UserWarning, match=r"b\.tar") as record:
        labels = [s.label for s in ds]
    assert any("offset" in str(w.message) for w in record)
    assert labels == [0, 1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14]
    with pytest.warns(UserWarning, match=r"b\.tar"):
        batched = [n for b in ds.ordered(batch_size=4) for n in b.label]
    assert batched == labels
    with pytest.warns(UserWarning, match=r"b\.tar"):
        shuffled = sorted(s.label for s in ds.shuffled(seed=0))
    assert shuffled == labels


# ---------------------------------------------------------------------------- corrupt headers


def _set(data: bytearray, pos: int, value: bytes) -> None:
    data[pos : pos + len(value)] = value


CORRUPTIONS = {
    "magic": lambda d, h, size: _set(d, h + 257, b"XXXXX"),
    "size not octal": lambda d, h, size: _set(d, h + 124, b"9"),
    "size changed": lambda d, h, size: _set(d, h + 124, b"%011o" % (size + 512)),
    "name changed": lambda d, h, size: _set(d, h, b"Z"),
    "checksum changed": lambda d, h, size: _set(d, h + 148, b"000001"),
    "type flag changed": lambda d, h, size: _set(d, h + 156, b"5"),
    "random block": lambda d, h, size: _set(d, h, np.random.default_rng(0).bytes(512)),
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
@pytest.mark.parametrize("reader", ["mmap", "stream"])
def test_corrupt_member_header_raises_at_its_offset(kind: str, reader: str, tmp_path: Path) -> None:
    ds = atdata.write_samples([feature(i) for i in range(4)], tmp_path / "ok.tar")
    path = Path(ds.list_shards()[0])
    info = members(path)[2]
    data = bytearray(path.read_bytes())
    CORRUPTIONS[kind](data, info.offset, info.size)
    bad = tmp_path / "corrupt.tar"
    bad.write_bytes(bytes(data))
    source: Any = str(bad) if reader == "mmap" else BytesSource({str(bad): bytes(data)})
    with pytest.raises(ShardError) as err:
        list(atdata.Dataset[Feature](source))
    assert_shard_error(err.value, str(bad))
    assert err.value.offset == info.offset


def test_a_file_that_is_not_a_tar_raises_at_offset_zero(tmp_path: Path) -> None:
    bad = tmp_path / "notes.tar"
    bad.write_bytes(b"this is not a tar archive\n" * 100)
    with pytest.raises(ShardError) as err:
        list(atdata.Dataset[Feature](str(bad)))
    assert_shard_error(err.value, str(bad))
    assert err.value.offset == 0


# ---------------------------------------------------------------------------- bad members and payloads


@pytest.mark.parametrize("name", ["k1.txt", "k1.json", "k1.msgpack.gz", "k1.npy", "k1"])
def test_a_member_that_is_not_msgpack_raises_sample_error(name: str, tmp_path: Path) -> None:
    path = write_tar(
        tmp_path / "mixed.tar",
        [("k0.msgpack", feature(0).packed), (name, b"data"), ("k2.msgpack", feature(2).packed)],
    )
    with pytest.raises(SampleError) as err:
        list(atdata.Dataset[Feature](path))
    assert "k1" in str(err.value) and name in str(err.value)
    with pytest.warns(UserWarning, match="k1"):
        labels = [s.label for s in atdata.Dataset[Feature](path, on_error="skip")]
    assert labels == [0, 2]


def _dataset_error(payload: bytes, tmp_path: Path, key: str = "bad-7") -> SampleError:
    path = write_wds(tmp_path / "bad.tar", [(key, payload)])
    with pytest.raises(SampleError) as err:
        list(atdata.Dataset[Strict](path))
    assert key in str(err.value)
    assert err.value.key == key
    return err.value


def test_missing_field_names_the_field_and_the_key(tmp_path: Path) -> None:
    wire = strict_wire()
    del wire["ints"]
    err = _dataset_error(pack(wire), tmp_path)
    assert err.field == "ints" and "ints" in str(err)


def test_missing_nested_field_names_the_field_and_the_key(tmp_path: Path) -> None:
    wire = strict_wire()
    del wire["point"]["tag"]
    err = _dataset_error(pack(wire), tmp_path)
    assert "tag" in str(err)


def test_extra_field_names_the_field_and_the_key(tmp_path: Path) -> None:
    wire = strict_wire()
    wire["surprise"] = 1
    err = _dataset_error(pack(wire), tmp_path)
    assert err.field == "surprise" and "surprise" in str(err)


WRONG_WIRE_VALUES = [
    ("n", "1"),
    ("n", 1.0),
    ("n", True),
    ("n", None),
    ("n", b"\x01"),
    ("f", "0.5"),
    ("f", True),
    ("f", None),
    ("b", 1),
    ("b", "true"),
    ("s", 1),
    ("s", b"s"),
    ("s", None),
    ("raw", "r"),
    ("raw", 1),
    ("x32", npy(np.zeros(2, np.float64))),
    ("x32", npy(np.zeros(2, np.int32))),
    ("x32", npy(np.zeros(2, np.float16))),
    ("x32", "array"),
    ("x32", [0.0, 0.0]),
    ("x32", None),
    ("ints", [1, "2"]),
    ("ints", [1, 2.5]),
    ("ints", "12"),
    ("names", {"a": 1}),
    ("names", ["a", "b"]),
    ("point", "p"),
    ("point", {"xy": npy(np.zeros(2, np.float64)), "tag": "p"}),
    ("point", {"xy": npy(np.zeros(2, np.float32)), "tag": 3}),
    ("opt", "1"),
]


def _label(field: str, value: Any) -> str:
    if isinstance(value, bytes) and value.startswith(b"\x93NUMPY"):
        return f"{field}=npy({np.load(io.BytesIO(value)).dtype})"
    if isinstance(value, dict) and "xy" in value:
        return f"{field}=" + ",".join(_label(k, v) for k, v in value.items())
    return f"{field}={value!r}"


@pytest.mark.parametrize(
    ("field", "value"), WRONG_WIRE_VALUES, ids=[_label(f, v) for f, v in WRONG_WIRE_VALUES]
)
def test_wrong_type_on_the_wire_names_the_field_and_the_key(
    field: str, value: Any, tmp_path: Path
) -> None:
    wire = strict_wire()
    wire[field] = value
    err = _dataset_error(pack(wire), tmp_path)
    assert err.field is not None and err.field.startswith(field)
    assert field in str(err)
    with pytest.raises(SampleError):
        Strict.from_bytes(pack(wire))


WRONG_PYTHON_VALUES = [
    ("n", "1"),
    ("n", 1.5),
    ("n", True),
    ("n", np.float64(1.0)),
    ("n", None),
    ("f", "0.5"),
    ("f", True),
    ("b", 1),
    ("b", "yes"),
    ("s", 1),
    ("s", b"s"),
    ("raw", "r"),
    ("x32", np.zeros(2, np.float64)),
    ("x32", np.zeros(2, np.int32)),
    ("x32", [0.0, 0.0]),
    ("x32", "array"),
    ("ints", [1, "2"]),
    ("ints", [1, 2.5]),
    ("names", {"a": 1}),
    ("names", {1: "a"}),
    ("point", "p"),
    ("opt", "1"),
]


@pytest.mark.parametrize(
    ("field", "value"),
    WRONG_PYTHON_VALUES,
    ids=[f"{f}={v!r}" for f, v in WRONG_PYTHON_VALUES],
)
def test_wrong_python_values_are_never_coerced(field: str, value: Any) -> None:
    values = strict_values()
    values[field] = value
    with pytest.raises(SampleError) as err:
        Strict.from_data(values)
    assert field in str(err.value)
    with pytest.raises(SampleError) as err:
        _ = Strict(**values).packed
    assert field in str(err.value)


@pytest.mark.parametrize(
    "blob",
    [
        b"not an array",
        npy(np.zeros(4, np.float32))[:-4],
        npy(np.zeros(4, np.float32)) + b"\x00" * 4,
        b"\x93NUMPY\x01\x00\xff\xff{'descr': '<f4'",
        b"\x93NUMPY\x09\x00" + b"\x00" * 64,
        b"\x03<f4\x01" + (10**9).to_bytes(8, "little"),
    ],
    ids=["garbage", "short data", "extra data", "header past end", "bad version", "huge shape"],
)
def test_a_malformed_array_value_names_the_field_and_the_key(blob: bytes, tmp_path: Path) -> None:
    wire = strict_wire()
    wire["x32"] = blob
    err = _dataset_error(pack(wire), tmp_path)
    assert "x32" in str(err)


def test_a_payload_that_is_not_msgpack_names_the_key(tmp_path: Path) -> None:
    _dataset_error(b"\xc1\xc1\xc1", tmp_path)
    path = write_wds(tmp_path / "bad.tar", [("bad-7", b"\xc1")])
    with pytest.raises(SampleError, match="bad-7"):
        list(atdata.Dataset(path))


def test_a_payload_that_is_not_a_map_names_the_key(tmp_path: Path) -> None:
    _dataset_error(pack([1, 2, 3]), tmp_path)  # type: ignore[arg-type]
    path = write_wds(tmp_path / "list.tar", [("bad-7", pack([1, 2, 3]))])  # type: ignore[arg-type]
    with pytest.raises(SampleError, match="bad-7"):
        list(atdata.Dataset(path))


def test_skip_warns_about_bad_samples_and_keeps_the_good_ones(tmp_path: Path) -> None:
    good = Strict(**strict_values())
    wrong = strict_wire()
    wrong["n"] = "one"
    path = write_wds(
        tmp_path / "some-bad.tar",
        [("g0", good.packed), ("b1", pack(wrong)), ("g2", good.packed), ("b3", b"\xc1")],
    )
    ds = atdata.Dataset[Strict](path, on_error="skip")
    with pytest.warns(UserWarning) as record:
        read = list(ds)
    assert len(read) == 2
    messages = " ".join(str(w.message) for w in record)
    assert "b1" in messages and "b3" in messages and "'n'" in messages
    with pytest.warns(UserWarning):
        (batch,) = list(ds.ordered(batch_size=8))
    assert len(batch) == 2


# ---------------------------------------------------------------------------- empty and missing shards


def test_an_empty_archive_has_no_samples(tmp_path: Path) -> None:
    empty = tmp_path / "empty.tar"
    tarfile.open(empty, "w").close()
    assert list(atdata.Dataset[Feature](str(empty))) == []
    assert list(atdata.Dataset[Feature](str(empty)).ordered(batch_size=4)) == []
    assert atdata.Dataset[Feature](str(empty)).head(3) == []


def test_an_empty_archive_between_shards_is_passed_over(tmp_path: Path) -> None:
    a = atdata.write_samples([feature(0), feature(1)], tmp_path / "a.tar").list_shards()[0]
    empty = tmp_path / "empty.tar"
    with wds.writer.TarWriter(str(empty)):
        pass
    tarfile.open(tmp_path / "empty2.tar", "w").close()
    b = atdata.write_samples([feature(2)], tmp_path / "b.tar").list_shards()[0]
    paths = [a, str(empty), str(tmp_path / "empty2.tar"), b]
    assert [s.label for s in atdata.Dataset[Feature](paths)] == [0, 1, 2]


def test_a_missing_file_raises_shard_error_naming_it(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope-000001.tar")
    with pytest.raises(ShardError) as err:
        list(atdata.Dataset[Feature](missing))
    assert missing in str(err.value) and err.value.shard == missing
    with pytest.raises(ShardError, match="nope"):
        list(atdata.Dataset[Feature](f"file://{missing}"))


def test_skip_warns_about_a_missing_shard_and_reads_the_rest(tmp_path: Path) -> None:
    a = atdata.write_samples([feature(0)], tmp_path / "a.tar").list_shards()[0]
    b = atdata.write_samples([feature(1)], tmp_path / "b.tar").list_shards()[0]
    missing = str(tmp_path / "gone.tar")
    ds = atdata.Dataset[Feature]([a, missing, b], on_error="skip")
    with pytest.warns(UserWarning, match=r"gone\.tar"):
        assert [s.label for s in ds] == [0, 1]


def test_a_missing_http_shard_raises_shard_error(tmp_path: Path) -> None:
    with serve_directory(tmp_path) as url, pytest.raises(ShardError) as err:
        list(atdata.Dataset[Feature](f"{url}/absent.tar"))
    assert "absent.tar" in str(err.value) and "404" in str(err.value)


def test_an_unreachable_http_server_raises_shard_error(tmp_path: Path) -> None:
    with serve_directory(tmp_path) as url:
        pass  # the port is closed once the server is gone
    with pytest.raises(ShardError, match=r"dead\.tar"):
        list(atdata.Dataset[Feature](f"{url}/dead.tar"))


def test_invalid_on_error_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        atdata.Dataset[Feature](str(tmp_path / "x.tar"), on_error="ignore")  # type: ignore[arg-type]
