"""Schema records from strangers, types rebuilt from them in other processes, and records
the original atdata wrote."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import atdata
from atdata import SchemaError
from atdata.atmosphere.schema import record_to_type
from atdata.schema import schema_record, schema_to_type


def record(*fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": "Stranger",
        "version": "1.0.0",
        "atdataSchemaVersion": 2,
        "fields": list(fields),
        **extra,
    }


def prim(name: str, kind: str = "int", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "fieldType": {"$type": "local#primitive", "primitive": kind},
        "optional": False,
        **extra,
    }


def array(name: str, **field_type: Any) -> dict[str, Any]:
    return {"name": name, "fieldType": {"$type": "local#ndarray", **field_type}, "optional": False}


# --------------------------------------------------------------------------- hostile records


@pytest.mark.parametrize(
    "names",
    [
        ["\ufb01eld"],  # 'ﬁeld': Python reads it as 'field'
        ["field", "\ufb01eld"],  # two names, one attribute
        ["\u210cello"],  # BLACK-LETTER CAPITAL H: read as 'Hello'
        ["e\ufb00ect"],  # the 'ff' ligature: read as 'effect'
    ],
)
def test_names_that_nfkc_normalise_to_another_identifier_are_refused(names: list[str]) -> None:
    with pytest.raises(SchemaError, match="NFKC"):
        schema_to_type(record(*(prim(n) for n in names)))


def test_a_class_name_that_nfkc_normalises_is_refused() -> None:
    with pytest.raises(SchemaError, match="NFKC"):
        schema_to_type({**record(prim("a")), "name": "\ufb01le"})


@pytest.mark.parametrize(
    "name", ["_atdata_decoder", "_atdata_fields", "_atdata_packed_keys", "_atdata_x"]
)
def test_names_of_atdatas_own_attributes_are_refused(name: str) -> None:
    with pytest.raises(SchemaError, match="clashes"):
        schema_to_type(record(prim(name)))


def _nested_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [100, 5_000, 100_000])
def test_deeply_nested_defaults_are_a_schema_error(depth: int) -> None:
    field = {
        "name": "deep",
        "fieldType": {
            "$type": "local#array",
            "items": {"$type": "local#primitive", "primitive": "int"},
        },
        "optional": False,
        "default": _nested_list(depth),
    }
    with pytest.raises(SchemaError, match="nested"):
        schema_to_type(record(field))


def test_deeply_nested_atproto_defaults_are_a_schema_error() -> None:
    text = "[" * 50_000 + "]" * 50_000  # an ATProto record carries defaults as JSON text
    field = {
        "name": "deep",
        "fieldType": {
            "$type": "ac.foundation.dataset.schemaType#array",
            "items": {"$type": "ac.foundation.dataset.schemaType#primitive", "primitive": "int"},
        },
        "optional": False,
        "default": text,
    }
    with pytest.raises(SchemaError):
        record_to_type({"name": "Deep", "version": "1.0.0", "module": "m.Deep", "fields": [field]})


def test_a_huge_record_is_a_schema_error() -> None:
    many = {
        "name": "wide",
        "fieldType": {"$type": "local#primitive", "primitive": "int"},
        "optional": False,
        "default": 0,
    }
    field = {
        **many,
        "fieldType": {"$type": "local#array", "items": many["fieldType"]},
        "default": list(range(300_000)),
    }
    with pytest.raises(SchemaError, match="values"):
        schema_to_type(record(field))


@pytest.mark.parametrize(
    "dtype",
    [
        "V100000000",  # raw void of 100 MB a value
        "(100000,100000)f8",  # a sub-array dtype
        "i4,i4",  # structured
        "U100000000",
        "S9999999999999999999",
        "(2,",  # numpy raises ValueError or SyntaxError on these
        "f8,(",
        "<f8<",
        "O",
    ],
)
def test_absurd_dtypes_are_a_schema_error(dtype: str) -> None:
    with pytest.raises(SchemaError, match="dtype"):
        schema_to_type(record(array("x", dtype=dtype)))


@pytest.mark.parametrize(
    "shape", [[10**30], [-5], list(range(1, 100)), "3x3", [1.5], [True], {"a": 1}]
)
def test_absurd_shapes_are_a_schema_error(shape: Any) -> None:
    with pytest.raises(SchemaError, match="shape"):
        schema_to_type(record(array("x", dtype="float32", shape=shape)))


def test_sensible_shapes_and_dtypes_still_work() -> None:
    T = schema_to_type(record(array("x", dtype="float32", shape=[-1, None, 3]), prim("n")))
    sample = T(x=np.zeros((2, 4, 3), np.float32), n=1)
    assert T.from_bytes(sample.packed).x.shape == (2, 4, 3)


# --------------------------------------------------------------------------- pickling


@atdata.packable
class Inner:
    y: int


@atdata.packable
class Feature:
    x: NDArray[np.float32]
    inner: Inner
    label: int = 0


def rebuilt() -> type:
    return schema_to_type(schema_record(Feature, version="1.0.0"))


def test_a_rebuilt_type_and_its_samples_pickle() -> None:
    T = rebuilt()
    inner_type = T.__dataclass_fields__["inner"].type
    sample = T(x=np.arange(3, dtype=np.float32), inner=inner_type(y=4), label=2)
    assert pickle.loads(pickle.dumps(T)) is T  # one type per record in a process
    back = pickle.loads(pickle.dumps(sample))
    assert type(back) is T and back == sample
    assert pickle.loads(pickle.dumps(atdata.Dataset[T](["/x.tar"]))).sample_type is T


def test_a_rebuilt_type_pickles_with_cloudpickle() -> None:
    import cloudpickle

    T = rebuilt()
    sample = T.from_bytes(Feature(x=np.ones(2, np.float32), inner=Inner(y=1), label=5).packed)
    assert pickle.loads(cloudpickle.dumps(sample)).label == 5


def test_spawned_dataloader_workers_read_a_rebuilt_type(tmp_path: Path) -> None:
    samples = [Feature(x=np.full(4, i, np.float32), inner=Inner(y=i), label=i) for i in range(12)]
    shards = atdata.write_samples(samples, tmp_path / "f.tar", maxcount=4).list_shards()
    ds = atdata.Dataset[rebuilt()](shards)
    loader = ds.to_torch(batch_size=4).loader(num_workers=2, multiprocessing_context="spawn")
    labels = sorted(int(v) for batch in loader for v in batch["label"])
    assert labels == list(range(12))


def _label_plus_one(sample: Any) -> Any:
    return Inner(y=sample.label + 1)


def test_dask_workers_map_a_rebuilt_type(tmp_path: Path) -> None:
    import distributed

    samples = [Feature(x=np.full(4, i, np.float32), inner=Inner(y=i), label=i) for i in range(6)]
    shards = atdata.write_samples(samples, tmp_path / "f.tar", maxcount=3).list_shards()
    ds = atdata.Dataset[rebuilt()](shards)
    with (
        distributed.LocalCluster(
            n_workers=1, processes=True, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        out = ds.map_shards(
            _label_plus_one, str(tmp_path / "o" / "s-%03d.tar"), engine="dask", client=client
        )
    assert sorted(s.y for s in out) == [1, 2, 3, 4, 5, 6]


# --------------------------------------------------------------------------- the original's records


# A local (Redis) schema record exactly as the original atdata writes it (no atdataSchemaVersion).
ORIGINAL_LOCAL = {
    "name": "ImageSample",
    "version": "1.0.0",
    "fields": [
        {
            "name": "caption",
            "fieldType": {"$type": "local#primitive", "primitive": "str"},
            "optional": True,
        },
        {
            "name": "image",
            "fieldType": {"$type": "local#ndarray", "dtype": "float32"},
            "optional": False,
        },
        {
            "name": "score",
            "fieldType": {"$type": "local#primitive", "primitive": "float"},
            "optional": True,
        },
        {
            "name": "label",
            "fieldType": {"$type": "local#primitive", "primitive": "str"},
            "optional": False,
        },
    ],
    "description": "images",
    "createdAt": "2026-01-26T12:00:00+00:00",
}


def test_original_optional_fields_default_to_none() -> None:
    T = schema_to_type(ORIGINAL_LOCAL)
    sample = T(image=np.zeros(2, np.float32), label="cat")  # the optional fields left out
    assert sample.caption is None and sample.score is None
    assert T.from_bytes(sample.packed).caption is None
    with pytest.raises(TypeError):
        T(caption="x")  # the required fields stay required


def test_original_atproto_optional_fields_default_to_none() -> None:
    prefix = "ac.foundation.dataset.schemaType"
    original = {
        "$type": "ac.foundation.dataset.sampleSchema",
        "name": "ImageSample",
        "version": "1.0.0",
        "fields": [
            {
                "name": "tag",
                "fieldType": {"$type": f"{prefix}#primitive", "primitive": "str"},
                "optional": True,
            },
            {
                "name": "label",
                "fieldType": {"$type": f"{prefix}#primitive", "primitive": "int"},
                "optional": False,
            },
        ],
        "createdAt": "2026-01-26T12:00:00+00:00",
    }
    T = record_to_type(original)
    assert T(label=3).tag is None
