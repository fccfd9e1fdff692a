"""Lenses: ``@atdata.lens`` and ``.putter``, ``atdata.Lens``, the registry, ``as_type`` paths, laws."""

from pathlib import Path

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import atdata
from atdata import DictSample, Lens, LensNotFoundError
from helpers import (
    arrays_equal,
    private_atdata_home,  # noqa: F401 - autouse fixture
    same,
)


@atdata.packable
class Full:
    image: NDArray[np.uint8]
    label: str
    score: float
    count: int


@atdata.packable
class Labelled:
    label: str
    score: float


@atdata.packable
class LabelOnly:
    label: str


@atdata.packable
class Upper:
    shout: str


@atdata.packable
class Isolated:
    thing: int


@atdata.lens
def full_to_labelled(s: Full) -> Labelled:
    return Labelled(label=s.label, score=s.score)


@full_to_labelled.putter
def _labelled_back(v: Labelled, s: Full) -> Full:
    return Full(image=s.image, label=v.label, score=v.score, count=s.count)


@atdata.lens
def labelled_to_label(s: Labelled) -> LabelOnly:
    return LabelOnly(label=s.label)


@labelled_to_label.putter
def _label_back(v: LabelOnly, s: Labelled) -> Labelled:
    return Labelled(label=v.label, score=s.score)


@atdata.lens
def label_to_upper(s: LabelOnly) -> Upper:
    return Upper(shout=s.label.upper())


def full(i: int) -> Full:
    return Full(np.full((2, 2), i, np.uint8), f"l{i}", i / 4, i)


@pytest.fixture
def full_ds(tmp_path: Path) -> atdata.Dataset:
    return atdata.write_samples([full(i) for i in range(12)], tmp_path / "full.tar", maxcount=5)


# ---------------------------------------------------------------------------- the Lens object


def test_lens_decorator_builds_a_lens_with_types_from_annotations() -> None:
    assert isinstance(full_to_labelled, Lens)
    assert full_to_labelled.source_type is Full
    assert full_to_labelled.view_type is Labelled
    v = full_to_labelled(full(3))
    assert same(v, Labelled("l3", 0.75))
    assert same(full_to_labelled.get(full(3)), v)


def test_putter_writes_the_view_back() -> None:
    s = full(2)
    back = full_to_labelled.put(Labelled("new", 9.0), s)
    assert back.label == "new" and back.score == 9.0
    assert back.count == 2 and arrays_equal(back.image, s.image)


def test_putter_decorator_returns_the_function() -> None:
    assert callable(_labelled_back) and not isinstance(_labelled_back, Lens)
    assert _labelled_back(Labelled("x", 1.0), full(1)).label == "x"


def test_lens_class_direct_construction() -> None:
    def get(s: Labelled) -> Upper:
        return Upper(s.label.upper())

    def put(v: Upper, s: Labelled) -> Labelled:
        return Labelled(v.shout.lower(), s.score)

    lens = Lens(get, put)
    assert lens.source_type is Labelled and lens.view_type is Upper
    assert lens(Labelled("ab", 1.0)).shout == "AB"
    assert same(lens.put(Upper("CD"), Labelled("ab", 1.0)), Labelled("cd", 1.0))


def test_lens_without_putter_puts_back_the_source_unchanged() -> None:
    src = LabelOnly("x")
    assert label_to_upper.put(Upper("Y"), src) is src


def test_lens_getter_must_take_one_annotated_argument() -> None:
    def two(a: Full, b: Full) -> Labelled:
        return Labelled(a.label, b.score)

    with pytest.raises(ValueError):
        Lens(two)

    def unannotated(a):  # type: ignore[no-untyped-def]
        return a

    with pytest.raises(ValueError):
        Lens(unannotated)


# ---------------------------------------------------------------------------- registry and as_type


def test_as_type_applies_a_registered_lens(full_ds: atdata.Dataset) -> None:
    view = full_ds.as_type(Labelled)
    assert view.sample_type is Labelled
    got = list(view)
    assert all(type(v) is Labelled for v in got)
    assert [v.label for v in got] == [f"l{i}" for i in range(12)]


def test_as_type_finds_a_two_hop_path(full_ds: atdata.Dataset) -> None:
    got = list(full_ds.as_type(LabelOnly))
    assert [type(v) for v in got] == [LabelOnly] * 12
    assert [v.label for v in got] == [f"l{i}" for i in range(12)]


def test_as_type_finds_a_three_hop_path(full_ds: atdata.Dataset) -> None:
    assert [v.shout for v in full_ds.as_type(Upper)] == [f"L{i}" for i in range(12)]


def test_as_type_chains_step_by_step(full_ds: atdata.Dataset) -> None:
    step = full_ds.as_type(Labelled).as_type(LabelOnly).as_type(Upper)
    assert [v.shout for v in step.head(3)] == ["L0", "L1", "L2"]


