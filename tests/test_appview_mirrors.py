"""Mirror records in the AppView store, on SQLite and on the real PostgreSQL server.

A mirror is listed only once its digests were checked against the original at the
version it pins, whichever of the two records arrives first; a mirror with other
digests never is; the original's update and deletion show in ``originalStatus``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atdata.appview import open_store
from atdata.appview._mirrors import list_mirrors
from atdata.appview._store import DATASET, Account, Changes, RecordRow, SqlStore
from atdata.atmosphere.mirrors import MIRROR_COLLECTION

DID_A = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"
DID_B = "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb"
DIGESTS = ["a" * 64, "b" * 64]
ORIGINAL = f"at://{DID_A}/{DATASET}/d1"


def original(cid: str = "bafyv1", digests: list[str] = DIGESTS) -> RecordRow:
    record = {
        "$type": DATASET,
        "name": "waves",
        "schemaRef": f"at://{DID_A}/ac.foundation.dataset.sampleSchema/s1",
        "storage": {
            "$type": "ac.foundation.dataset.storageExternal",
            "urls": ["https://x.org/w-0.tar", "https://x.org/w-1.tar"],
            "sha256": digests,
        },
        "createdAt": "2026-01-01T00:00:00Z",
    }
    return RecordRow(ORIGINAL, DID_A, DATASET, "d1", cid, record)


def mirror(rkey: str, *, cid: str = "bafyv1", digests: list[str] = DIGESTS) -> RecordRow:
    record: dict[str, Any] = {
        "$type": MIRROR_COLLECTION,
        "subject": {"uri": ORIGINAL, "cid": cid},
        "storage": {
            "$type": "ac.foundation.dataset.storageExternal",
            "urls": [f"s3://copies/{rkey}-0.tar", f"s3://copies/{rkey}-1.tar"],
        },
        "sha256": digests,
        "createdAt": f"2026-01-02T00:00:0{rkey[-1]}Z",
    }
    return RecordRow(
        f"at://{DID_B}/{MIRROR_COLLECTION}/{rkey}",
        DID_B,
        MIRROR_COLLECTION,
        rkey,
        f"bafym{rkey}",
        record,
    )


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    url = (
        f"sqlite:///{tmp_path / 'appview.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_dsn")
    )
    s = open_store(url)
    assert isinstance(s, SqlStore)
    s.apply(Changes(accounts=[Account(DID_A, "alice.test"), Account(DID_B, "bob.test")]))
    yield s
    s.close()


def listed(store: SqlStore) -> dict[str, str]:
    return {
        row["uri"].rsplit("/", 1)[1]: row["originalStatus"]
        for row in list_mirrors(store, ORIGINAL, 100, None)["mirrors"]
    }


def test_only_mirrors_matching_the_pinned_original_are_listed(store: SqlStore) -> None:
    early = mirror("m1")  # arrives before the original: verified when it comes
    store.apply(Changes(upserts=[early]))
    assert listed(store) == {}
    store.apply(
        Changes(
            upserts=[
                original(),
                mirror("m2"),
                mirror("m3", digests=["c" * 64, "b" * 64]),  # other bytes: never listed
                mirror("m4", cid="bafyother"),  # another version: cannot be checked
            ]
        )
    )
    assert listed(store) == {"m1": "current", "m2": "current"}
    rows = list_mirrors(store, ORIGINAL, 1, None)
    assert len(rows["mirrors"]) == 1 and rows["cursor"]
    rest = list_mirrors(store, ORIGINAL, 1, rows["cursor"])
    assert [r["uri"] for r in rest["mirrors"]] != [r["uri"] for r in rows["mirrors"]]
    assert rest["mirrors"][0]["sha256"] == DIGESTS and rest["mirrors"][0]["handle"] == "bob.test"


def test_an_update_or_delete_of_the_original_is_flagged_and_mirrors_stay_pinned(
    store: SqlStore,
) -> None:
    store.apply(Changes(upserts=[original(), mirror("m1")]))
    store.apply(Changes(upserts=[original(cid="bafyv2")]))
    assert listed(store) == {"m1": "changed"}
    store.apply(Changes(upserts=[mirror("m2")]))  # pins v1, which is no longer there to check
    assert listed(store) == {"m1": "changed"}
    store.apply(Changes(deletes=[ORIGINAL]))
    assert listed(store) == {"m1": "deleted"}
    store.apply(Changes(deletes=[mirror("m1").uri]))
    assert listed(store) == {}
