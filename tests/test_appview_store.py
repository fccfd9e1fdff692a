"""The AppView store contract, on the embedded SQLite store and on the real PostgreSQL server.

Writes are whole transactions (records, accounts and the host cursor together);
search is full-text (FTS5 / tsvector), filtered, ranked, and paged by keyset.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atdata.appview import open_store
from atdata.appview._query import BadParam, SearchParams, parse_text_query
from atdata.appview._store import (
    DATASET,
    LENS,
    SCHEMA,
    Account,
    AppViewStore,
    Changes,
    RecordRow,
    StoreError,
)

DID_A = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"
DID_B = "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb"
SCHEMA_URI = f"at://{DID_A}/{SCHEMA}/s1"


def dataset(did: str, rkey: str, name: str, **fields: Any) -> RecordRow:
    record = {
        "$type": DATASET,
        "name": name,
        "schemaRef": fields.pop("schemaRef", SCHEMA_URI),
        "storage": {"$type": "ac.foundation.dataset.storageExternal", "urls": ["https://x/a.tar"]},
        "createdAt": fields.pop("createdAt", f"2026-01-01T00:00:{int(rkey[-2:]) % 60:02d}Z"),
        **fields,
    }
    return RecordRow(f"at://{did}/{DATASET}/{rkey}", did, DATASET, rkey, f"bafy{rkey}", record)


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'appview.db'}"
    else:
        yield request.getfixturevalue("postgres_dsn")


@pytest.fixture
def store(store_url: str) -> Iterator[AppViewStore]:
    s = open_store(store_url)
    s.apply(Changes(accounts=[Account(DID_A, "alice.test"), Account(DID_B, "bob.test")]))
    yield s
    s.close()


def names(page: Any) -> list[str]:
    return [r["record"]["name"] for r in page.rows]


def search(store: AppViewStore, q: str | None = None, **kw: Any) -> Any:
    return store.search(SearchParams(text=parse_text_query(q) if q else None, **kw))


def test_migrations_are_versioned_and_reopening_keeps_data(store_url: str) -> None:
    s = open_store(store_url)
    s.apply(Changes(upserts=[dataset(DID_A, "r01", "kept")], accounts=[Account(DID_A)]))
    assert s.schema_version() == 4  # records, tags by date, mirrors, page indexes
    s.close()
    again = open_store(store_url)
    assert again.schema_version() == 4  # records, tags by date, mirrors, page indexes
    assert again.get_record(f"at://{DID_A}/{DATASET}/r01")["record"]["name"] == "kept"
    again.close()


def test_a_version_1_index_is_migrated_in_place(store_url: str) -> None:
    from atdata.appview._postgres import PostgresStore
    from atdata.appview._sqlite import SqliteStore

    old_cls = SqliteStore if store_url.startswith("sqlite") else PostgresStore
    legacy = type("Legacy", (old_cls,), {"_migrations": old_cls._migrations[:1]})
    url_arg = store_url[len("sqlite:///") :] if store_url.startswith("sqlite") else store_url
    v1 = legacy(url_arg)
    assert v1.schema_version() == 1
    row = dataset(DID_A, "r07", "legacy set", tags=["old"])
    with v1._transaction() as cur:
        cur.execute(
            v1._sql(
                "INSERT INTO records (uri, did, collection, rkey, cid, record, name, created_at, "
                "indexed_at, search_text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, '')"
            ),
            (
                row.uri,
                row.did,
                row.collection,
                row.rkey,
                row.cid,
                json.dumps(row.record),
                "legacy set",
                row.record["createdAt"],
            ),
        )
        cur.execute(v1._sql("INSERT INTO record_tags (uri, tag) VALUES (?, ?)"), (row.uri, "old"))
        cur.execute(v1._sql("INSERT INTO accounts (did, active) VALUES (?, 1)"), (DID_A,))
    v1.close()
    current = open_store(store_url)
    assert current.schema_version() == len(old_cls._migrations) == 4
    assert [r["uri"] for r in search(current, tags=("old",)).rows] == [row.uri]
    current.close()
    with pytest.raises(StoreError, match="newer than this atdata"):
        legacy(url_arg)


def test_text_search_ranks_name_matches_first_and_filters(store: AppViewStore) -> None:
    store.apply(
        Changes(
            upserts=[
                dataset(
                    DID_A,
                    "r01",
                    "street scenes",
                    description="cats on a street",
                    tags=["vision", "cats"],
                    license="MIT",
                ),
                dataset(
                    DID_B, "r02", "cats", description="photos", tags=["vision"], license="CC-BY-4.0"
                ),
                dataset(DID_B, "r03", "audio clips", description="no felines here", tags=["audio"]),
            ]
        )
    )
    assert names(search(store, "cats")) == ["cats", "street scenes"]
    assert names(search(store, "cats", tags=("vision", "cats"))) == ["street scenes"]
    assert sorted(names(search(store, tags=("vision",)))) == ["cats", "street scenes"]
    assert names(search(store, tags=("vision", "cats"))) == ["street scenes"]
    assert names(search(store, tags=("vision",), license="CC-BY-4.0")) == ["cats"]
    assert names(search(store, "cats", repo=DID_B)) == ["cats"]
    assert names(search(store, "cats", license="MIT")) == ["street scenes"]
    assert names(search(store, '"on a street"')) == ["street scenes"]
    assert names(search(store, '"street on"')) == []
    assert names(search(store, "CATS street")) == ["street scenes"]
    assert sorted(names(search(store, schema=SCHEMA_URI))) == [
        "audio clips",
        "cats",
        "street scenes",
    ]
    assert search(store, "cats").rows[0]["handle"] == "bob.test"


def test_fts_syntax_in_q_is_only_ever_words(store: AppViewStore) -> None:
    store.apply(Changes(upserts=[dataset(DID_A, "r01", "near or not")]))
    for q in ["NEAR(", "near*", "-not", "OR", "AND AND", "name:near", "^near", "(near", "near)"]:
        search(store, q)  # never a syntax error
    assert names(search(store, "near:not")) == ["near or not"]
    with pytest.raises(BadParam, match="unbalanced"):
        parse_text_query('"near')


@pytest.mark.parametrize("q", [None, "common", "tagged"])
def test_keyset_pages_cover_everything_once(store: AppViewStore, q: str | None) -> None:
    rows = [
        dataset(
            DID_A if i % 2 else DID_B,
            f"r{i:02d}",
            f"set {i}",
            description="common " * (i % 4 + 1),
            tags=["every"],
            createdAt=f"2026-01-01T00:00:0{i % 3}Z",
        )
        for i in range(23)
    ]
    store.apply(Changes(upserts=rows))
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        if q == "tagged":
            page = search(store, tags=("every",), limit=5, cursor=cursor)
        else:
            page = search(store, q, limit=5, cursor=cursor)
        seen += [r["uri"] for r in page.rows]
        cursor = page.cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted(r.uri for r in rows)
    assert len(seen) == len(set(seen))


def test_bad_cursor_is_a_bad_param(store: AppViewStore) -> None:
    for cursor in ["garbage", "W10", "WyJyZWNlbnQiLDFd"]:
        with pytest.raises(BadParam):
            search(store, cursor=cursor)
    with pytest.raises(BadParam):  # a recency cursor given to a ranked search
        page = search(store, limit=1)
        store.apply(Changes(upserts=[dataset(DID_A, "r01", "a"), dataset(DID_A, "r02", "b")]))
        page = search(store, limit=1)
        search(store, "a", cursor=page.cursor)


def test_update_delete_and_replace(store: AppViewStore) -> None:
    store.apply(Changes(upserts=[dataset(DID_A, "r01", "first"), dataset(DID_A, "r02", "second")]))
    store.apply(Changes(upserts=[dataset(DID_A, "r01", "renamed")]))
    assert names(search(store, "first")) == []
    assert names(search(store, "renamed")) == ["renamed"]
    store.apply(Changes(deletes=[f"at://{DID_A}/{DATASET}/r02"]))
    assert names(search(store, "second")) == []
    assert store.get_record(f"at://{DID_A}/{DATASET}/r02") is None
    store.apply(Changes(upserts=[dataset(DID_A, "r05", "only")], replace={DID_A}))
    assert [r["uri"].rsplit("/", 1)[1] for r in search(store).rows] == ["r05"]


def test_inactive_accounts_are_hidden(store: AppViewStore) -> None:
    store.apply(Changes(upserts=[dataset(DID_A, "r01", "hidden soon")]))
    store.apply(Changes(accounts=[Account(DID_A, "alice.test", active=False, status="takendown")]))
    assert names(search(store, "hidden")) == []
    assert store.get_record(f"at://{DID_A}/{DATASET}/r01") is None
    assert store.counts().get(DATASET, 0) == 0
    store.apply(Changes(accounts=[Account(DID_A, "alice.test", active=True)]))
    assert names(search(store, "hidden")) == ["hidden soon"]


def test_cursor_and_records_commit_together_or_not_at_all(store: AppViewStore) -> None:
    store.apply(Changes(upserts=[dataset(DID_A, "r01", "before")], cursor=("http://h", 5)))
    bad = dataset(DID_A, "r02", "after")
    bad.record["unserialisable"] = {1, 2}  # json.dumps fails inside the transaction
    with pytest.raises(TypeError):
        store.apply(
            Changes(upserts=[bad], deletes=[f"at://{DID_A}/{DATASET}/r01"], cursor=("http://h", 9))
        )
    assert store.hosts()["http://h"]["cursor"] == 5
    assert names(search(store, "before")) == ["before"]


def test_lenses_schemas_and_handles(store: AppViewStore) -> None:
    schema = RecordRow(
        SCHEMA_URI,
        DID_A,
        SCHEMA,
        "s1",
        "bafys1",
        {
            "$type": SCHEMA,
            "name": "Img",
            "version": "1.0.0",
            "fields": [],
            "createdAt": "2026-01-01T00:00:00Z",
        },
    )
    lens = RecordRow(
        f"at://{DID_B}/{LENS}/l1",
        DID_B,
        LENS,
        "l1",
        "bafyl1",
        {
            "$type": LENS,
            "name": "a2b",
            "sourceSchema": SCHEMA_URI,
            "targetSchema": f"at://{DID_B}/{SCHEMA}/s2",
            "createdAt": "2026-01-01T00:00:00Z",
        },
    )
    store.apply(Changes(upserts=[schema, lens]))
    assert store.lens_edges() == [(lens.uri, SCHEMA_URI, f"at://{DID_B}/{SCHEMA}/s2")]
    page = store.list_records(SCHEMA, repo=DID_A, limit=10, cursor=None, where=[("name", "Img")])
    assert [r["uri"] for r in page.rows] == [SCHEMA_URI]
    assert store.did_for_handle("Bob.Test") == DID_B
    assert json.loads(json.dumps(store.counts())) == {SCHEMA: 1, LENS: 1, "accounts": 2}
