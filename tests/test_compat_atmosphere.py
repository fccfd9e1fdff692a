"""``SchemaPublisher.publish(T)`` and ``AtmosphereIndex.publish_schema(T)`` without a version,
as the existing atdata's users call them, against the suite's real PDS.

The next patch version when the fields changed since our latest schema of the
type; that same schema (no new record) when they did not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

import atdata
from atdata.atmosphere import AtmosphereClient, AtmosphereIndex, SchemaLoader, SchemaPublisher
from atdata.atmosphere.schema import schema_identity, to_schema_record
from helpers import private_atdata_home  # noqa: F401 - autouse fixture

SCHEMA = "ac.foundation.dataset.sampleSchema"
TYPE = "ac.foundation.dataset.schemaType"


@atdata.packable
class Point:
    xy: NDArray[np.float32]
    name: str


@atdata.packable
class PointV2:
    xy: NDArray[np.float32]
    name: str
    z: int = 0


PointV2.__name__ = PointV2.__qualname__ = "Point"  # the same identity, changed fields


@atdata.packable
class Legacy:
    label: str


def schema_records(client: AtmosphereClient) -> list[dict]:
    return list(client.iter_records(SCHEMA))


def test_publish_without_version_picks_the_version(pds_client: AtmosphereClient) -> None:
    publisher = SchemaPublisher(pds_client)
    loader = SchemaLoader(pds_client)
    first = publisher.publish(Point)
    assert loader.get(first)["version"] == "1.0.0"
    assert publisher.publish(Point) == first  # unchanged fields: the same record
    assert len(schema_records(pds_client)) == 1

    second = publisher.publish(PointV2)
    assert second != first
    record = loader.get(second)
    assert record["version"] == "1.0.1" and record["module"] == schema_identity(Point)
    assert [f["name"] for f in record["fields"]] == ["xy", "name", "z"]
    assert publisher.publish(PointV2) == second
    assert len(schema_records(pds_client)) == 2

    # the first fields again differ from the latest (1.0.1): a new version
    third = publisher.publish(Point)
    assert loader.get(third)["version"] == "1.0.2"
    assert loader.latest(Point).uri == str(third)
    assert loader.decode(second).from_bytes(PointV2(np.zeros(2, np.float32), "p", 7).packed).z == 7

    # an explicit version is published as asked, as before
    explicit = publisher.publish(Point, version="3.0.0")
    assert loader.get(explicit)["version"] == "3.0.0"
    assert publisher.publish(Point) == explicit
    assert publisher.publish(PointV2).rkey != explicit.rkey
    assert loader.get(publisher.publish(PointV2))["version"] == "3.0.1"


def test_seed_era_records_count_by_name(pds_client: AtmosphereClient) -> None:
    # a record as the existing atdata wrote it: no module, other fields, version 1.4.0
    seed = {
        "$type": SCHEMA,
        "name": "Legacy",
        "version": "1.4.0",
        "fields": [
            {
                "name": "label",
                "fieldType": {"$type": f"{TYPE}#primitive", "primitive": "str"},
                "optional": False,
            },
            {
                "name": "score",
                "fieldType": {"$type": f"{TYPE}#primitive", "primitive": "float"},
                "optional": False,
            },
        ],
        "createdAt": "2026-01-26T12:34:56.789012+00:00",
    }
    pds_client.create_record(SCHEMA, seed)
    publisher = SchemaPublisher(pds_client)
    uri = publisher.publish(Legacy)
    assert SchemaLoader(pds_client).get(uri)["version"] == "1.4.1"
    assert publisher.publish(Legacy) == uri

    # seed fields equal to the type's: the seed record itself is reused
    same = dict(seed, version="2.0.0", fields=to_schema_record(Legacy, version="1.0.0")["fields"])
    kept = pds_client.create_record(SCHEMA, same)
    assert publisher.publish(Legacy) == kept
    assert len(schema_records(pds_client)) == 3


def test_index_publish_schema_and_insert_pick_the_version(
    pds_client: AtmosphereClient, tmp_path: Path
) -> None:
    index = AtmosphereIndex(pds_client)
    ref = index.publish_schema(Point)
    assert index.get_schema(ref)["version"] == "1.0.0"
    assert index.publish_schema(Point) == ref
    changed = index.publish_schema(PointV2)
    assert index.get_schema(changed)["version"] == "1.0.1"
    # insert_dataset without schema_ref publishes (or reuses) the dataset type's schema
    ds = atdata.write_samples([PointV2(np.zeros(2, np.float32), "a", 1)], tmp_path / "p.tar")
    entry = index.insert_dataset(ds, name="points")
    assert entry.schema_ref.split("/")[-1] == changed.split("/")[-1]
    assert len(schema_records(pds_client)) == 2
