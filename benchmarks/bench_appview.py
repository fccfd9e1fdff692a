"""The AppView: ingest rate, publish-to-searchable lag, and search latency at scale.

Cases:

- ``ingest``: N dataset records are published on a fresh local PDS (``applyWrites``, 200
  records per commit), then replayed from cursor 0 of its ``subscribeRepos`` stream twice: by a
  plain firehose reader (websocket frames decoded with the ``atproto`` SDK, nothing else) and
  by the AppView's follower (decode, signature check, MST proofs, lexicon validation, SQLite
  write with the cursor). Records per second, AppView against the plain reader.
- ``lag``: a running AppView (``atdata appview serve``) follows the PDS; a dataset record is
  created and ``searchDatasets`` polled (every 5 ms) until it answers with it. Median and p99
  of the time from the ``createRecord`` call to the first answer holding the record.
- ``search``: an index of 100,000 synthetic datasets (20,000 with ``--quick``) written through
  the ingest path's store transactions (``Changes`` batches, as the follower writes them; the
  firehose and verification are left out), on SQLite and on PostgreSQL; then ``searchDatasets``
  over HTTP with a mix of one-word, two-word, phrase, tag-filtered and browse queries. Median and
  p99 per query; target 10 ms median.
- ``pages``: the web pages (home, search by words and by tag, dataset, schema, publisher) and
  the Croissant endpoint over HTTP on the same 100,000 synthetic datasets (SQLite), with a
  schema record for every schemaRef and a lens per publisher. Median and p99 per page; target
  well under 100 ms.

    python benchmarks/bench_appview.py [--quick] [--pages]   (--pages: only the pages case)
"""

from __future__ import annotations

import contextlib
import gc
import os
import random
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # standalone: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from benchmarks.run import error_row, format_table, make_row, median

SUITE = "appview"
DATASET = "ac.foundation.dataset.record"


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


# --------------------------------------------------------------------------- ingest


def _publish(client: Any, schema_uri: str, n: int, tag: str) -> None:
    from atdata.atmosphere import DatasetPublisher

    publisher = DatasetPublisher(client)
    publisher.publish_many(
        {
            "name": f"{tag} dataset {i}",
            "schema_uri": schema_uri,
            "urls": [f"https://data.example.org/{tag}/{i}-{{000..009}}.tar"],
            "description": f"synthetic benchmark dataset number {i} about {tag}",
            "tags": ["bench", tag],
        }
        for i in range(n)
    )


def _plain_reader(url: str, last_seq: int) -> float:
    """Seconds for a bare SDK firehose reader to receive every event up to ``last_seq``."""
    from atproto_subscription.frames import Frame
    from websockets.sync.client import connect

    ws_url = url.replace("http://", "ws://") + "/xrpc/com.atproto.sync.subscribeRepos?cursor=0"
    t0 = time.perf_counter()
    with connect(ws_url, max_size=5 * 1024 * 1024, proxy=None) as ws:
        while True:
            frame = Frame.from_bytes(ws.recv(timeout=60))
            if frame.body.get("seq", 0) >= last_seq:
                return time.perf_counter() - t0


def _appview_ingest(url: str, plc: str, last_seq: int, db: Path) -> float:
    """Seconds for the AppView's follower to apply every event up to ``last_seq``."""
    from atdata.appview import AppView
    from atdata.appview._store import Changes

    view = AppView([url], f"sqlite:///{db}", plc_url=plc)
    # Skip the backfill: this measures the stream, from its first event.
    view.store.apply(Changes(cursor=(url, 0), backfilled=url))
    t0 = time.perf_counter()
    view.start()
    try:
        while (view.store.hosts()[url]["cursor"] or 0) < last_seq:
            time.sleep(0.002)
        return time.perf_counter() - t0
    finally:
        view.stop()


