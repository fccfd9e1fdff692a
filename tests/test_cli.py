"""The ``atdata`` command, run through its installed entry point as a subprocess.

Every test gets its own ``ATDATA_HOME``; the environment of the test run
(``ATDATA_*``, ``AWS_*``) is not passed on, so only what a test sets is seen.
S3 is the session's SeaweedFS, the PDS the session's local PDS; ``stack up``
starts its own servers and must leave none behind.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from numpy.typing import NDArray

import atdata
from atdata.local import LocalIndex
from helpers import private_atdata_home, serve_directory  # noqa: F401 - autouse fixture

ATDATA = Path(sys.executable).parent / "atdata"


@atdata.packable
class Reading:
    """A sensor reading."""

    values: NDArray[np.float32]
    sensor: str
    count: int


def readings(n: int, start: int = 0) -> list[Reading]:
    return [
        Reading(values=np.arange(4, dtype=np.float32) + i, sensor=f"s{i % 3}", count=i)
        for i in range(start, start + n)
    ]


class Cli:
    """Runs ``atdata`` with a private ATDATA_HOME and a clean environment."""

    def __init__(self, home: Path, cwd: Path) -> None:
        self.home = home
        self.cwd = cwd
        self.env: dict[str, str] = {}

    def environ(self) -> dict[str, str]:
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ATDATA_", "AWS_", "PDS_", "PLC_"))
        }
        return {**base, "ATDATA_HOME": str(self.home), "COLUMNS": "200", **self.env}

    def run(
        self,
        *args: str,
        input: str | None = None,
        code: int | None = 0,
        env: dict[str, str] | None = None,
        program: list[str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*(program or [str(ATDATA)]), *args],
            capture_output=True,
            text=True,
            input=input,
            env={**self.environ(), **(env or {})},
            cwd=self.cwd,
            timeout=300,
            check=False,
        )
        if code is not None:
            assert proc.returncode == code, (
                f"atdata {' '.join(args)} exited {proc.returncode}, wanted {code}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def json(self, *args: str, **kwargs: Any) -> Any:
        return json.loads(self.run(*args, "--json", **kwargs).stdout)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    return Cli(home, work)


@pytest.fixture
def shards(cli: Cli) -> Path:
    """``data/{train,test}-{000..002}.tar`` in the working directory, 5 readings each."""
    for split in ("train", "test"):
        for i in range(3):
            atdata.write_samples(readings(5, 5 * i), cli.cwd / "data" / f"{split}-{i:03d}.tar")
    return cli.cwd / "data"


@pytest.fixture
def indexed(cli: Cli, shards: Path, monkeypatch: pytest.MonkeyPatch) -> LocalIndex:
    """The CLI's default index (``$ATDATA_HOME/index.db``) holding ``readings``."""
    monkeypatch.setenv("ATDATA_HOME", str(cli.home))
    index = LocalIndex()
    index.publish_schema(Reading, version="1.0.0")
    index.publish_schema(Reading, version="1.1.0", description="Same fields, newer version")
    index.insert_dataset(
        atdata.Dataset[Reading](str(shards / "train-{000..002}.tar")), name="readings"
    )
    return index


# --------------------------------------------------------------------------- entry point


def test_help_and_version(cli: Cli) -> None:
    text = cli.run("--help").stdout
    for command in ("inspect", "preview", "schema", "index", "login", "publish", "promote"):
        assert command in text
    for command in ("diagnose", "stack"):
        assert command in text
    assert cli.run("--version").stdout.strip() == f"atdata {atdata.__version__}"
    module = cli.run("--version", program=[sys.executable, "-m", "atdata.cli"])
    assert module.stdout.strip() == f"atdata {atdata.__version__}"
    assert "up" in cli.run("stack", "--help").stdout


