"""What a user's type checker sees of ``Dataset[T]``: checked by pyright, never run.

``tests/test_typing.py`` runs pyright on this file and expects no error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, assert_type

import numpy as np
from numpy.typing import NDArray

import atdata
from atdata import Dataset, DictSample, SampleBatch


@atdata.packable
class Img:
    pixels: NDArray
    label: int


@atdata.packable
class Label:
    label: int


def typed(ds: Dataset[Img]) -> None:
    assert_type(ds.ordered(), Iterator[Img])
    assert_type(ds.ordered(copy=False), Iterator[Img])
    assert_type(ds.ordered(batch_size=32), Iterator[SampleBatch[Img]])
    assert_type(ds.ordered(32), Iterator[SampleBatch[Img]])
    assert_type(ds.shuffled(), Iterator[Img])
    assert_type(ds.shuffled(seed=1, buffer_samples=100), Iterator[Img])
    assert_type(ds.shuffled(batch_size=8, seed=1), Iterator[SampleBatch[Img]])
    assert_type(iter(ds), Iterator[Img])
    assert_type(ds[0], Img)
    assert_type(ds.get("key"), Img)
    assert_type(ds.head(3), list[Img])
    assert_type(ds.read_samples([0], [0]), list[Img])
    assert_type(ds.as_type(Label), Dataset[Label])
    assert_type(ds.as_type(Label).ordered(4), Iterator[SampleBatch[Label]])
    assert_type(ds.streaming(), Dataset[Img])
    for sample in ds:
        assert_type(sample, Img)
        assert_type(sample.label, int)
    for batch in ds.ordered(batch_size=4):
        assert_type(batch, SampleBatch[Img])


def constructed() -> None:
    assert_type(Dataset[Img]("data-{000000..000009}.tar"), Dataset[Img])
    assert_type(Dataset("data.tar", sample_type=Img), Dataset[Img])
    assert_type(Dataset("data.tar"), Dataset[DictSample])
    written = atdata.write_samples([Img(pixels=np.zeros(2), label=1)], "out.tar")
    assert_type(written, Dataset[Img])


def loaded() -> None:
    assert_type(atdata.load_dataset("data.tar", Img, split="train"), Dataset[Img])
    assert_type(atdata.load_dataset("data.tar", split="train"), Dataset[Any])
    by_schema = atdata.load_dataset("data.tar", "atdata://local/sampleSchema/Img", split="train")
    assert_type(by_schema, Dataset[Any])
    splits = atdata.load_dataset("data.tar", Img)
    assert_type(splits, atdata.DatasetDict)