def ingest_rows(
    quick: bool, server: Any, client: Any, schema_uri: str, tmp: Path
) -> list[dict[str, Any]]:
    n = 1000 if quick else 4000
    _publish(client, schema_uri, n, "ingest")
    last_seq = _last_seq(server.url)
    reps = 2 if quick else 3
    plain, ours = [], []
    for rep in range(reps):
        plain.append(_plain_reader(server.url, last_seq))
        ours.append(
            _appview_ingest(server.url, server.env["PLC_URL"], last_seq, tmp / f"ingest-{rep}.db")
        )
    value, peer = n / median(ours), n / median(plain)
    return [
        make_row(
            SUITE,
            f"ingest {n} dataset records from a real PDS firehose (200 per commit)",
            "ingest",
            "records/s",
            value,
            peer,
            peer_name="plain SDK firehose reader (decode only)",
            note="AppView verifies signatures, MST proofs and lexicons and writes SQLite with the "
            f"cursor; median of {reps}",
            seconds={"appview": ours, "plain": plain},
        )
    ]


def _last_seq(url: str) -> int:
    """The stream's newest sequence number (read from the live tail, cursor 0 replays all)."""
    from atproto_subscription.frames import Frame
    from websockets.sync.client import connect

    ws_url = url.replace("http://", "ws://") + "/xrpc/com.atproto.sync.subscribeRepos?cursor=0"
    last = 0
    with connect(ws_url, max_size=5 * 1024 * 1024, proxy=None) as ws:
        while True:
            try:
                frame = Frame.from_bytes(ws.recv(timeout=2))
            except TimeoutError:
                return last
            last = max(last, int(frame.body.get("seq", 0)))


# --------------------------------------------------------------------------- lag


def lag_rows(
    quick: bool, server: Any, client: Any, schema_uri: str, tmp: Path
) -> list[dict[str, Any]]:
    from atdata.atmosphere.datasets import EXTERNAL_STORAGE, dataset_record
    from atdata.stack.appview import start_appview

    k = 20 if quick else 100
    lags: list[float] = []
    with start_appview([server.url], plc_url=server.env["PLC_URL"], data_dir=tmp / "lag") as view:
        http = httpx.Client(base_url=view.url, trust_env=False, timeout=10)
        # Wait until the backfill of what the ingest case published is done.
        while not http.get("/xrpc/ac.foundation.dataset.describeService").json()["hosts"][0][
            "backfilled"
        ]:
            time.sleep(0.1)
        for i in range(-1, k):  # the first round warms both servers up and is not counted
            word = f"lag{secrets.token_hex(6)}"
            record = dataset_record(
                name=f"{word} {i}",
                schema_ref=schema_uri,
                storage={
                    "$type": EXTERNAL_STORAGE,
                    "urls": [f"https://data.example.org/{word}.tar"],
                },
            )
            t0 = time.perf_counter()
            client.create_record(DATASET, record)
            while not http.get(
                "/xrpc/ac.foundation.dataset.searchDatasets", params={"q": word}
            ).json()["datasets"]:
                time.sleep(0.005)
            if i >= 0:
                lags.append(time.perf_counter() - t0)
        http.close()
    ms = [x * 1000 for x in lags]
    return [
        make_row(
            SUITE,
            f"publish -> searchable lag, median of {k}",
            "lag_median",
            "ms",
            median(ms),
            higher_is_better=False,
            note="createRecord call to first searchDatasets answer with it (polled every 5 ms), "
            "after one uncounted warm-up round",
            samples_ms=ms,
        ),
        make_row(
            SUITE,
            f"publish -> searchable lag, p99 of {k}",
            "lag_p99",
            "ms",
            _p99(ms),
            higher_is_better=False,
        ),
    ]


# --------------------------------------------------------------------------- search at scale

_TAGS = [f"topic{i}" for i in range(60)]


def _vocabulary(rng: random.Random) -> list[str]:
    syllables = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "pe", "su", "do", "fa"]
    words = {"".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(6000)}
    return sorted(words)


