"""The seed's "Atmosphere Publishing" tutorial, every code block in order, against the local PDS.

The blocks are the page's own code. Changed: the login lines (base URL, handle,
password of a fresh account on the test PDS; ``ATDATA_PLC_URL`` points DID
resolution at the test PLC directory). Two names the page uses without defining
them (``blob_dataset_uri``, ``DemoSample``) and one placeholder CID are handled
where they occur, and say so. After the blocks, the results are checked against
the server: records listed with their URIs, blobs retained and byte-identical,
samples typed.
"""

import hashlib
from pathlib import Path
from typing import Any

import pytest

from helpers import private_atdata_home  # noqa: F401 - autouse fixture


@pytest.fixture(autouse=True)
def in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The seed code writes ``temp.tar`` and ``features.tar`` in the working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_atmosphere_publishing_tutorial(
    pds_account: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ATDATA_PLC_URL", pds_account["plc_url"])
    PDS_URL, HANDLE, PASSWORD = (
        pds_account["pds_url"],
        pds_account["handle"],
        pds_account["password"],
    )

    # ------------------------------------------------------------------ Setup
    import numpy as np
    import webdataset as wds
    from numpy.typing import NDArray

    import atdata
    from atdata import BlobSource
    from atdata.atmosphere import (
        AtmosphereClient,
        AtmosphereIndex,
        AtUri,
        DatasetLoader,
        DatasetPublisher,
        PDSBlobStore,
        SchemaLoader,
        SchemaPublisher,
    )

    # ------------------------------------------------------------------ Define Sample Types
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

    # ------------------------------------------------------------------ Type Introspection
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

    # ------------------------------------------------------------------ AT URI Parsing
    uris = [
        "at://did:plc:abc123/ac.foundation.dataset.sampleSchema/xyz789",
        "at://alice.bsky.social/ac.foundation.dataset.record/my-dataset",
    ]

    for uri_str in uris:
        print(f"\nParsing: {uri_str}")
        uri = AtUri.parse(uri_str)
        print(f" Authority: {uri.authority}")
        print(f" Collection: {uri.collection}")
        print(f" Rkey: {uri.rkey}")

    # ------------------------------------------------------------------ Authentication
    client = AtmosphereClient(PDS_URL)  # login line: base URL of the local PDS
    client.login(HANDLE, PASSWORD)  # login line: the test account

    print(f"Authenticated as: {client.handle}")
    print(f"DID: {client.did}")

    # ------------------------------------------------------------------ Publish a Schema
    schema_publisher = SchemaPublisher(client)
    schema_uri = schema_publisher.publish(
        ImageSample,
        name="ImageSample",
        version="1.0.0",
        description="Demo: Image sample with label and confidence",
    )
    print(f"Schema URI: {schema_uri}")

    # ------------------------------------------------------------------ List Your Schemas
    schema_loader = SchemaLoader(client)
    schemas = schema_loader.list_all(limit=10)
    print(f"Found {len(schemas)} schema(s)")

    for schema in schemas:
        print(f" - {schema.get('name', 'Unknown')}: v{schema.get('version', '?')}")

    # ------------------------------------------------------------------ Publish a Dataset: With External URLs
    dataset_publisher = DatasetPublisher(client)
    dataset_uri = dataset_publisher.publish_with_urls(
        urls=["s3://example-bucket/demo-data-{000000..000009}.tar"],
        schema_uri=str(schema_uri),
        name="Demo Image Dataset",
        description="Example dataset demonstrating atmosphere publishing",
        tags=["demo", "images", "atdata"],
        license="MIT",
    )
    print(f"Dataset URI: {dataset_uri}")

    # ------------------------------------------------------------------ With PDS Blob Storage (Recommended)
    # Create store and index with blob storage
    store = PDSBlobStore(client)
    index = AtmosphereIndex(client, data_store=store)

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

    # Publish - shards are uploaded as blobs automatically
    schema_uri = index.publish_schema(FeatureSample, version="1.0.0")
    entry = index.insert_dataset(
        dataset,
        name="blob-stored-features",
        schema_ref=schema_uri,
        description="Features stored as PDS blobs",
    )

    print(f"Dataset URI: {entry.uri}")
    print(f"Blob URLs: {entry.data_urls}")  # at://did/blob/cid format

    blob_entry, blob_samples = entry, samples  # kept for the checks at the end

    # ------------------------------------------------------------------ Reading Blob-Stored Datasets
    # Create source from the blob URLs
    source = store.create_source(entry.data_urls)
    streamed = [s.label for s in atdata.Dataset[FeatureSample](source).ordered()]

    # The page's next statement names a placeholder CID, "bafyrei...", which is not a CID
    # (and blobs are bafkrei...): it is refused at once with a clear error ...
    with pytest.raises(ValueError, match=r"'bafyrei\.\.\.' is not a CID"):
        BlobSource.from_refs([{"did": client.did, "cid": "bafyrei..."}])
    # ... so the statement runs with the CID of the blob just uploaded in its place.
    uploaded_cid = entry.data_urls[0].rsplit("/", 1)[1]

    # Or manually from blob references
    source = BlobSource.from_refs(
        [
            {"did": client.did, "cid": uploaded_cid},
        ]
    )

    # Load and iterate
    ds = atdata.Dataset[FeatureSample](source)
    for batch in ds.ordered(batch_size=32):
        print(batch.features.shape)

    # ------------------------------------------------------------------ With External URLs
    dataset_publisher = DatasetPublisher(client)
    dataset_uri = dataset_publisher.publish_with_urls(
        urls=["s3://example-bucket/demo-data-{000000..000009}.tar"],
        schema_uri=str(schema_uri),
        name="Demo Image Dataset",
        description="Example dataset demonstrating atmosphere publishing",
        tags=["demo", "images", "atdata"],
        license="MIT",
    )
    print(f"Dataset URI: {dataset_uri}")

    # ------------------------------------------------------------------ List and Load Datasets
    dataset_loader = DatasetLoader(client)
    datasets = dataset_loader.list_all(limit=10)
    print(f"Found {len(datasets)} dataset(s)")

    for ds in datasets:
        print(f" - {ds.get('name', 'Unknown')}")
        print(f" Schema: {ds.get('schemaRef', 'N/A')}")
        tags = ds.get("tags", [])
        if tags:
            print(f" Tags: {', '.join(tags)}")

    # ------------------------------------------------------------------ Load a Dataset
    # The page uses `blob_dataset_uri` and `DemoSample` without defining them; its loop
    # reads `batch.id` and `batch.text`. Defined here with the page's earlier blocks: a
    # packable type with those fields, written with webdataset's TarWriter and published
    # through the blob-storage index, as in "With PDS Blob Storage".
    @atdata.packable
    class DemoSample:
        id: int
        text: str

    with wds.writer.TarWriter("demo.tar") as sink:
        for i in range(5):
            sink.write({**DemoSample(id=i, text=f"hello {i}").as_wds, "__key__": f"{i:06d}"})
    blob_dataset_uri = index.insert_dataset(
        atdata.Dataset[DemoSample]("demo.tar"),
        name="demo-texts",
        schema_ref=index.publish_schema(DemoSample, version="1.0.0"),
    ).uri

    # Check storage type
    storage_type = dataset_loader.get_storage_type(str(blob_dataset_uri))
    print(f"Storage type: {storage_type}")

    if storage_type == "blobs":
        blob_urls = dataset_loader.get_blob_urls(str(blob_dataset_uri))
        print(f"Blob URLs: {len(blob_urls)} blob(s)")

    # Load and iterate (works for both storage types)
    ds = dataset_loader.to_dataset(str(blob_dataset_uri), DemoSample)
    for batch in ds.ordered():
        print(f"Sample id={batch.id}, text={batch.text}")

    # ------------------------------------------------------------------ Complete Publishing Workflow
    # 1. Define and create samples
    @atdata.packable
    class FeatureSample:  # the page redefines it
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

    # 3. Authenticate and create index with blob storage
    client = AtmosphereClient(PDS_URL)  # login line: base URL of the local PDS
    client.login(HANDLE, PASSWORD)  # login line: the test account

    store = PDSBlobStore(client)
    index = AtmosphereIndex(client, data_store=store)

    # 4. Publish schema
    schema_uri = index.publish_schema(
        FeatureSample,
        version="1.0.0",
        description="Feature vectors with labels",
    )

    # 5. Publish dataset (shards uploaded as blobs automatically)
    dataset = atdata.Dataset[FeatureSample]("features.tar")
    entry = index.insert_dataset(
        dataset,
        name="synthetic-features-v1",
        schema_ref=schema_uri,
        tags=["features", "synthetic"],
    )

    print(f"Published: {entry.uri}")
    print(f"Data stored at: {entry.data_urls}")  # at://did/blob/cid URLs

    # 6. Later: load from blobs
    source = store.create_source(entry.data_urls)
    ds = atdata.Dataset[FeatureSample](source)
    for batch in ds.ordered(batch_size=32):
        print(f"Loaded batch with {len(batch.label)} samples")
        break

    # ================================================================== checks
    out = capsys.readouterr().out
    assert "Round-trip successful: True" in out
    assert f"Authenticated as: {HANDLE}" in out
    assert "Found 1 schema(s)" in out and " - ImageSample: v1.0.0" in out
    assert "Found 3 dataset(s)" in out and " Tags: demo, images, atdata" in out
    assert "Storage type: blobs" in out and "Blob URLs: 1 blob(s)" in out
    assert [f"Sample id={i}, text=hello {i}" in out for i in range(5)] == [True] * 5
    assert "(32, 64)" in out and "(4, 64)" in out
    assert "Loaded batch with 32 samples" in out

    check = AtmosphereIndex(client)
    names = sorted(e.name for e in check.list_datasets())
    assert names == [
        "Demo Image Dataset",
        "Demo Image Dataset",
        "blob-stored-features",
        "demo-texts",
        "synthetic-features-v1",
    ]
    assert all(e.uri.startswith(f"at://{client.did}/") for e in check.list_datasets())
    assert len(check.list_schemas()) == 4  # ImageSample, two FeatureSamples, DemoSample
    external = check.get_dataset(str(dataset_uri))
    assert external.data_urls == ["s3://example-bucket/demo-data-{000000..000009}.tar"]
    assert len(atdata.Dataset(external.data_urls).list_shards()) == 10  # every shard

    # blobs retained and byte-identical to the tar files written above
    for done, path in ((blob_entry, "temp.tar"), (entry, "features.tar")):
        assert done.storage_type == "blobs"
        (url,) = done.data_urls
        did, cid = url[len("at://") :].split("/blob/")
        data = Path(path).read_bytes()
        assert client.get_blob(did, cid) == data
        assert hashlib.sha256(data).digest() == _cid_digest(cid)
    assert streamed == [s.label for s in blob_samples]
    typed = list(check.dataset_for(entry).ordered())
    assert type(typed[0]).__name__ == "FeatureSample" and len(typed) == 1000
    assert all(
        np.array_equal(a.features, b.features) and a.source == b.source
        for a, b in zip(typed, samples, strict=True)
    )


def _cid_digest(cid: str) -> Any:
    from atdata.atmosphere.blobs import blob_digest

    return blob_digest(cid)
