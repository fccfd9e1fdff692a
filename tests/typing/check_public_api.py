"""What a user's type checker sees of the public API (checked by ``tests/test_typing.py``).

Never run, only read by pyright: every ``assert_type`` states a type the API promises.
Add a section per public concept; keep each one short and self-contained.
"""

from __future__ import annotations

import dataclasses
from typing import Any, assert_type

import numpy as np
from numpy.typing import NDArray

import atdata

# --------------------------------------------------------------------------- @packable


@atdata.packable
class Plain:
    name: str
    value: int = 0


@atdata.packable
class Image(atdata.PackableSample):
    pixels: NDArray[np.uint8]
    label: str
    tags: list[str] = dataclasses.field(default_factory=list)


def check_packable() -> None:
    plain = Plain("a", value=1)
    assert_type(plain, Plain)
    assert_type(plain.name, str)
    assert_type(plain.value, int)

    img = Image(np.zeros(3, np.uint8), "cat")
    assert_type(img, Image)
    assert_type(img.pixels, NDArray[np.uint8])
    assert_type(img.tags, list[str])
    assert_type(img.packed, bytes)
    assert_type(Image.from_bytes(img.packed), Image)
    assert_type(Image.from_data({"pixels": img.pixels, "label": "dog"}), Image)
    assert_type(img.as_wds, dict[str, Any])


# --------------------------------------------------------------------------- lenses


@atdata.packable
class Label(atdata.PackableSample):
    label: str


@atdata.lens
def image_label(s: Image) -> Label:
    return Label(s.label)


@image_label.putter
def image_label_put(v: Label, s: Image) -> Image:
    return Image(s.pixels, v.label, s.tags)


def check_lenses() -> None:
    img = Image(np.zeros(3, np.uint8), "cat")
    assert_type(image_label, atdata.Lens[Image, Label])
    assert_type(image_label(img), Label)
    assert_type(image_label.get(img), Label)
    assert_type(image_label.put(Label("dog"), img), Image)
    assert_type(image_label.source_type, type[Image])
    assert_type(image_label.view_type, type[Label])
    assert_type(atdata.LensNetwork().transform(Image, Label), atdata.Lens[Image, Label])


# --------------------------------------------------------------------------- batches and DictSample


def check_batches() -> None:
    batch = atdata.SampleBatch([Label("a"), Label("b")])
    assert_type(batch, atdata.SampleBatch[Label])
    assert_type(batch.samples, list[Label])
    assert_type(batch.sample_type, type[Label])

    d = atdata.DictSample(a=1)
    assert_type(atdata.DictSample.from_bytes(d.packed), atdata.DictSample)