def _synthetic(n: int, seed: int = 7) -> tuple[list[Any], list[str]]:
    from atdata.appview._store import RecordRow

    rng = random.Random(seed)
    vocab = _vocabulary(rng)
    weights = [1.0 / (i + 1) for i in range(len(vocab))]  # Zipf-like word frequencies
    dids = [f"did:plc:{secrets.token_hex(12)}" for _ in range(500)]
    rows = []
    for i in range(n):
        did = dids[i % len(dids)]
        name = " ".join(rng.choices(vocab, weights, k=3))
        desc = " ".join(rng.choices(vocab, weights, k=25))
        record = {
            "$type": DATASET,
            "name": name,
            "schemaRef": f"at://{did}/ac.foundation.dataset.sampleSchema/s{i % 7}",
            "storage": {
                "$type": "ac.foundation.dataset.storageExternal",
                "urls": [f"https://d.example/{i}.tar"],
            },
            "createdAt": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
            "description": desc,
            "tags": rng.sample(_TAGS, 3),
            "license": rng.choice(["MIT", "CC-BY-4.0", "Apache-2.0"]),
        }
        rkey = f"3l{i:011d}"
        rows.append(
            RecordRow(f"at://{did}/{DATASET}/{rkey}", did, DATASET, rkey, f"bafy{i}", record)
        )
    return rows, vocab


def _load(store: Any, rows: list[Any]) -> float:
    from atdata.appview._store import Account, Changes

    dids = sorted({r.did for r in rows})
    store.apply(Changes(accounts=[Account(d, f"{d[8:20]}.test") for d in dids]))
    t0 = time.perf_counter()
    for i in range(0, len(rows), 500):
        store.apply(Changes(upserts=rows[i : i + 500], cursor=("synthetic", i)))
    return time.perf_counter() - t0


def _queries(vocab: list[str], k: int) -> list[dict[str, Any]]:
    rng = random.Random(11)
    mid = vocab[50:1500]  # neither the commonest words nor the rarest
    out: list[dict[str, Any]] = []
    for i in range(k):
        kind = i % 5
        if kind == 0:
            out.append({"q": rng.choice(mid)})
        elif kind == 1:
            out.append({"q": f"{rng.choice(vocab[:300])} {rng.choice(mid)}"})
        elif kind == 2:
            out.append({"q": f'"{rng.choice(vocab[:200])} {rng.choice(vocab[:200])}"'})
        elif kind == 3:
            out.append({"q": rng.choice(mid), "tags": rng.choice(_TAGS)})
        else:
            out.append({"tags": rng.choice(_TAGS), "license": "MIT"})
    return out


@contextlib.contextmanager
def _served(store: Any) -> Iterator[str]:
    import uvicorn

    from atdata.appview import AppView
    from atdata.stack._base import free_port

    view = AppView([], store)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(view.app, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            if httpx.get(url + "/health", trust_env=False).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)


def search_rows(quick: bool, tmp: Path) -> list[dict[str, Any]]:
    from tests.servers.postgres import start_postgres

    from atdata.appview import open_store

    n = 20_000 if quick else 100_000
    k = 200 if quick else 1000
    vocab = _synthetic(0)[1]
    queries = _queries(vocab, k)
    out: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(start_postgres())
        for backend, url in (("SQLite", f"sqlite:///{tmp / 'search.db'}"), ("PostgreSQL", pg.url)):
            store = open_store(url)
            rows = _synthetic(n)[0]
            load_s = _load(store, rows)
            store.maintain()
            del rows  # a server holds no such list: keep the collector's work realistic
            gc.collect()
            with (
                _served(store) as base,
                httpx.Client(base_url=base, trust_env=False, timeout=30) as http,
            ):
                for q in queries[:20]:  # warm caches and connections
                    http.get("/xrpc/ac.foundation.dataset.searchDatasets", params=q)
                times = []
                hits = 0
                for q in queries:
                    t0 = time.perf_counter()
                    response = http.get("/xrpc/ac.foundation.dataset.searchDatasets", params=q)
                    times.append((time.perf_counter() - t0) * 1000)
                    hits += len(response.json()["datasets"])
            med = median(times)
            out += [
                make_row(
                    SUITE,
                    f"searchDatasets over HTTP at {n:,} datasets ({backend}), median of {k}",
                    f"search_median_{backend.lower()}",
                    "ms",
                    med,
                    higher_is_better=False,
                    target="<= 10 ms",
                    met=med <= 10,
                    note=f"mix of word, two-word, phrase, tag-filtered and browse queries; "
                    f"{hits / k:.1f} rows per answer; loaded in {load_s:.0f} s "
                    f"({n / load_s:,.0f} records/s through store transactions)",
                ),
                make_row(
                    SUITE,
                    f"searchDatasets over HTTP at {n:,} datasets ({backend}), p99 of {k}",
                    f"search_p99_{backend.lower()}",
                    "ms",
                    _p99(times),
                    higher_is_better=False,
                ),
            ]
            store.close()
    return out


