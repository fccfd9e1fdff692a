"""The AppView's web pages, driven in a real headless Chromium (Debian's ``chromium``, via Playwright).

A dataset is published on the session's PDS (blob shards, a shaped array
field, a lens from its schema); the AppView following that PDS indexes
it. The browser searches for it from the home page with JavaScript off, opens
its page, reads the schema table and the load snippet (and runs the snippet),
and checks that the embedded Croissant JSON-LD parses and validates with
``mlcroissant``. A dataset named ``<script>alert(1)</script>`` must render as
text with JavaScript on. The dataset page's screenshot goes to ``tmp_path``.
"""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import httpx
import mlcroissant as mlc
import numpy as np
import pytest
from numpy.typing import NDArray

import atdata
from atdata.atmosphere import (
    AtmosphereClient,
    AtmosphereIndex,
    DatasetPublisher,
    LensPublisher,
    PDSBlobStore,
)
from atdata.stack._base import LocalServer
from helpers import private_atdata_home, wait_for  # noqa: F401 - autouse fixture

pytestmark = pytest.mark.pds

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
XSS = "<script>alert(1)</script>"


@atdata.packable
class Probe:
    """A thermal probe reading."""

    image: Annotated[NDArray[np.uint8], atdata.Shape(2, None)]
    label: int
    note: str | None = None


