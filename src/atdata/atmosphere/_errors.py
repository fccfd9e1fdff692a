"""The errors of atdata's ATProto client, all under :class:`~atdata.errors.AtdataError`.

:class:`AtmosphereError` is the base of every failed XRPC call; its subclasses are
the cases a caller handles differently (log in again, wait, skip a missing record,
split a blob). :func:`error_for` turns a failure the retry policy gave up on into
the right one, naming what was attempted and on which target, never a token.

    >>> err = RecordNotFoundError("get record at://did:plc:a/x.y.z/1: HTTP 404", status=404)
    >>> isinstance(err, KeyError), str(err)
    (True, 'get record at://did:plc:a/x.y.z/1: HTTP 404')
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from atdata.atmosphere._retry import Fault, GaveUp
from atdata.errors import AtdataError
from atdata.sources import redact_url

if TYPE_CHECKING:
    from atdata.atmosphere.uri import AtUri

__all__ = [
    "AtmosphereError",
    "AuthenticationError",
    "BatchWriteError",
    "BlobTooLargeError",
    "InvalidRecordError",
    "NotAuthenticatedError",
    "RateLimitedError",
    "RecordNotFoundError",
    "error_for",
    "sdk_fault",
]


class AtmosphereError(AtdataError):
    """An XRPC call failed. ``status`` (HTTP status or None), ``error`` (XRPC error name)
    and ``target`` (the URI, collection or DID concerned) describe it."""

    def __init__(
        self, message: str, *, status: int | None = None, error: str = "", target: str = ""
    ) -> None:
        super().__init__(message)
        self.status: int | None = status
        self.error: str = error
        self.target: str = target


class NotAuthenticatedError(AtmosphereError, ValueError):
    """The call needs a session: call :meth:`AtmosphereClient.login` first."""


class AuthenticationError(AtmosphereError):
    """Login failed, or the session expired and could not be refreshed."""


class RecordNotFoundError(AtmosphereError, KeyError):
    """No such record (or repository)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class RateLimitedError(AtmosphereError):
    """Still rate-limited after the allowed retries, or the limit resets too far ahead."""


class BlobTooLargeError(AtmosphereError, ValueError):
    """A blob is larger than the PDS accepts (``blobUploadLimit``)."""


class BatchWriteError(AtmosphereError):
    """An ``applyWrites`` batch failed; ``written`` holds the URIs committed before it."""

    def __init__(self, message: str, *, written: list[AtUri], **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.written: list[AtUri] = written


class InvalidRecordError(AtmosphereError, ValueError):
    """A record does not match atdata's lexicon for its collection (the URI is named)."""


def sdk_fault(exc: Exception) -> Exception:
    """An ``atproto`` SDK or httpx failure as a :class:`Fault` (other exceptions unchanged)."""
    from atproto_client.exceptions import RequestErrorBase

    if isinstance(exc, RequestErrorBase):
        return Fault.from_sdk(exc)
    if isinstance(exc, httpx.TransportError):
        return Fault.from_transport(exc)
    return exc


def error_for(
    exc: GaveUp, what: str, target: str, *, url: str, auth: bool = False
) -> AtmosphereError:
    """The :class:`AtmosphereError` for a call the retry policy gave up on.

    ``what`` and ``target`` name the call ("create record", the URI); ``url`` is the
    server tried, named when it could not be reached; ``auth`` marks a login, whose
    client errors are authentication failures.

    >>> error_for(GaveUp(Fault(429), "still rate-limited"), "list", "x.y.z", url="").status
    429
    """
    fault = exc.fault
    message = f"{what} {target}: {exc.reason}"
    if fault.status is None:  # no answer at all: say which server was tried
        message += f" (tried {redact_url(url)})"
    kwargs: dict[str, Any] = {"status": fault.status, "error": fault.error, "target": target}
    if fault.rate_limited:
        return RateLimitedError(message, **kwargs)
    if (
        (auth and fault.status is not None and fault.status < 500)
        or fault.token_problem
        or fault.status in (401, 403)
    ):
        return AuthenticationError(message, **kwargs)
    if fault.not_found:
        return RecordNotFoundError(message, **kwargs)
    if fault.status == 413:
        return BlobTooLargeError(message, **kwargs)
    return AtmosphereError(message, **kwargs)