# --------------------------------------------------------------------------- web pages at scale

_SCHEMA_NSID = "ac.foundation.dataset.sampleSchema"
_LENS_NSID = "ac.foundation.dataset.lens"


def _schemas_and_lenses(rows: list[Any]) -> list[Any]:
    """A schema record for every ``schemaRef`` of ``rows`` and, per publisher, a lens s0 -> s1."""
    from atdata.appview._store import RecordRow

    out = []
    for ref in sorted({r.record["schemaRef"] for r in rows}):
        did, _, rkey = ref.removeprefix("at://").partition(f"/{_SCHEMA_NSID}/")
        record = {
            "$type": _SCHEMA_NSID,
            "name": f"Sample{rkey}",
            "version": "1.0.0",
            "createdAt": "2026-01-01T00:00:00Z",
            "fields": [
                {
                    "name": "image",
                    "fieldType": {
                        "$type": "ac.foundation.dataset.schemaType#ndarray",
                        "dtype": "uint8",
                        "shape": [3, -1, -1],
                    },
                },
                {
                    "name": "label",
                    "fieldType": {
                        "$type": "ac.foundation.dataset.schemaType#primitive",
                        "primitive": "int",
                    },
                },
            ],
        }
        out.append(RecordRow(ref, did, _SCHEMA_NSID, rkey, f"bafys{len(out)}", record))
    for did in sorted({r.did for r in rows}):
        lens = {
            "$type": _LENS_NSID,
            "name": "s0-to-s1",
            "sourceSchema": f"at://{did}/{_SCHEMA_NSID}/s0",
            "targetSchema": f"at://{did}/{_SCHEMA_NSID}/s1",
            "createdAt": "2026-01-01T00:00:00Z",
        }
        out.append(RecordRow(f"at://{did}/{_LENS_NSID}/l0", did, _LENS_NSID, "l0", "bafyl", lens))
    return out