@atdata.packable
class ProbeLabel:
    """Only the label."""

    label: int


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (no downloaded browser)."""
    from playwright.sync_api import sync_playwright

    path = shutil.which("chromium") or CHROMIUM
    if not Path(path).exists():
        pytest.fail("Chromium is not installed: apt-get install -y chromium", pytrace=False)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def published(
    pds_account: dict[str, str], pds_client: AtmosphereClient, tmp_path: Path
) -> dict[str, Any]:
    """A blob-stored dataset with a lens from its schema, and an XSS-named one."""
    word = f"probe{secrets.token_hex(3)}"
    index = AtmosphereIndex(pds_client, data_store=PDSBlobStore(pds_client))
    paths = []
    for part in range(2):
        path = tmp_path / f"probe-{part}.tar"
        with atdata.ShardWriter(str(path)) as w:
            for i in range(3):
                label = part * 3 + i
                w.write(
                    Probe(image=np.full((2, 4), label, np.uint8), label=label), key=f"{label:04d}"
                )
        paths.append(str(path))
    schema = str(index.publish_schema(Probe, version="1.0.0"))
    entry = index.insert_dataset(
        atdata.Dataset[Probe](paths),
        name="thermal-probes",
        schema_ref=schema,
        description=f"Readings of a {word} thermal probe.",
        tags=["sensors", word],
        license="CC-BY-4.0",
        metadata={"version": "1.0.0"},
    )
    target = str(index.publish_schema(ProbeLabel, version="1.0.0"))
    lens = LensPublisher(pds_client).publish(
        name="probe-to-label",
        source_schema_uri=schema,
        target_schema_uri=target,
        description="keep the label",
    )
    xss = index.insert_dataset(
        atdata.Dataset[Probe](paths[0]),
        name=XSS,
        schema_ref=schema,
        description=f'{word} "><img src=x onerror=alert(2)> </script><script>alert(3)</script>',
        tags=[f"<b>{word}</b>"],
        license="MIT",
    )
    split = DatasetPublisher(pds_client).publish_with_urls(
        "https://data.example.org/probes-{000..002}.tar",
        schema,
        name="probe-splits",
        description=f"The {word} readings, split.",
        sha256=["ab" * 32, "cd" * 32, "ef" * 32],
        samples=9,
        splits=[{"name": "train", "shards": [0, 1]}, {"name": "test", "shards": [2]}],
        license="MIT",
        metadata={"version": "2.0.0"},
    )
    return {
        "word": word,
        "uri": entry.uri,
        "split_uri": str(split),
        "xss_uri": xss.uri,
        "schema": schema,
        "target": target,
        "lens": str(lens),
        "handle": pds_account["handle"],
        "did": pds_account["did"],
        "labels": list(range(6)),
    }


def indexed(view: LocalServer, published: dict[str, Any]) -> None:
    def found() -> bool:
        answer = httpx.get(
            view.url + "/xrpc/ac.foundation.dataset.searchDatasets",
            params={"q": published["word"]},
            trust_env=False,
            timeout=10,
        ).json()
        lenses = httpx.get(
            view.url + "/xrpc/ac.foundation.dataset.listLenses",
            params={"source": published["schema"]},
            trust_env=False,
            timeout=10,
        ).json()
        return len(answer["datasets"]) == 3 and len(lenses["lenses"]) == 1

    wait_for(found, "the AppView to index the three datasets and the lens")


def assert_accessible(page: Any) -> None:
    """One top heading, and a label for every form control a person fills in."""
    assert page.locator("h1").count() == 1
    assert page.locator("h2").count() >= 1
    controls = page.locator("input:not([type=hidden]), select, textarea")
    assert controls.count() >= 1  # the search box on every page
    for i in range(controls.count()):
        ident = controls.nth(i).get_attribute("id")
        assert ident and page.locator(f'label[for="{ident}"]').count() == 1, ident


def dataset_path(uri: str) -> str:
    did, _, rkey = uri.removeprefix("at://").partition("/ac.foundation.dataset.record/")
    return f"/dataset/{did}/{rkey}"


def test_search_open_read_and_validate_a_dataset_page(
    browser: Any,
    appview_server: LocalServer,
    pds_server: LocalServer,
    published: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    indexed(appview_server, published)
    context = browser.new_context(java_script_enabled=False)  # every page works without JS
    page = context.new_page()

    # the home page: a labelled search box and the most recent datasets
    response = page.goto(appview_server.url + "/")
    assert response is not None and response.status == 200
    assert page.get_by_role("heading", level=1).inner_text() == "Datasets on the atmosphere"
    recent = page.locator("ol.results h3 a").all_inner_texts()
    assert "thermal-probes" in recent and XSS in recent
    assert_accessible(page)
    page.get_by_label("Find a dataset by name, description or tag").fill(published["word"])
    page.locator("form.big-search button").click()

    # the results: publisher, name, description, size, license, tags
    page.wait_for_url("**/search?q=*")
    assert page.get_by_role("heading", level=1).inner_text() == (
        f"Datasets matching “{published['word']}”"
    )
    assert_accessible(page)
    result = page.locator("li.result", has=page.get_by_role("link", name="thermal-probes"))
    assert result.locator(".publisher").inner_text() == f"by @{published['handle']}"
    assert result.locator(".license").inner_text() == "CC-BY-4.0"
    assert result.locator(".size").inner_text().endswith("2 shards")
    assert published["word"] in result.locator(".description").inner_text()
    assert result.locator("ul.tags li").all_inner_texts() == ["sensors", published["word"]]
    result.get_by_role("link", name="thermal-probes").click()

    # the dataset page
    page.wait_for_url("**/dataset/**")
    assert page.url == appview_server.url + dataset_path(published["uri"])
    assert page.get_by_role("heading", level=1).inner_text() == "thermal-probes"
    assert_accessible(page)
    byline = page.locator("p.byline").inner_text()
    assert f"@{published['handle']}" in byline and published["did"] in byline
    facts = dict(
        zip(
            page.locator("dl.facts dt").all_inner_texts(),
            page.locator("dl.facts dd").all_inner_texts(),
            strict=True,
        )
    )
    assert facts["License"] == "CC-BY-4.0"
    assert facts["Record"] == published["uri"]
    assert "2 shards" in facts["Size"]
    table = page.locator("table.fields tbody tr")
    rows = [
        [cell.strip() for cell in table.nth(i).locator("th, td").all_inner_texts()]
        for i in range(table.count())
    ]
    assert rows == [
        ["image", "ndarray", "uint8", "(2, *)"],
        ["label", "int", "", ""],
        ["note", "str | None", "", ""],
    ]
    shards = page.locator("table.shards tbody tr")
    assert shards.count() == 2
    for i in range(2):
        cells = shards.nth(i).locator("td").all_inner_texts()
        assert cells[1].startswith("blob bafkrei")
        assert cells[2].endswith(" B") and len(cells[3]) == 64
    lens_items = page.locator("section[aria-labelledby=lenses] ul.lenses li").all_inner_texts()
    assert len(lens_items) == 1 and lens_items[0].startswith("probe-to-label: Probe@1.0.0")
    snippet = page.locator("pre.snippet code").inner_text()
    assert f'atdata.load_dataset("@{published["handle"]}/thermal-probes")' in snippet
    page.screenshot(path=str(tmp_path / "dataset.png"), full_page=True)
    assert (tmp_path / "dataset.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the embedded Croissant: parses, validates in mlcroissant, same as the endpoint
    jsonld = page.locator('script[type="application/ld+json"]').text_content()
    assert jsonld is not None
    doc = json.loads(jsonld)
    assert doc["name"] == "thermal-probes" and doc["url"] == page.url
    assert page.locator('link[rel="canonical"]').get_attribute("href") == page.url
    assert doc["creator"]["identifier"] == published["did"]
    assert [f["contentUrl"].startswith(pds_server.url) for f in doc["distribution"][:2]] == [
        True,
        True,
    ]
    dataset = mlc.Dataset(jsonld=json.loads(jsonld))  # raises mlc.ValidationError on errors
    assert not dataset.metadata.ctx.issues.errors
    assert set(dataset.metadata.ctx.issues.warnings) == set()
    served = httpx.get(
        appview_server.url + dataset_path(published["uri"]).replace("/dataset/", "/croissant/"),
        trust_env=False,
        timeout=10,
    )
    assert served.headers["content-type"] == "application/ld+json"
    assert served.json() == doc

    # the snippet is copy-ready: it loads the dataset
    monkeypatch.setenv("ATDATA_PLC_URL", pds_server.env["PLC_URL"])
    monkeypatch.setenv("ATDATA_PDS_URL", pds_server.url)
    monkeypatch.setenv("ATDATA_ALLOW_PRIVATE_URLS", "1")
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)
    loaded = namespace["ds"]
    assert list(loaded) == ["train"]
    samples = loaded["train"].ordered(batch_size=None)
    assert sorted(int(s.label) for s in samples) == published["labels"]

    # the schema page: fields, versions, datasets of it; the target is readable through the lens
    page.locator("section[aria-labelledby=schema] p a").first.click()
    page.wait_for_url("**/schema/**")
    assert page.get_by_role("heading", level=1).inner_text() == "Probe@1.0.0"
    assert_accessible(page)
    assert [v.split()[0] for v in page.locator("ul.versions li").all_inner_texts()] == ["1.0.0"]
    fields = page.locator("table.fields tbody th").all_inner_texts()
    assert [f.strip() for f in fields] == ["image", "label", "note"]
    using = page.locator("section[aria-labelledby=using] h3 a").all_inner_texts()
    assert sorted(using) == sorted(["thermal-probes", "probe-splits", XSS])
    page.get_by_role("link", name="ProbeLabel@1.0.0").first.click()
    page.wait_for_url("**/schema/**")
    readable = page.locator("section[aria-labelledby=readable] li.result")
    assert "thermal-probes" in readable.locator("h3").all_inner_texts()
    assert "readable through probe-to-label" in readable.first.inner_text()

    # the publisher page, by handle
    page.goto(appview_server.url + f"/publisher/{published['handle']}")
    assert page.get_by_role("heading", level=1).inner_text() == f"@{published['handle']}"
    assert_accessible(page)
    names = page.locator("section[aria-labelledby=datasets] h3 a").all_inner_texts()
    assert sorted(names) == sorted(["thermal-probes", "probe-splits", XSS])
    context.close()


def test_record_values_render_as_text(
    browser: Any, appview_server: LocalServer, published: dict[str, Any]
) -> None:
    indexed(appview_server, published)
    context = browser.new_context()  # JavaScript on: an injected script would run
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(appview_server.url + dataset_path(published["xss_uri"]))
    assert page.get_by_role("heading", level=1).inner_text() == XSS
    assert "<img src=x onerror=alert(2)>" in page.locator("p.description").inner_text()
    assert page.locator("ul.tags li").all_inner_texts() == [f"<b>{published['word']}</b>"]
    assert page.locator("body script, body img, body b").count() == 0
    assert page.locator("head script").count() == 1  # only the JSON-LD, still one element
    doc = json.loads(page.locator('script[type="application/ld+json"]').text_content() or "")
    assert doc["name"] == XSS and "</script>" in doc["description"]
    snippet = page.locator("pre.snippet code").inner_text()
    assert f'atdata.load_dataset("@{published["handle"]}/{XSS}")' in snippet

    page.goto(appview_server.url + "/search?" + urlencode({"q": published["word"]}))
    assert XSS in page.locator("ol.results h3 a").all_inner_texts()
    assert page.locator("body script, body img, body b").count() == 0
    assert dialogs == []
    context.close()


def test_external_shards_and_splits(
    browser: Any, appview_server: LocalServer, published: dict[str, Any]
) -> None:
    indexed(appview_server, published)
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(appview_server.url + dataset_path(published["split_uri"]))
    assert page.get_by_role("heading", level=1).inner_text() == "probe-splits"
    assert_accessible(page)
    assert "9 samples" in page.locator("dl.facts dd").nth(2).inner_text()
    shards = page.locator("table.shards tbody tr")
    assert [shards.nth(i).locator("td").nth(1).inner_text() for i in range(3)] == [
        f"https://data.example.org/probes-{i:03d}.tar" for i in range(3)
    ]
    links = page.locator("table.shards tbody a")
    assert links.first.get_attribute("href") == "https://data.example.org/probes-000.tar"
    assert shards.nth(2).locator("td").nth(3).inner_text() == "ef" * 32
    splits = page.locator("table.splits tbody tr")
    assert [splits.nth(i).locator("th, td").all_inner_texts() for i in range(2)] == [
        ["train", "0, 1"],
        ["test", "2"],
    ]
    assert '("train", "test")' in page.locator("pre.snippet code").inner_text()
    doc = json.loads(page.locator('script[type="application/ld+json"]').text_content() or "")
    assert [f["contentUrl"] for f in doc["distribution"][:3]] == [
        f"https://data.example.org/probes-{i:03d}.tar" for i in range(3)
    ]
    assert doc["version"] == "2.0.0"
    dataset = mlc.Dataset(jsonld=doc)
    assert not dataset.metadata.ctx.issues.errors
    assert set(dataset.metadata.ctx.issues.warnings) == set()
    split_sets = [rs for rs in dataset.metadata.record_sets if rs.uuid == "splits"]
    assert len(split_sets) == 1
    context.close()


def test_bad_addresses_and_queries_are_pages_not_crashes(appview_server: LocalServer) -> None:
    def get(path: str) -> httpx.Response:
        return httpx.get(appview_server.url + path, trust_env=False, timeout=10)

    missing = get("/dataset/did:plc:aaaaaaaaaaaaaaaaaaaaaaaa/3kaaaaaaaaaaa")
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
    assert get("/dataset/not-a-did/x").status_code == 404
    assert get("/publisher/nobody.invalid").status_code == 404
    bad = get('/search?q="unbalanced')
    assert bad.status_code == 400 and "unbalanced double quote" in bad.text
    assert get("/search?cursor=garbage").status_code == 400
    croissant = get("/croissant/did:plc:aaaaaaaaaaaaaaaaaaaaaaaa/3kaaaaaaaaaaa")
    assert croissant.status_code == 404 and croissant.json()["error"] == "RecordNotFound"
    css = get("/static/atdata.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


# --------------------------------------------------------------------------- without a browser

NDARRAY = "ac.foundation.dataset.schemaType#ndarray"
PRIMITIVE = "ac.foundation.dataset.schemaType#primitive"


def test_schema_table_rows_for_every_field_kind() -> None:
    from atdata.appview._display import schema_rows

    ref = "at://did:plc:aaaaaaaaaaaaaaaaaaaaaaaa/ac.foundation.dataset.sampleSchema/3kab"
    record = {
        "fields": [
            {
                "name": "img",
                "fieldType": {"$type": NDARRAY, "dtype": "uint8", "shape": [3, -1, 224]},
            },
            {"name": "any", "fieldType": {"$type": NDARRAY}, "optional": True},
            {
                "name": "frames",
                "fieldType": {
                    "$type": "x#array",
                    "items": {"$type": NDARRAY, "dtype": "int16", "shape": [2, 2]},
                },
            },
            {
                "name": "counts",
                "fieldType": {
                    "$type": "x#map",
                    "values": {"$type": PRIMITIVE, "primitive": "int", "optional": True},
                },
            },
            {
                "name": "box",
                "fieldType": {
                    "$type": "x#sample",
                    "name": "Box",
                    "fields": [
                        {"name": "w", "fieldType": {"$type": PRIMITIVE, "primitive": "float"}}
                    ],
                },
            },
            {"name": "other", "fieldType": {"$type": "x#ref", "ref": ref}},
            {"name": "broken", "fieldType": "not an object"},
            "not a field",
        ]
    }
    rows = [(r.name, r.type, r.dtype, r.shape, r.optional, r.ref_path) for r in schema_rows(record)]
    assert rows == [
        ("img", "ndarray", "uint8", "(3, *, 224)", False, None),
        ("any", "ndarray", "any", "", True, None),
        ("frames", "list[ndarray]", "int16", "(2, 2)", False, None),
        ("counts", "dict[str, int | None]", "", "", False, None),
        ("box", "Box", "", "", False, None),
        ("box.w", "float", "", "", False, None),
        ("other", "ref", "", "", False, "/schema/did:plc:aaaaaaaaaaaaaaaaaaaaaaaa/3kab"),
        ("broken", "?", "", "", False, None),
    ]
    assert schema_rows({"fields": "nope"}) == []


def test_json_ld_cannot_leave_its_script_element() -> None:
    from atdata.appview._pages import script_json

    doc = {"name": "</script><!-- \u2028\u2029 & <b>", "nested": ["</SCRIPT>"]}
    text = str(script_json(doc))
    assert not any(c in text for c in "<>&\u2028\u2029")
    assert json.loads(text) == doc


def test_size_summary_and_snippet() -> None:
    from atdata.appview._display import load_snippet, size_summary

    blobs = {"storage": {"blobs": [{"size": 1500}, {"size": 500}]}}
    assert size_summary(blobs) == "2.0 kB · 2 shards"
    stated = {"size": {"samples": 1, "bytes": 12, "shards": 1}, "storage": {"urls": ["a{0..9}"]}}
    assert size_summary(stated) == "1 sample · 12 B · 1 shard"
    assert size_summary({"storage": {"urls": ["s-{000..099}.tar"]}}) == ""  # not expanded
    assert size_summary({"size": "huge", "storage": None}) == ""
    snippet = load_snippet(None, "did:plc:x", 'a "quoted" name', [])
    namespace: dict[str, Any] = {}
    exec(snippet.replace("import atdata", "").replace("atdata.load_dataset", "str"), namespace)
    assert namespace["ds"] == '@did:plc:x/a "quoted" name'


def test_a_malformed_record_still_gets_a_page(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from atdata.appview import AppView, open_store
    from atdata.appview._store import Account, Changes, RecordRow

    did = "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb"
    dataset = "ac.foundation.dataset.record"
    record = {
        "$type": dataset,
        "name": "odd",
        "schemaRef": f"at://{did}/ac.foundation.dataset.sampleSchema/3kzz",
        "storage": {"$type": "ac.foundation.dataset.storageExternal", "urls": ["s-{0..9}.tar"]},
        "splits": [{"name": "train", "shards": [99]}],
        "createdAt": "2026-01-01T00:00:00Z",
    }
    store = open_store(f"sqlite:///{tmp_path / 'view.db'}")
    store.apply(
        Changes(
            accounts=[Account(did, "odd.test")],
            upserts=[RecordRow(f"at://{did}/{dataset}/3kaa", did, dataset, "3kaa", "bafy", record)],
        )
    )
    with TestClient(AppView([], store).app) as client:
        page = client.get(f"/dataset/{did}/3kaa")
        assert page.status_code == 200
        assert "split &#39;train&#39; names a shard index out of range" in page.text
        assert "is not indexed" in page.text  # the schema
        assert 'type="application/ld+json"' not in page.text  # no script, no alternate link
        croissant = client.get(f"/croissant/{did}/3kaa")
        assert croissant.status_code == 422 and croissant.json()["error"] == "InvalidRecord"
        assert client.get("/publisher/odd.test").status_code == 200
        assert client.get(f"/schema/{did}/3kzz").status_code == 404


def test_results_are_paged_with_the_store_cursors(tmp_path: Path) -> None:
    import re

    from starlette.testclient import TestClient

    from atdata.appview import AppView, open_store
    from atdata.appview._store import Account, Changes, RecordRow

    did = "did:plc:cccccccccccccccccccccccc"
    dataset = "ac.foundation.dataset.record"
    rows = []
    for i in range(45):
        record = {
            "$type": dataset,
            "name": f"paged set {i:02d}",
            "schemaRef": f"at://{did}/ac.foundation.dataset.sampleSchema/3kzz",
            "storage": {
                "$type": "ac.foundation.dataset.storageExternal",
                "urls": ["https://x.org/a.tar"],
            },
            "tags": ["paged"],
            "createdAt": f"2026-01-01T00:00:{i:02d}Z",
        }
        rows.append(
            RecordRow(f"at://{did}/{dataset}/3k{i:02d}", did, dataset, f"3k{i:02d}", "bafy", record)
        )
    store = open_store(f"sqlite:///{tmp_path / 'view.db'}")
    store.apply(Changes(accounts=[Account(did, "pager.test")], upserts=rows))

    def walk(client: TestClient, first: str) -> list[list[str]]:
        pages, href = [], first
        while href:
            html = client.get(href).text
            pages.append(re.findall(r'<h3><a href="[^"]+">(paged set \d\d)</a></h3>', html))
            found = re.search(r'<a rel="next" href="([^"]+)">', html)
            href = found.group(1).replace("&amp;", "&") if found else None
            assert (first != href) and ("First page" in html) == (len(pages) > 1)
        return pages

    with TestClient(AppView([], store).app) as client:
        for first in ("/search?tag=paged", "/search?q=paged", "/publisher/pager.test"):
            pages = walk(client, first)
            assert [len(p) for p in pages] == [20, 20, 5], first
            names = [n for p in pages for n in p]
            assert len(set(names)) == 45
        recent = walk(client, "/search?tag=paged")
        assert recent[0][0] == "paged set 44" and recent[-1][-1] == "paged set 00"


def test_schema_versions_newest_first_and_lens_paths(tmp_path: Path) -> None:
    import re

    from starlette.testclient import TestClient

    from atdata.appview import AppView, open_store
    from atdata.appview._store import Account, Changes, RecordRow

    did = "did:plc:dddddddddddddddddddddddd"
    schema_nsid, lens_nsid = "ac.foundation.dataset.sampleSchema", "ac.foundation.dataset.lens"
    dataset = "ac.foundation.dataset.record"

    def schema(rkey: str, name: str, version: str) -> RecordRow:
        record = {
            "$type": schema_nsid,
            "name": name,
            "version": version,
            "fields": [{"name": "x", "fieldType": {"$type": PRIMITIVE, "primitive": "int"}}],
            "createdAt": "2026-01-01T00:00:00Z",
        }
        return RecordRow(f"at://{did}/{schema_nsid}/{rkey}", did, schema_nsid, rkey, "bafy", record)

    def uri(rkey: str) -> str:
        return f"at://{did}/{schema_nsid}/{rkey}"

    def lens(rkey: str, name: str, source: str, target: str) -> RecordRow:
        record = {
            "$type": lens_nsid,
            "name": name,
            "sourceSchema": uri(source),
            "targetSchema": uri(target),
            "createdAt": "2026-01-01T00:00:00Z",
        }
        return RecordRow(f"at://{did}/{lens_nsid}/{rkey}", did, lens_nsid, rkey, "bafy", record)

    data = {
        "$type": dataset,
        "name": "raw readings",
        "schemaRef": uri("raw"),
        "storage": {
            "$type": "ac.foundation.dataset.storageExternal",
            "urls": ["https://x.org/a.tar"],
        },
        "createdAt": "2026-01-02T00:00:00Z",
    }
    store = open_store(f"sqlite:///{tmp_path / 'view.db'}")
    store.apply(
        Changes(
            accounts=[Account(did, "versions.test")],
            upserts=[
                schema("v9", "Reading", "1.9.0"),
                schema("v10", "Reading", "1.10.0"),
                schema("v2rc", "Reading", "2.0.0-rc1"),
                schema("raw", "Raw", "1.0.0"),
                schema("mid", "Mid", "1.0.0"),
                lens("l1", "raw-to-mid", "raw", "mid"),
                lens("l2", "mid-to-reading", "mid", "v10"),
                RecordRow(f"at://{did}/{dataset}/3kd", did, dataset, "3kd", "bafy", data),
            ],
        )
    )
    with TestClient(AppView([], store).app) as client:
        html = client.get(f"/schema/{did}/v10").text
        versions = re.findall(
            r"<li>(?:<strong>|<a [^>]+>)([^<]+)</", html.split('id="versions"')[1]
        )
        assert versions[:3] == ["2.0.0-rc1", "1.10.0", "1.9.0"]
        readable = html.split('id="readable"')[1].split("</section>")[0]
        assert "raw readings" in readable
        assert "readable through raw-to-mid → mid-to-reading" in readable
        assert "No indexed dataset uses this schema." in html