def test_without_the_cli_extra_main_says_what_to_install(cli: Cli) -> None:
    code = "import sys; sys.modules['typer'] = None; from atdata.cli import main; main(['--help'])"
    proc = cli.run("-c", code, code=1, program=[sys.executable])
    assert proc.stderr.strip() == (
        "atdata: the command line needs its extra: pip install 'atdata[cli]'"
    )
    assert proc.stdout == ""


def test_usage_error_exits_2(cli: Cli) -> None:
    proc = cli.run("inspect", "--bogus", code=2)
    assert "No such option" in proc.stderr


# --------------------------------------------------------------------------- inspect / preview


def test_inspect_brace_pattern_json(cli: Cli, shards: Path) -> None:
    report = cli.json("inspect", "data/{train,test}-{000..002}.tar")
    assert report["sample_type"] == "DictSample"
    assert set(report["splits"]) == {"train", "test"}
    train = report["splits"]["train"]
    assert train["shards"] == 3 and train["samples"] == 15
    sizes = [os.path.getsize(shards / f"train-{i:03d}.tar") for i in range(3)]
    assert [s["bytes"] for s in train["shard_list"]] == sizes
    assert train["bytes"] == sum(sizes)
    assert [s["samples"] for s in train["shard_list"]] == [5, 5, 5]
    fields = {f["name"]: f for f in report["fields"]}
    assert fields["values"]["type"] == "ndarray[float32]"
    assert fields["values"]["example_shape"] == [4]
    assert fields["sensor"]["type"] == "str" and fields["count"]["type"] == "int"


def test_inspect_text_and_split(cli: Cli, shards: Path) -> None:
    text = cli.run("inspect", str(shards), "--split", "test").stdout
    assert "split test: 3 shard(s), 15 samples" in text
    assert "split train" not in text
    assert "ndarray[float32]" in text  # rich markup must not eat the brackets
    for i in range(3):
        assert f"test-{i:03d}.tar  5 samples" in text


def test_inspect_index_name_is_typed(cli: Cli, indexed: LocalIndex) -> None:
    report = cli.json("inspect", "@local/readings")
    assert report["sample_type"] == "Reading"
    assert report["entry"]["name"] == "readings"
    assert report["entry"]["cid"] == indexed.get_dataset("readings").cid
    assert report["splits"]["train"]["samples"] == 15
    fields = {f["name"]: f["type"] for f in report["fields"]}
    assert fields == {"values": "ndarray[float32]", "sensor": "str", "count": "int"}
    recorded = [s.size for s in indexed.get_dataset("readings").shards]
    assert [s["bytes"] for s in report["splits"]["train"]["shard_list"]] == recorded


def test_inspect_with_a_schema_type(cli: Cli, indexed: LocalIndex) -> None:
    report = cli.json(
        "inspect", "data/test-000.tar", "--type", "atdata://local/sampleSchema/Reading@1.0.0"
    )
    assert report["sample_type"] == "Reading"
    no_count = cli.json("inspect", "data/test-000.tar", "--no-count")
    assert no_count["splits"]["test"]["samples"] is None


def test_preview(cli: Cli, shards: Path, indexed: LocalIndex) -> None:
    data = cli.json("preview", "@local/readings", "-n", "2")
    assert data["split"] == "train" and data["sample_type"] == "Reading"
    assert data["samples"] == [
        {"values": {"dtype": "float32", "shape": [4]}, "sensor": "s0", "count": 0},
        {"values": {"dtype": "float32", "shape": [4]}, "sensor": "s1", "count": 1},
    ]
    text = cli.run("preview", "data/{train,test}-000.tar", "-n", "1").stdout
    assert "values: ndarray float32 (4,)" in text
    assert "sensor: 's0'" in text
    assert "other splits: test" in text
    test_only = cli.json("preview", "data", "--split", "test", "-n", "7")
    assert test_only["split"] == "test" and len(test_only["samples"]) == 7


# --------------------------------------------------------------------------- schema / index


