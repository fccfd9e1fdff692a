"""``atdata promote`` interrupted by Ctrl-C (a real SIGINT) says what was and was not
published; promoting again finishes it, and once more says it is already published."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from atdata.atmosphere import DatasetLoader
from test_cli import Cli, _logged_in, cli, indexed, shards  # noqa: F401 - fixtures

# The CLI, with a pause point after the first blob upload (the uploads stay real), so the
# interrupt lands mid-promotion every time.
_PAUSED_CLI = """
import os, sys, time
from pathlib import Path
from atdata.atmosphere import AtmosphereClient

go = Path(os.environ["RESUME_FILE"])
real = AtmosphereClient.upload_blob
done = []

def paused(self, *args, **kwargs):
    ref = real(self, *args, **kwargs)
    done.append(ref)
    if len(done) == 1:
        print("PAUSED", file=sys.stderr, flush=True)
        for _ in range(1200):  # at most a minute; the test releases it at once
            if go.exists():
                break
            time.sleep(0.05)
    return ref

AtmosphereClient.upload_blob = paused
from atdata.cli._app import run
sys.exit(run(sys.argv[1:]))
"""


def test_ctrl_c_during_promote_says_what_was_published(
    cli: Cli,  # noqa: F811 - the fixture imported above
    indexed: object,  # noqa: F811 - the fixture imported above
    pds_account: dict[str, str],
    pds_client: object,
    tmp_path: Path,
) -> None:
    _logged_in(cli, pds_account)
    resume = tmp_path / "resume"
    child = subprocess.Popen(
        [sys.executable, "-c", _PAUSED_CLI, "promote", "readings", "--blobs"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**cli.environ(), "RESUME_FILE": str(resume)},
        cwd=cli.cwd,
    )
    try:
        assert child.stderr is not None
        lines = []
        for line in child.stderr:
            lines.append(line)
            if line.strip() == "PAUSED":
                break
        assert lines[-1:] == ["PAUSED\n"], "".join(lines)
        child.send_signal(signal.SIGINT)
        resume.touch()
        stdout, stderr = child.communicate(timeout=300)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 130, stderr
    assert "interrupted:" in stderr
    assert "the dataset record was NOT published" in stderr
    assert "the schema record was published: at://" in stderr
    assert "blob(s) were uploaded but no record references them" in stderr
    assert "run the same command again" in stderr
    assert stdout == ""
    assert DatasetLoader(pds_client).list_all() == []  # what it said is what happened

    first = cli.run("promote", "readings", "--blobs", "--json")
    result = json.loads(first.stdout)
    assert result["new"] is True and result["storage"] == "blobs"
    again = cli.run("promote", "readings", "--blobs")
    assert again.stdout.startswith("already published: @")
    assert result["uri"] in again.stdout
    assert json.loads(cli.run("promote", "readings", "--blobs", "--json").stdout)["new"] is False
    assert len(DatasetLoader(pds_client).list_all()) == 1
