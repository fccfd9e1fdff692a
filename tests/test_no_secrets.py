"""No repr, log line, exception message or published record carries a password, token or
secret key: a login, an S3 insert, reads, failures and a publish, all grepped."""

from __future__ import annotations

import json
import logging
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import atdata
from atdata.atmosphere import AtmosphereClient, AtmosphereIndex, PDSBlobStore
from atdata.atmosphere.records import DATASET_COLLECTION, SCHEMA_COLLECTION
from atdata.local import Index, S3DataStore
from atdata.promote import promote_to_atmosphere
from atdata.sources import S3Source
from helpers import private_atdata_home  # noqa: F401 - autouse fixture


@atdata.packable
class Vec:
    features: NDArray[np.float32]
    label: int


def test_no_secret_in_reprs_logs_errors_or_records(
    tmp_path: Path,
    s3_env: dict[str, str],
    s3_bucket: str,
    pds_account: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level
    objects: list[Any] = []
    errors: list[BaseException] = []

    def failing(fn: Any) -> None:
        try:
            fn()
        except Exception as exc:
            errors.append(exc)
        else:
            raise AssertionError(f"{fn} did not fail")

    # a login
    client = AtmosphereClient(pds_account["pds_url"], plc_url=pds_account["plc_url"])
    client.login(pds_account["handle"], pds_account["password"])
    session = client._session
    assert session is not None
    secrets = {
        "password": pds_account["password"],
        "access token": session.access_jwt,
        "refresh token": session.refresh_jwt,
        "S3 secret key": s3_env["AWS_SECRET_ACCESS_KEY"],
    }
    objects.append(client)  # (the SDK's Session, which atdata never hands out, prints its tokens)
    wrong = AtmosphereClient(pds_account["pds_url"], plc_url=pds_account["plc_url"])
    failing(lambda: wrong.login(pds_account["handle"], pds_account["password"] + "-wrong"))
    objects.append(wrong)

    # an S3 insert, and reads with the store's credentials
    creds = {
        "AWS_ENDPOINT": s3_env["AWS_ENDPOINT_URL"],
        "AWS_ACCESS_KEY_ID": s3_env["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": s3_env["AWS_SECRET_ACCESS_KEY"],
    }
    store = S3DataStore(credentials=creds, bucket=s3_bucket)
    index = Index(path=tmp_path / "i.db", data_store=store)
    samples = [Vec(features=np.full(4, i, np.float32), label=i) for i in range(10)]
    ds = atdata.write_samples(samples, tmp_path / "v.tar", maxcount=5)
    entry = index.insert_dataset(ds, name="vectors")
    back = index.dataset_for(entry)
    assert [s.label for s in back] == list(range(10))
    source = store.create_source(entry.data_urls)
    objects += [store, index, entry, ds, back, back.source, source, *entry.shards]
    objects.append(S3Source.from_urls(entry.data_urls, **_keys(s3_env)))
    bad = S3DataStore(
        credentials={**creds, "AWS_SECRET_ACCESS_KEY": "wrong-secret-value"}, bucket=s3_bucket
    )
    failing(lambda: Index(path=tmp_path / "j.db", data_store=bad).insert_dataset(ds, name="bad"))
    failing(lambda: index.insert_dataset(ds, name="vectors"))  # the name is taken
    failing(
        lambda: list(
            atdata.Dataset[Vec](S3Source.from_urls([entry.data_urls[0] + "x"], **_keys(s3_env)))
        )
    )
    objects.append(bad)

    # a publish: the URLs as they are, and a copy as blobs
    uri = promote_to_atmosphere(entry, index, client)
    blobs = PDSBlobStore(client)
    uri2 = promote_to_atmosphere(entry, index, client, name="vectors-blobs", data_store=blobs)
    published = [AtmosphereIndex(client).get_dataset(str(u)) for u in (uri, uri2)]
    objects += [blobs, AtmosphereIndex(client), *published]
    records = [
        r
        for collection in (DATASET_COLLECTION, SCHEMA_COLLECTION)
        for r in client.iter_records(collection)
    ]
    assert len(records) >= 3
    failing(lambda: client.get_record(str(uri).rsplit("/", 1)[0] + "/3zzzzzzzzzzzz"))
    with warnings.catch_warnings(record=True) as warned:  # s3:// URLs: refused, or warned about
        warnings.simplefilter("always")
        try:
            promote_to_atmosphere(entry, index, client, name="vectors-s3")
        except Exception as exc:
            errors.append(exc)

    texts: dict[str, str] = {}
    for i, obj in enumerate(objects):
        texts[f"repr #{i} {type(obj).__name__}"] = repr(obj)
        texts[f"str #{i} {type(obj).__name__}"] = str(obj)
    for i, exc in enumerate(errors):
        texts[f"error #{i} {type(exc).__name__}"] = "".join(traceback.format_exception_only(exc))
        texts[f"error args #{i}"] = repr(exc.args)
    texts["warnings"] = "\n".join(str(w.message) for w in warned)
    texts["records"] = json.dumps(records, default=repr)
    texts["log"] = "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records)
    assert len(caplog.records) > 10  # the libraries did log at DEBUG
    leaks = [
        (what, where)
        for what, secret in secrets.items()
        for where, text in texts.items()
        if secret in text
    ]
    assert leaks == []


def _keys(s3_env: dict[str, str]) -> dict[str, str]:
    return {
        "endpoint": s3_env["AWS_ENDPOINT_URL"],
        "access_key": s3_env["AWS_ACCESS_KEY_ID"],
        "secret_key": s3_env["AWS_SECRET_ACCESS_KEY"],
    }