def test_schema_list_and_show(cli: Cli, indexed: LocalIndex) -> None:
    rows = cli.json("schema", "list")
    assert [(r["name"], r["version"]) for r in rows] == [("Reading", "1.0.0"), ("Reading", "1.1.0")]
    assert rows[0]["ref"] == "atdata://local/sampleSchema/Reading@1.0.0"
    latest = cli.json("schema", "show", "Reading")
    assert latest["ref"] == "atdata://local/sampleSchema/Reading@1.1.0"
    assert latest["record"]["description"] == "Same fields, newer version"
    for ref in ("Reading@1.0.0", "atdata://local/sampleSchema/Reading@1.0.0"):
        assert cli.json("schema", "show", ref)["record"]["version"] == "1.0.0"
    text = cli.run("schema", "show", "atdata://local/sampleSchema/Reading").stdout
    assert "Reading 1.1.0" in text and "ndarray[float32]" in text
    missing = cli.run("schema", "show", "Nope", code=1)
    assert missing.stderr.splitlines()[0].startswith("error: no schema named 'Nope'")
    assert missing.stderr.splitlines()[1].startswith("hint: ")


def test_index_list(cli: Cli, indexed: LocalIndex) -> None:
    assert (
        "no datasets"
        in cli.run("index", "list", env={"ATDATA_INDEX": str(cli.cwd / "x.db")}).stdout
    )
    rows = cli.json("index", "list")
    assert [r["name"] for r in rows] == ["readings"]
    entry = indexed.get_dataset("readings")
    assert rows[0]["cid"] == entry.cid and rows[0]["shards"] == 3
    assert rows[0]["bytes"] == sum(s.size for s in entry.shards)
    text = cli.run("index", "list").stdout
    assert "@local/readings" in text and "atdata://local/sampleSchema/Reading@1.1.0" in text


def test_index_option_and_env_choose_the_index(cli: Cli, shards: Path, tmp_path: Path) -> None:
    other = LocalIndex(path=tmp_path / "team.db")
    other.insert_dataset(atdata.Dataset[Reading](str(shards / "test-000.tar")), name="team-only")
    assert [r["name"] for r in cli.json("--index", str(tmp_path / "team.db"), "index", "list")] == [
        "team-only"
    ]
    env = {"ATDATA_INDEX": str(tmp_path / "team.db")}
    assert cli.json("inspect", "@local/team-only", env=env)["splits"]["train"]["samples"] == 5


# --------------------------------------------------------------------------- errors


def test_errors_are_one_line_and_a_hint(cli: Cli) -> None:
    proc = cli.run("inspect", "missing-*.tar", code=1)
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == "error: no shards found for 'missing-*.tar'"
    assert lines[1].startswith("hint: REF is a file, directory, glob")
    assert len(lines) == 2 and "Traceback" not in proc.stderr
    debug = cli.run("inspect", "missing-*.tar", "--debug", code=1)
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.strip().splitlines()[-2] == lines[0]
    split = cli.run("inspect", "data", "--split", "nope", code=1)
    assert "no shards found" in split.stderr
    unknown = cli.run("inspect", "@local/nothing", code=1)
    assert "no dataset named 'nothing'" in unknown.stderr and "atdata index list" in unknown.stderr


def test_split_not_found_lists_splits(cli: Cli, shards: Path) -> None:
    proc = cli.run("preview", "data", "--split", "validation", code=1)
    assert "available splits: ['test', 'train']" in proc.stderr


# --------------------------------------------------------------------------- diagnose


def test_diagnose_offline(cli: Cli) -> None:
    report = cli.json("diagnose")
    assert report["ok"] is True
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["ATDATA_HOME writable"]["status"] == "ok"
    assert str(cli.home) in checks["ATDATA_HOME writable"]["detail"]
    assert checks["default index"]["status"] == "ok"
    assert checks["extra cli"]["status"] == "ok"
    assert checks["S3"]["status"] == "skip" and checks["PDS"]["status"] == "skip"
    text = cli.run("diagnose").stdout
    assert "no problems found" in text


