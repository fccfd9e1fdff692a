"""atdata quick start: write a typed dataset, read it back typed, batched and shuffled, index it.

Runs on embedded defaults, no server needed:  python examples/quickstart.py
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

import atdata


@atdata.packable
class ImageSample:
    """An image with its label."""

    image: NDArray[np.uint8]
    label: str
    confidence: float


@atdata.packable
class LabelOnly:
    label: str


@atdata.lens
def label_only(sample: ImageSample) -> LabelOnly:
    return LabelOnly(label=sample.label)


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="atdata-quickstart-"))
    rng = np.random.default_rng(0)
    samples = [
        ImageSample(
            image=rng.integers(0, 255, (3, 64, 64), dtype=np.uint8),
            label=["cat", "dog", "bird"][i % 3],
            confidence=float(i % 100) / 100,
        )
        for i in range(1000)
    ]

    start = time.perf_counter()
    dataset = atdata.write_samples(samples, workdir / "images.tar", maxcount=250)
    took = time.perf_counter() - start
    print(
        f"wrote {len(samples)} samples into {len(dataset.list_shards())} shards under {workdir} in {took * 1e3:.0f} ms"
    )

    typed = atdata.Dataset[ImageSample](str(workdir / "images-{000000..000003}.tar"))
    first = typed.head(1)[0]
    print(f"first sample: label={first.label!r} image={first.image.dtype}{first.image.shape}")

    n = 0
    for batch in typed.ordered(batch_size=32):
        n += len(batch)
    print(
        f"read {n} samples in batches; last batch.image.shape = {batch.image.shape}, labels: {batch.label[:3]}"
    )

    order = [s.label for s in typed.shuffled(seed=42)][:6]
    print(f"shuffled (seed=42), first labels: {order}")

    views = typed.as_type(LabelOnly).head(3)
    print(f"through a lens: {views}")

    untyped = atdata.Dataset(typed.list_shards()).head(1)[0]
    print(f"without a type: DictSample with fields {untyped.keys()}")

    # The team layer on its embedded default: a SQLite index and a local disk store under
    # ATDATA_HOME (here the demo's own folder, unless you set one).
    os.environ.setdefault("ATDATA_HOME", str(workdir / "home"))
    index = atdata.Index()
    schema_ref = index.publish_schema(ImageSample, version="1.0.0")
    entry = index.insert_dataset(typed, name="quickstart-images")
    print(
        f"indexed {entry.name!r} ({len(entry.data_urls)} shards copied, cid {entry.cid[:16]}...) with schema {schema_ref}"
    )
    found = atdata.load_dataset("@local/quickstart-images", split="train")
    print(
        f"load_dataset('@local/quickstart-images'): {found.sample_type.__name__}, {len(found)} samples, "
        f"type rebuilt from the stored schema"
    )


if __name__ == "__main__":
    main()
