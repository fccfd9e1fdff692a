"""The local parts of the seed pages (Atmosphere Publishing, Promotion Workflow), run as written.

Only the network steps are left out; the code that defines types, writes tar
files with ``webdataset.TarWriter`` and ``as_wds``, and reads them back with
``Dataset[T](...).ordered(batch_size=32)`` is the pages' own.
"""

from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from numpy.typing import NDArray

import atdata
from helpers import private_atdata_home  # noqa: F401 - autouse fixture


@pytest.fixture(autouse=True)
def in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The seed code writes ``temp.tar`` and ``features.tar`` in the working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_atmosphere_page_sample_types_and_introspection(capsys: pytest.CaptureFixture[str]) -> None:
    # --- Define Sample Types
    @atdata.packable
    class ImageSample:
        """A sample containing image data with metadata."""

        image: NDArray
        label: str
        confidence: float

    @atdata.packable
    class TextEmbeddingSample:
        """A sample containing text with embedding vectors."""

        text: str
        embedding: NDArray
        source: str

    # --- Type Introspection
    from dataclasses import fields, is_dataclass

    print(f"Sample type: {ImageSample.__name__}")
    print(f"Is dataclass: {is_dataclass(ImageSample)}")

    print("\nFields:")
    for field in fields(ImageSample):
        print(f" - {field.name}: {field.type}")

    # Create and serialize a sample
    sample = ImageSample(
        image=np.random.rand(224, 224, 3).astype(np.float32),
        label="cat",
        confidence=0.95,
    )

    packed = sample.packed
    print(f"\nSerialized size: {len(packed):,} bytes")

    # Round-trip
    restored = ImageSample.from_bytes(packed)
    print(f"Round-trip successful: {np.allclose(sample.image, restored.image)}")

    out = capsys.readouterr().out
    assert "Sample type: ImageSample" in out
    assert "Is dataclass: True" in out
    assert " - image: " in out and " - label: " in out and " - confidence: " in out
    assert "Round-trip successful: True" in out
    assert len(packed) > 224 * 224 * 3 * 4
    assert restored.label == "cat" and restored.confidence == 0.95
    assert restored.image.dtype == np.float32 and restored.image.shape == (224, 224, 3)

    embedding = TextEmbeddingSample(text="hi", embedding=np.ones(8), source="s")
    assert TextEmbeddingSample.from_bytes(embedding.packed).text == "hi"


def test_atmosphere_page_blob_storage_local_steps(capsys: pytest.CaptureFixture[str]) -> None:
    # Define sample type
    @atdata.packable
    class FeatureSample:
        features: NDArray
        label: int

    # Create dataset in memory or from existing tar
    samples = [
        FeatureSample(features=np.random.randn(64).astype(np.float32), label=i % 10)
        for i in range(100)
    ]

    # Write to temporary tar
    with wds.writer.TarWriter("temp.tar") as sink:
        for i, s in enumerate(samples):
            sink.write({**s.as_wds, "__key__": f"{i:06d}"})

    dataset = atdata.Dataset[FeatureSample]("temp.tar")

    # Load and iterate (the page's source is a PDS blob source; here the local file)
    source = atdata.URLSource("temp.tar")
    ds = atdata.Dataset[FeatureSample](source)
    for batch in ds.ordered(batch_size=32):
        print(batch.features.shape)

    assert capsys.readouterr().out.split("\n")[:-1] == ["(32, 64)"] * 3 + ["(4, 64)"]
    read = list(dataset.ordered())
    assert len(read) == 100
    assert all(np.array_equal(r.features, s.features) for r, s in zip(read, samples, strict=True))
    assert [r.label for r in read] == [i % 10 for i in range(100)]
    first = next(iter(dataset.ordered(batch_size=32)))
    assert np.array_equal(first.features, np.stack([s.features for s in samples[:32]]))


def test_atmosphere_page_complete_workflow_local_steps(capsys: pytest.CaptureFixture[str]) -> None:
    # 1. Define and create samples
    @atdata.packable
    class FeatureSample:
        features: NDArray
        label: int
        source: str

    samples = [
        FeatureSample(
            features=np.random.randn(128).astype(np.float32),
            label=i % 10,
            source="synthetic",
        )
        for i in range(1000)
    ]

    # 2. Write to tar
    with wds.writer.TarWriter("features.tar") as sink:
        for i, s in enumerate(samples):
            sink.write({**s.as_wds, "__key__": f"{i:06d}"})

    # 5. (the dataset the page publishes)
    dataset = atdata.Dataset[FeatureSample]("features.tar")

    # 6. Later: load (the page's source is the blob store's; here the local file)
    source = atdata.URLSource("features.tar")
    ds = atdata.Dataset[FeatureSample](source)
    for batch in ds.ordered(batch_size=32):
        print(f"Loaded batch with {len(batch.label)} samples")
        break

    assert capsys.readouterr().out == "Loaded batch with 32 samples\n"
    batches = list(dataset.ordered(batch_size=32))
    assert len(batches) == 32 and len(batches[-1]) == 1000 - 31 * 32
    assert batches[0].features.shape == (32, 128)
    assert batches[0].source == ["synthetic"] * 32
    assert [n for b in batches for n in b.label] == [i % 10 for i in range(1000)]


def test_promotion_page_local_steps(capsys: pytest.CaptureFixture[str]) -> None:
    # 1. Define sample type
    @atdata.packable
    class FeatureSample:
        features: NDArray
        label: int

    # 2. Create local dataset
    samples = [
        FeatureSample(
            features=np.random.randn(128).astype(np.float32),
            label=i % 10,
        )
        for i in range(1000)
    ]

    with wds.writer.TarWriter("features.tar") as sink:
        for i, s in enumerate(samples):
            sink.write({**s.as_wds, "__key__": f"{i:06d}"})

    # 4. (the dataset the page inserts into the index)
    dataset = atdata.Dataset[FeatureSample]("features.tar")

    for batch in dataset.ordered(batch_size=32):
        print(batch.features.shape)

    lines = capsys.readouterr().out.split("\n")[:-1]
    assert lines == ["(32, 128)"] * 31 + ["(8, 128)"]
    read = list(dataset)
    assert all(np.array_equal(r.features, s.features) for r, s in zip(read, samples, strict=True))
    assert len(read) == 1000