def test_diagnose_servers_and_secrets(
    cli: Cli, s3_env: dict[str, str], s3_bucket: str, pds_account: dict[str, str]
) -> None:
    env = {
        **s3_env,
        "ATDATA_BUCKET": s3_bucket,
        "ATDATA_PDS_URL": pds_account["pds_url"],
        "ATDATA_PLC_URL": pds_account["plc_url"],
    }
    report = cli.json("diagnose", env=env)
    checks = {c["check"]: c for c in report["checks"]}
    assert report["ok"] is True, report
    assert checks["S3"]["status"] == "ok" and s3_bucket in checks["S3"]["detail"]
    assert checks["PDS"]["status"] == "ok" and checks["PLC directory"]["status"] == "ok"
    everything = cli.run("diagnose", env=env).stdout + json.dumps(report)
    assert s3_env["AWS_SECRET_ACCESS_KEY"] not in everything
    broken = {
        **env,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "ATDATA_PDS_URL": "http://127.0.0.1:9",
    }
    bad = cli.run("diagnose", "--json", env=broken, code=1)
    failed = {c["check"] for c in json.loads(bad.stdout)["checks"] if c["status"] == "fail"}
    assert {"S3", "PDS", "default index"} <= failed  # the index's bucket is unreachable too


def test_diagnose_flags_a_readable_session(cli: Cli) -> None:
    cli.home.mkdir(parents=True, exist_ok=True)
    session = cli.home / "session"
    session.write_text("not a session")
    session.chmod(0o644)
    report = cli.run("diagnose", "--json", code=1)
    checks = {c["check"]: c for c in json.loads(report.stdout)["checks"]}
    assert checks["login session"]["status"] == "fail"
    assert "chmod 600" in checks["login session"]["detail"]


# --------------------------------------------------------------------------- login


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_login_with_piped_password(cli: Cli, pds_account: dict[str, str]) -> None:
    cli.env = {"ATDATA_PDS_URL": pds_account["pds_url"], "ATDATA_PLC_URL": pds_account["plc_url"]}
    password = pds_account["password"]
    proc = cli.run("login", pds_account["handle"], input=password + "\n")
    assert password not in proc.stdout + proc.stderr
    assert f"logged in as {pds_account['handle']}" in proc.stdout
    session = cli.home / "session"
    assert _mode(session) == 0o600 and _mode(cli.home / "login.json") == 0o600
    assert password not in session.read_text() + (cli.home / "login.json").read_text()
    who = cli.json("whoami")
    assert who["did"] == pds_account["did"] and who["handle"] == pds_account["handle"]
    assert "logged out" in cli.run("logout").stdout
    assert not session.exists()
    assert "not logged in" in cli.run("whoami", code=1).stderr


def test_login_prompt_does_not_echo(cli: Cli, pds_account: dict[str, str]) -> None:
    """On a terminal the app password is prompted for, and what is typed is not shown."""
    import pty
    import select

    cli.env = {"ATDATA_PDS_URL": pds_account["pds_url"], "ATDATA_PLC_URL": pds_account["plc_url"]}
    pid, fd = pty.fork()
    if pid == 0:  # the child: atdata on a pseudo-terminal
        os.chdir(cli.cwd)
        os.execve(str(ATDATA), [str(ATDATA), "login", pds_account["handle"]], cli.environ())
    seen = b""
    sent = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
        if not sent and b"App password:" in seen:
            os.write(fd, pds_account["password"].encode() + b"\n")
            sent = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    text = seen.decode(errors="replace")
    assert sent and os.waitstatus_to_exitcode(status) == 0, text
    assert f"logged in as {pds_account['handle']}" in text
    assert pds_account["password"] not in text


