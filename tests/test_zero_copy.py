"""``ordered(copy=False)`` / ``shuffled(copy=False)``: read-only views of the mapped shard."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from numpy.typing import NDArray

import atdata


@atdata.packable
class Img:
    image: NDArray[np.uint8]
    label: int


def _image(i: int) -> np.ndarray:
    return (np.arange(3 * 16 * 16, dtype=np.int64).reshape(3, 16, 16) * (i + 1) % 251).astype(
        np.uint8
    )


@pytest.fixture
def ds(tmp_path) -> atdata.Dataset[Img]:
    return atdata.write_samples(
        (Img(image=_image(i), label=i) for i in range(30)), tmp_path / "z.tar", maxcount=8
    )


def test_ordered_views_are_read_only_and_equal_to_the_data(ds: atdata.Dataset[Img]) -> None:
    views = list(ds.ordered(copy=False))
    assert [s.label for s in views] == list(range(30))
    for s in views:
        assert not s.image.flags.writeable and not s.image.flags.owndata
        assert np.array_equal(s.image, _image(s.label))
        with pytest.raises(ValueError, match="read-only"):
            s.image[0, 0, 0] = 1
    del ds
    gc.collect()
    # a view keeps its shard's map alive after the iteration and the dataset are gone
    assert all(np.array_equal(s.image, _image(s.label)) for s in views)


def test_shuffled_views_are_read_only(ds: atdata.Dataset[Img]) -> None:
    views = list(ds.shuffled(seed=3, copy=False))
    owned = list(ds.shuffled(seed=3))
    assert [s.label for s in views] == [s.label for s in owned]
    assert sorted(s.label for s in views) == list(range(30))
    assert all(not s.image.flags.writeable for s in views)
    assert all(np.array_equal(s.image, _image(s.label)) for s in views)


def test_default_arrays_are_owned_and_writable(ds: atdata.Dataset[Img]) -> None:
    for sample in (*ds.ordered(), *ds.shuffled(seed=1)):
        assert sample.image.flags.writeable and sample.image.flags.owndata
        sample.image[0, 0, 0] = 7  # writing to one sample changes nothing on disk
    assert np.array_equal(ds.head(1)[0].image, _image(0))
