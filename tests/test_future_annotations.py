"""Sample types and lenses in a module with ``from __future__ import annotations``.

Every annotation here is a string until atdata resolves it; the existing atdata
never decoded array fields of such types.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
from numpy.typing import NDArray

import atdata
from atdata import SampleError
from helpers import (
    arrays_equal,
    npy,
    pack,
    private_atdata_home,  # noqa: F401 - autouse fixture
    same,
)


@atdata.packable
class Patch:
    pixels: NDArray[np.uint8]
    origin: list[int]


@atdata.packable
class Image:
    image: NDArray
    f32: NDArray[np.float32]
    label: str
    score: float
    count: int
    flag: bool
    raw: bytes
    mask: Optional[NDArray[np.bool_]]  # noqa: UP045 - the typing.Optional spelling is under test
    depth: NDArray[np.float64] | None
    boxes: list[NDArray[np.float32]]
    channels: dict[str, NDArray]
    tags: list[str]
    extra: dict[str, list[int]]
    patch: Patch
    patches: list[Patch]
    maybe_patch: Patch | None
    note: str | None = None


@atdata.packable
class Caption:
    label: str
    score: float


@atdata.lens
def image_caption(s: Image) -> Caption:
    return Caption(label=s.label, score=s.score)


@image_caption.putter
def _caption_back(v: Caption, s: Image) -> Image:
    return dataclasses.replace(s, label=v.label, score=v.score)


def image(i: int = 0) -> Image:
    return Image(
        image=np.arange(12, dtype=np.int16).reshape(3, 4) + i,
        f32=np.linspace(0, 1, 3, dtype=np.float32),
        label=f"img{i}",
        score=0.5 + i,
        count=i,
        flag=bool(i % 2),
        raw=b"\x00\x01",
        mask=np.array([True, False]),
        depth=None,
        boxes=[np.zeros((2, 4), np.float32)],
        channels={"r": np.ones(2, np.uint8)},
        tags=["a", "b"],
        extra={"k": [1, 2]},
        patch=Patch(np.full((2, 2), i, np.uint8), [0, 0]),
        patches=[Patch(np.zeros((1, 1), np.uint8), [1, 1])],
        maybe_patch=None,
    )


def test_string_annotations_are_resolved_for_every_field_kind() -> None:
    assert all(isinstance(f.type, str) for f in dataclasses.fields(Image))
    s = image(1)
    back = Image.from_bytes(s.packed)
    assert same(back, s)
    assert isinstance(back.image, np.ndarray) and isinstance(back.f32, np.ndarray)
    assert isinstance(back.mask, np.ndarray) and back.depth is None
    assert isinstance(back.boxes[0], np.ndarray) and isinstance(back.channels["r"], np.ndarray)
    assert type(back.patch) is Patch and isinstance(back.patch.pixels, np.ndarray)


def test_optional_arrays_under_future_annotations_decode() -> None:
    s = dataclasses.replace(image(), depth=np.ones((2, 2)), maybe_patch=image().patch)
    back = Image.from_bytes(s.packed)
    assert arrays_equal(back.depth, s.depth) and arrays_equal(back.mask, s.mask)
    assert type(back.maybe_patch) is Patch


def test_declared_dtypes_are_enforced_under_future_annotations() -> None:
    with pytest.raises(SampleError) as info:
        _ = dataclasses.replace(image(), f32=np.zeros(3, np.float64)).packed
    assert "f32" in str(info.value)


def test_the_wire_format_is_the_same_as_without_the_future_import() -> None:
    p = Patch(np.arange(4, dtype=np.uint8).reshape(2, 2), [3, 4])
    assert p.packed == pack({"pixels": npy(p.pixels), "origin": [3, 4]})


def test_from_data_with_encoded_arrays_under_future_annotations() -> None:
    p = Patch.from_data({"pixels": npy(np.ones((2, 2), np.uint8)), "origin": [1, 2]})
    assert arrays_equal(p.pixels, np.ones((2, 2), np.uint8))


def test_datasets_and_batches_of_future_annotated_types(tmp_path: Path) -> None:
    samples = [image(i) for i in range(5)]
    ds = atdata.write_samples(samples, tmp_path / "future.tar")
    assert all(same(a, b) for a, b in zip(ds, samples, strict=True))
    (batch,) = list(ds.ordered(batch_size=5))
    assert batch.image.shape == (5, 3, 4) and batch.f32.dtype == np.float32
    assert batch.label == [f"img{i}" for i in range(5)]
    untyped = atdata.Dataset(ds.list_shards()).as_type(Image)
    assert all(same(a, b) for a, b in zip(untyped, samples, strict=True))


def test_lenses_with_string_annotations(tmp_path: Path) -> None:
    assert image_caption.source_type is Image and image_caption.view_type is Caption
    ds = atdata.write_samples([image(i) for i in range(3)], tmp_path / "lens.tar")
    assert [c.label for c in ds.as_type(Caption)] == ["img0", "img1", "img2"]
    s = image(2)
    assert same(image_caption.put(image_caption.get(s), s), s)
    assert same(image_caption.get(image_caption.put(Caption("new", 9.0), s)), Caption("new", 9.0))