def test_login_with_env_password_and_bad_password(cli: Cli, pds_account: dict[str, str]) -> None:
    cli.env = {"ATDATA_PDS_URL": pds_account["pds_url"], "ATDATA_PLC_URL": pds_account["plc_url"]}
    env = {"ATDATA_HANDLE": pds_account["handle"], "ATDATA_APP_PASSWORD": pds_account["password"]}
    info = cli.json("login", env=env)
    assert info["did"] == pds_account["did"]
    wrong = "wrong-" + pds_account["password"]
    bad = cli.run("login", pds_account["handle"], input=wrong, code=1)
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("hint: run `atdata login")
    assert wrong not in bad.stdout + bad.stderr
    assert cli.json("whoami")["did"] == pds_account["did"]  # the old session is kept
    empty = cli.run("login", pds_account["handle"], input="", code=1)
    assert "no app password" in empty.stderr


# --------------------------------------------------------------------------- publish


def _logged_in(cli: Cli, account: dict[str, str]) -> None:
    cli.env = {"ATDATA_PDS_URL": account["pds_url"], "ATDATA_PLC_URL": account["plc_url"]}
    cli.run("login", account["handle"], input=account["password"])


def test_publish_blobs_then_read_back(
    cli: Cli, indexed: LocalIndex, pds_account: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _logged_in(cli, pds_account)
    proc = cli.run(
        "publish", "@local/readings", "--name", "readings-pub", "--blobs", "--json",
        "--tag", "demo", "--tag", "sensors", "--license", "MIT", "--description", "Readings",
        env={"TTY_COMPATIBLE": "1"},  # the progress bar is drawn (on stderr)
    )  # fmt: skip
    assert "uploading readings-pub" in proc.stderr
    result = json.loads(proc.stdout)
    handle = pds_account["handle"]
    assert result["ref"] == f"@{handle}/readings-pub"
    assert result["storage"] == "blobs" and result["shards"] == 3
    assert result["uri"].startswith(f"at://{pds_account['did']}/ac.foundation.dataset.record/")
    report = cli.json("inspect", f"@{handle}/readings-pub")
    assert report["sample_type"] == "Reading" and report["splits"]["train"]["samples"] == 15
    rows = cli.json("index", "list", f"@{handle}")
    assert [(r["name"], r["storage"], r["samples"]) for r in rows] == [
        ("readings-pub", "blobs", 15)
    ]
    assert rows[0]["tags"] == ["demo", "sensors"]
    schemas = cli.json("schema", "list", f"@{handle}")
    assert [s["name"] for s in schemas] == ["Reading"]
    shown = cli.json("schema", "show", schemas[0]["ref"])
    assert shown["record"]["module"].endswith(".Reading")
    # and the same dataset in Python, from another process' point of view
    monkeypatch.setenv("ATDATA_PDS_URL", pds_account["pds_url"])
    monkeypatch.setenv("ATDATA_PLC_URL", pds_account["plc_url"])
    ds = atdata.load_dataset(f"@{handle}/readings-pub", Reading, split="train")
    assert [r.count for r in ds] == list(range(15))


def test_publish_refusals(cli: Cli, shards: Path, pds_account: dict[str, str]) -> None:
    _logged_in(cli, pds_account)
    splits = cli.run("publish", "data", "--name", "x", code=1)
    assert "--split" in splits.stderr
    untyped = cli.run("publish", "data/test-000.tar", "--name", "x", code=1)
    assert "no type" in untyped.stderr and "--type" in untyped.stderr
    private = cli.run(
        "publish", "data/test-000.tar", "--name", "x", "--type", "Reading", code=1
    )  # no such schema in an empty index
    assert "Reading" in private.stderr
    LocalIndex(path=cli.home / "index.db").publish_schema(Reading, version="1.0.0")
    local = cli.run(
        "publish", "data/test-000.tar", "--name", "x", "--type", "Reading", "--public-urls-only",
        code=1,
    )  # fmt: skip
    assert "local file path" in local.stderr and "--blobs" in local.stderr
    signed = cli.run(
        "publish", "https://reader:abc123@data.example.org/d.tar", "--name", "x",
        "--type", "Reading", code=1,
    )  # fmt: skip
    assert "refusing to publish" in signed.stderr and "password" in signed.stderr
    assert "abc123" not in signed.stderr
    # refused before anything was published: not even the schema record
    from atdata.atmosphere import AtmosphereClient
    from atdata.atmosphere.records import SCHEMA_COLLECTION, iter_records

    client = AtmosphereClient(pds_account["pds_url"], plc_url=pds_account["plc_url"])
    try:
        client.login(pds_account["handle"], pds_account["password"])
        assert list(iter_records(client, SCHEMA_COLLECTION)) == []
    finally:
        client.close()


def test_publish_needs_login(cli: Cli, indexed: LocalIndex) -> None:
    proc = cli.run("publish", "@local/readings", "--name", "x", "--blobs", code=1)
    assert proc.stderr.startswith("error: not logged in")
    assert "atdata login" in proc.stderr


def test_promote(
    cli: Cli,
    indexed: LocalIndex,
    pds_account: dict[str, str],
    s3_env: dict[str, str],
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _logged_in(cli, pds_account)
    handle = pds_account["handle"]
    # local paths cannot be read by others: refused when asked for public URLs only
    refused = cli.run("promote", "readings", "--public-urls-only", code=1)
    assert "local file path" in refused.stderr and "--blobs" in refused.stderr
    blobs = cli.run(
        "promote", "@local/readings", "--blobs", "--name", "readings-blobs", "--tag", "t",
        "--json", env={"TTY_COMPATIBLE": "1"},  # the progress bar is drawn (on stderr)
    )  # fmt: skip
    result = json.loads(blobs.stdout)
    assert result["storage"] == "blobs" and result["shards"] == 3
    assert "promoting readings" in blobs.stderr
    again = cli.json("promote", "readings", "--blobs", "--name", "readings-blobs")
    assert again["uri"] == result["uri"]  # the same entry is not published twice
    copied = cli.json(
        "promote", "readings", "--copy-to", s3_bucket, "--name", "readings-s3", env=s3_env
    )
    assert copied["storage"] == "external"
    assert all(u.startswith(f"s3://{s3_bucket}/promoted/readings-s3/") for u in copied["data_urls"])
    with serve_directory(cli.cwd / "data") as base:
        served = [f"{base}/test-{i:03d}.tar" for i in range(3)]
        indexed.add_entry(
            served, name="served", schema_ref="atdata://local/sampleSchema/Reading@1.1.0"
        )
        loopback = cli.run("promote", "served", "--public-urls-only", code=1)
        assert "loopback" in loopback.stderr
        # by default the existing URLs are kept, with a warning naming them
        kept = cli.run("promote", "served", "--json")
        private = json.loads(kept.stdout)
        assert private["storage"] == "external" and private["data_urls"] == served
        assert "warning: publishing URLs others likely cannot read" in kept.stderr
        assert served[0] in kept.stderr and "--public-urls-only" in kept.stderr
        monkeypatch.setenv("ATDATA_PDS_URL", pds_account["pds_url"])
        monkeypatch.setenv("ATDATA_PLC_URL", pds_account["plc_url"])
        monkeypatch.delenv("ATDATA_ALLOW_PRIVATE_URLS", raising=False)
        with pytest.raises(atdata.PrivateURLError):  # a reader opts in to loopback URLs
            atdata.load_dataset(f"@{handle}/served", split="train")
        ds = atdata.load_dataset(f"@{handle}/served", split="train", allow_private_urls=True)
        assert len(ds) == 15
    rows = {r["name"]: r for r in cli.json("index", "list", f"@{handle}")}
    assert set(rows) == {"readings-blobs", "readings-s3", "served"}
    # one schema for all three: promotion reuses it
    assert len(cli.json("schema", "list", f"@{handle}")) == 1
    ds = atdata.load_dataset(f"@{handle}/readings-blobs", split="train")
    assert [r.count for r in ds] == list(range(15))
    both = cli.run("promote", "readings", "--blobs", "--copy-to", s3_bucket, code=1)
    assert "choose one" in both.stderr


# --------------------------------------------------------------------------- stack


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def test_stack_up_status_down(cli: Cli) -> None:
    from atdata.atmosphere import AtmosphereClient
    from atdata.stack.s3 import s3_client

    assert cli.run("stack", "status", code=1).stdout.startswith("the stack is not running")
    up = cli.run("stack", "up", "--json")
    settings = json.loads(up.stdout)["settings"]
    assert json.loads(up.stdout)["pages"] == settings["ATDATA_APPVIEW_URL"] + "/"
    for key in (
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "ATDATA_BUCKET",
        "ATDATA_PDS_URL",
        "ATDATA_PLC_URL",
        "ATDATA_HANDLE",
        "ATDATA_APP_PASSWORD",
        "ATDATA_APPVIEW_URL",
    ):
        assert settings[key], key
    state_file = cli.home / "stack" / "state.json"
    assert _mode(state_file) == 0o600 and _mode(cli.home / "stack") == 0o700
    state = json.loads(state_file.read_text())
    pids = [s["pid"] for s in state["services"].values()]
    try:
        # the servers outlived `atdata stack up`
        assert all(_alive(p) for p in pids)
        buckets = s3_client({**settings, "AWS_REGION": "us-east-1"}).list_buckets()["Buckets"]
        assert [b["Name"] for b in buckets] == [settings["ATDATA_BUCKET"]]
        client = AtmosphereClient(settings["ATDATA_PDS_URL"], plc_url=settings["ATDATA_PLC_URL"])
        client.login(settings["ATDATA_HANDLE"], settings["ATDATA_APP_PASSWORD"])
        assert client.did.startswith("did:plc:")
        client.close()
        again = cli.run("stack", "up")  # idempotent: same servers, same settings
        assert "already running" in again.stderr
        assert f"# dataset pages (the AppView): {settings['ATDATA_APPVIEW_URL']}/" in again.stderr
        home = httpx.get(settings["ATDATA_APPVIEW_URL"] + "/", trust_env=False, timeout=10)
        assert home.status_code == 200 and "<h1>Datasets on the atmosphere</h1>" in home.text
        assert f"export ATDATA_HANDLE={settings['ATDATA_HANDLE']}" in again.stdout
        assert json.loads(state_file.read_text())["services"]["s3"]["pid"] == pids[0]
        status = cli.json("stack", "status")
        assert all(s["running"] and s["healthy"] for s in status["services"].values())
        assert status["settings"]["AWS_SECRET_ACCESS_KEY"] == "***"
        assert status["settings"]["ATDATA_APP_PASSWORD"] == "***"
        text = cli.run("stack", "status").stdout
        assert settings["AWS_SECRET_ACCESS_KEY"] not in text
        assert settings["ATDATA_APP_PASSWORD"] not in text
        env = cli.run("stack", "env").stdout
        assert f"export ATDATA_APP_PASSWORD={settings['ATDATA_APP_PASSWORD']}" in env
        # the printed settings are all a user needs: diagnose sees every server
        report = cli.json("diagnose", env=settings)
        checks = {c["check"]: c["status"] for c in report["checks"]}
        assert checks["S3"] == checks["PDS"] == checks["local stack"] == "ok", report
        assert checks["AppView"] == "ok", report
    finally:
        down = cli.json("stack", "down")
    assert sorted(down["stopped"]) == ["appview", "pds", "s3"]
    deadline = time.monotonic() + 20
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids)
    assert not state_file.exists()
    assert cli.run("stack", "status", code=1).stdout.startswith("the stack is not running")
    assert cli.json("stack", "down")["stopped"] == []
    cli.run("stack", "down", "--purge")
    assert not (cli.home / "stack").exists()
