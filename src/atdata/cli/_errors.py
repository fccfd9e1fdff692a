"""Turn an exception into one readable line and a hint for the ``atdata`` command."""

from __future__ import annotations

from atdata.cli._common import CliError

__all__ = ["explain"]

_REF_FORMS = "a file, directory, glob, brace pattern, URL, @local/name, @handle/name or at:// URI"


def _message(exc: BaseException) -> str:
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    text = " ".join(text.split()) or type(exc).__name__
    return text if len(text) <= 400 else text[:400] + " ..."


def _either(flags: frozenset[str], *choices: str) -> str | None:
    """The ``choices`` whose flag the command has, as "A, B or C" (None if none)."""
    have = [c for c in choices if c.split()[0] in flags]
    if not have:
        return None
    return have[0] if len(have) == 1 else ", ".join(have[:-1]) + " or " + have[-1]


def explain(exc: BaseException, flags: frozenset[str] = frozenset()) -> tuple[str, str | None]:
    """``(message, hint)`` for an exception; the hint says what to try next.

    ``flags`` are the options of the command that failed: a hint names only those.
    """
    if isinstance(exc, CliError):
        return _message(exc), exc.hint
    message = _message(exc)
    name = type(exc).__name__
    module = type(exc).__module__
    hint: str | None = None
    if name == "PDSNotInstalledError":
        hint = "run `atdata stack install` once (about 2-3 minutes; needs npm and a C++ compiler)"
    elif name in ("NotAuthenticatedError", "AuthenticationError"):
        hint = "run `atdata login HANDLE` with an app password"
    elif name in ("IdentityError",):
        hint = "check the handle or DID, and ATDATA_PLC_URL for a local PDS"
    elif name == "RecordNotFoundError":
        hint = "check the at:// URI; `atdata index list @HANDLE` lists an account's datasets"
    elif name == "PrivateURLError" and "refusing to read" in message:
        hint = "if you trust whoever published it, set ATDATA_ALLOW_PRIVATE_URLS=1"
    elif name == "PrivateURLError":
        options = _either(flags, "--blobs", "--copy-to BUCKET")
        hint = f"add {options}" if options else "copy the shards to public storage first"
        if "--public-urls-only" in flags:
            hint += ", or drop --public-urls-only"
    elif name == "CredentialURLError":
        hint = "publish the plain URL (no password, signature or token in it)"
    elif name in ("EntryExistsError",):
        hint = "choose another --name" if "--name" in flags else "choose another name"
    elif name in ("IndexBackendError",):
        hint = "check --index (or ATDATA_INDEX); `atdata diagnose` tests the connection"
    elif name == "ShardError":
        hint = "the shard is missing or damaged; `atdata diagnose` checks storage settings"
    elif name == "SchemaError":
        hint = "`atdata schema list` shows the published schemas"
    elif isinstance(exc, ImportError):
        missing = getattr(exc, "name", None) or ""
        extra = {
            "boto3": "s3",
            "botocore": "s3",
            "redis": "redis",
            "psycopg": "postgres",
            "atproto": "atmosphere",
            "atproto_client": "atmosphere",
            "torch": "torch",
        }.get(missing.split(".")[0])
        hint = f"pip install 'atdata[{extra or 'all'}]'"
    elif isinstance(exc, FileNotFoundError):
        hint = f"REF is {_REF_FORMS}"
    elif isinstance(exc, KeyError):
        hint = "`atdata index list` shows the indexed datasets, `atdata schema list` the schemas"
    elif name in ("EndpointConnectionError", "ConnectError", "ConnectionError") or isinstance(
        exc, ConnectionError
    ):
        hint = "is the server running? `atdata stack status` and `atdata diagnose` check"
    elif name in ("NoCredentialsError", "ClientError") and module.startswith("botocore"):
        hint = "set AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    elif isinstance(exc, PermissionError):
        hint = "check the permissions of ATDATA_HOME (`atdata diagnose`)"
    elif name == "TimeoutError" or isinstance(exc, TimeoutError):
        hint = "the server did not answer in time; `atdata diagnose` checks the settings"
    if not isinstance(exc, CliError) and type(exc).__module__ in ("builtins",) and hint is None:
        message = f"{name}: {message}"
    return message, hint or "run again with --debug for the traceback"