def test_as_type_views_batch(full_ds: atdata.Dataset) -> None:
    batches = list(full_ds.as_type(Labelled).ordered(batch_size=5))
    assert [len(b) for b in batches] == [5, 5, 2]
    assert batches[0].label == ["l0", "l1", "l2", "l3", "l4"]
    assert batches[0].score == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_as_type_views_shuffle_as_a_permutation(full_ds: atdata.Dataset) -> None:
    labels = [v.label for v in full_ds.as_type(LabelOnly).shuffled(seed=3)]
    assert sorted(labels) == sorted(f"l{i}" for i in range(12))


def test_every_packable_type_is_reachable_from_dict_sample(full_ds: atdata.Dataset) -> None:
    untyped = atdata.Dataset(full_ds.list_shards())
    typed = untyped.as_type(Full)
    assert typed.sample_type is Full
    got = list(typed)
    assert all(type(s) is Full for s in got)
    assert all(same(a, full(i)) for i, a in enumerate(got))
    assert [v.shout for v in untyped.as_type(Full).as_type(Upper).head(2)] == ["L0", "L1"]


def test_a_type_defined_later_is_reachable_from_dict_sample(tmp_path: Path) -> None:
    @atdata.packable
    class LateType:
        value: int

    ds = atdata.write_samples([DictSample(value=i) for i in range(3)], tmp_path / "late.tar")
    assert [s.value for s in ds.as_type(LateType)] == [0, 1, 2]


def test_no_path_raises_lens_not_found(full_ds: atdata.Dataset) -> None:
    with pytest.raises(LensNotFoundError) as info:
        full_ds.as_type(Isolated)
    assert "Full" in str(info.value) and "Isolated" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_a_later_lens_for_the_same_pair_replaces_the_earlier(tmp_path: Path) -> None:
    @atdata.packable
    class Src:
        n: int

    @atdata.packable
    class Dst:
        m: int

    @atdata.lens
    def first(s: Src) -> Dst:
        return Dst(m=s.n + 1)

    ds = atdata.write_samples([Src(n=1)], tmp_path / "src.tar")
    assert [d.m for d in ds.as_type(Dst)] == [2]

    @atdata.lens
    def second(s: Src) -> Dst:
        return Dst(m=s.n * 100)

    assert [d.m for d in ds.as_type(Dst)] == [100]


def test_the_lens_network_is_the_registry() -> None:
    """``atdata.LensNetwork()`` is the process-wide registry, as in the existing atdata."""
    network = atdata.LensNetwork()
    lens = network.transform(Full, Labelled)
    assert same(lens.get(full(1)), Labelled("l1", 0.25))
    assert network.transform(Full, Upper).get(full(2)).shout == "L2"


# ---------------------------------------------------------------------------- lens laws

full_samples = st.builds(
    Full,
    image=hnp.arrays(np.uint8, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=3)),
    label=st.text(),
    score=st.floats(allow_nan=False),
    count=st.integers(-(2**63), 2**63 - 1),
)
labelled = st.builds(Labelled, label=st.text(), score=st.floats(allow_nan=False))
label_only = st.builds(LabelOnly, label=st.text())
LAWS = settings(max_examples=200, deadline=None)


@LAWS
@given(full_samples)
def test_get_put_law(s: Full) -> None:
    assert same(full_to_labelled.put(full_to_labelled.get(s), s), s)


@LAWS
@given(full_samples, labelled)
def test_put_get_law(s: Full, v: Labelled) -> None:
    assert same(full_to_labelled.get(full_to_labelled.put(v, s)), v)


@LAWS
@given(full_samples, labelled, labelled)
def test_put_put_law(s: Full, v1: Labelled, v2: Labelled) -> None:
    lens = full_to_labelled
    assert same(lens.put(v2, lens.put(v1, s)), lens.put(v2, s))


@LAWS
@given(full_samples, label_only)
def test_composed_lens_obeys_get_put_and_put_get(s: Full, v: LabelOnly) -> None:
    composed = full_to_labelled.then(labelled_to_label)
    assert composed.source_type is Full and composed.view_type is LabelOnly
    assert same(composed.put(composed.get(s), s), s)
    assert same(composed.get(composed.put(v, s)), v)


@LAWS
@given(full_samples)
def test_dict_sample_lens_obeys_get_put_and_put_get(s: Full) -> None:
    d = DictSample.from_bytes(s.packed)
    lens = atdata.LensNetwork().transform(DictSample, Full)
    got = lens.get(d)
    assert same(got, s)
    assert same(lens.put(got, d).to_dict(), d.to_dict())
    assert same(lens.get(lens.put(s, DictSample())), s)