def page_rows(quick: bool, tmp: Path) -> list[dict[str, Any]]:
    """Each web page (and the Croissant endpoint) over HTTP at 100,000 datasets on SQLite."""
    from atdata.appview import open_store
    from atdata.appview._store import Changes

    n = 20_000 if quick else 100_000
    k = 50 if quick else 200
    rows, vocab = _synthetic(n)
    extra = _schemas_and_lenses(rows)
    rng = random.Random(5)
    picks = rng.sample(rows, k)
    schemas = [r for r in extra if r.collection == _SCHEMA_NSID]
    mid = vocab[50:1500]

    def path(kind: str, uri: str) -> str:
        did, _, rest = uri.removeprefix("at://").partition("/")
        return f"/{kind}/{did}/{rest.rpartition('/')[2]}"

    pages: dict[str, list[str]] = {
        "home": ["/"] * k,
        "search (words)": [f"/search?q={rng.choice(mid)}" for _ in range(k)],
        "search (tag)": [f"/search?tag={rng.choice(_TAGS)}" for _ in range(k)],
        "dataset": [path("dataset", r.uri) for r in picks],
        "schema": [path("schema", r.uri) for r in rng.sample(schemas, min(k, len(schemas)))],
        "publisher": [f"/publisher/{r.did[8:20]}.test" for r in picks],
        "croissant": [path("croissant", r.uri) for r in picks],
    }
    out: list[dict[str, Any]] = []
    store = open_store(f"sqlite:///{tmp / 'pages.db'}")
    try:
        load_s = _load(store, rows)
        store.apply(Changes(upserts=extra))
        with (
            _served(store) as base,
            httpx.Client(base_url=base, trust_env=False, timeout=30) as http,
        ):
            for kind, paths in pages.items():
                for p in paths[:10]:  # warm caches and connections
                    http.get(p)
                times = []
                for p in paths:
                    t0 = time.perf_counter()
                    response = http.get(p)
                    times.append((time.perf_counter() - t0) * 1000)
                    if response.status_code != 200:
                        raise RuntimeError(f"{p}: HTTP {response.status_code}")
                med = median(times)
                out += [
                    make_row(
                        SUITE,
                        f"page {kind} over HTTP at {n:,} datasets (SQLite), median of {len(paths)}",
                        f"page_median_{kind.split()[0]}{'_tag' if 'tag' in kind else ''}",
                        "ms",
                        med,
                        higher_is_better=False,
                        target="median <= 25 ms (well under 100 ms)",
                        met=med <= 25,
                        note=f"{'JSON-LD' if kind == 'croissant' else 'rendered HTML'}; "
                        f"index loaded in {load_s:.0f} s; load average {os.getloadavg()[0]:.1f} "
                        f"on {os.cpu_count()} CPUs",
                    ),
                    make_row(
                        SUITE,
                        f"page {kind} over HTTP at {n:,} datasets (SQLite), p99 of {len(paths)}",
                        f"page_p99_{kind.split()[0]}{'_tag' if 'tag' in kind else ''}",
                        "ms",
                        _p99(times),
                        higher_is_better=False,
                    ),
                ]
    finally:
        store.close()
    return out


def run(quick: bool) -> list[dict[str, Any]]:
    """Run the AppView cases against a fresh local PDS and PostgreSQL; return the rows."""
    import atdata
    from atdata.atmosphere import AtmosphereClient
    from atdata.atmosphere.schema import SchemaPublisher
    from atdata.stack.pds import create_account, start_pds

    @atdata.packable
    class BenchSample:
        value: int

    rows: list[dict[str, Any]] = []
    password = secrets.token_urlsafe(18)
    with tempfile.TemporaryDirectory(prefix="atdata-bench-appview-") as tmp_name:
        tmp = Path(tmp_name)
        with start_pds() as server:
            account = create_account(server, "bench", password)
            client = AtmosphereClient(server.url, plc_url=server.env["PLC_URL"])
            client.login(account["handle"], password)
            schema_uri = str(SchemaPublisher(client).publish(BenchSample, version="1.0.0"))
            for name, case in (("ingest", ingest_rows), ("lag", lag_rows)):
                try:
                    rows += case(quick, server, client, schema_uri, tmp)
                except Exception as exc:
                    rows.append(error_row(SUITE, f"{name} (failed)", exc))
            client.close()
        try:
            rows += search_rows(quick, tmp)
        except Exception as exc:
            rows.append(error_row(SUITE, "search (failed)", exc))
        try:
            rows += page_rows(quick, tmp)
        except Exception as exc:
            rows.append(error_row(SUITE, "pages (failed)", exc))
    return rows


if __name__ == "__main__":
    _quick = "--quick" in sys.argv[1:]
    if "--pages" in sys.argv[1:]:
        with tempfile.TemporaryDirectory(prefix="atdata-bench-pages-") as _tmp:
            print(format_table(page_rows(_quick, Path(_tmp))))
    else:
        print(format_table(run(quick=_quick)))
