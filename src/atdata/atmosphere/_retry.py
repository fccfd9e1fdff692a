"""Bounded retries for XRPC calls: rate limits, token expiry and transient network faults."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

_TRANSIENT_STATUSES = frozenset({502, 503, 504})
_TOKEN_ERRORS = frozenset({"ExpiredToken", "InvalidToken"})
_NOT_FOUND_ERRORS = frozenset({"RecordNotFound", "RepoNotFound", "BlobNotFound", "NotFound"})


class Fault(Exception):
    """One failed HTTP exchange, described without any request data (so no tokens)."""

    def __init__(
        self,
        status: int | None,
        error: str = "",
        message: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.error = error
        self.message = message
        self.headers = {k.lower(): v for k, v in (headers or {}).items()}
        super().__init__(self.describe())

    @classmethod
    def from_response(cls, response: httpx.Response) -> Fault:
        """From a non-2xx httpx response (reads its small JSON error body)."""
        error, message = "", ""
        try:
            body = response.read()
            data = json.loads(body) if body else {}
            if isinstance(data, dict):
                error, message = str(data.get("error") or ""), str(data.get("message") or "")
        except (ValueError, httpx.HTTPError):
            pass
        return cls(response.status_code, error, message, dict(response.headers))

    @classmethod
    def from_transport(cls, exc: BaseException) -> Fault:
        """From an httpx transport error (connection refused, reset, timeout...)."""
        return cls(None, type(exc).__name__, "network error")

    @classmethod
    def from_sdk(cls, exc: Any) -> Fault:
        """From an ``atproto`` SDK request exception."""
        response = getattr(exc, "response", None)
        if response is None:
            cause = exc.__cause__ or exc
            return cls(None, type(cause).__name__, "network error")
        content = response.content
        error = getattr(content, "error", None) or ""
        message = getattr(content, "message", None) or ""
        if isinstance(content, dict):
            error, message = str(content.get("error") or ""), str(content.get("message") or "")
        return cls(response.status_code, str(error), str(message), dict(response.headers or {}))

    @property
    def transient(self) -> bool:
        """A network failure or a gateway error: worth retrying the same request."""
        return self.status is None or self.status in _TRANSIENT_STATUSES

    @property
    def rate_limited(self) -> bool:
        return self.status == 429

    @property
    def token_problem(self) -> bool:
        """The access token expired or was rejected: refresh the session and retry."""
        return self.status == 401 or (self.status == 400 and self.error in _TOKEN_ERRORS)

    @property
    def not_found(self) -> bool:
        return self.status == 404 or self.error in _NOT_FOUND_ERRORS

    def describe(self) -> str:
        """``HTTP 400 InvalidRequest: message`` or ``network error (ConnectError)``."""
        if self.status is None:
            return f"network error ({self.error})" if self.error else "network error"
        text = f"HTTP {self.status}"
        if self.error:
            text += f" {self.error}"
        if self.message:
            text += f": {self.message[:300]}"
        return text


def rate_limit_delay(
    headers: Mapping[str, str], attempt: int, *, now: float | None = None
) -> float:
    """Seconds to wait after a 429: ``retry-after``, else ``ratelimit-reset``, else backoff."""
    now = time.time() if now is None else now
    retry_after = headers.get("retry-after")
    if retry_after:
        try:
            return max(float(retry_after), 0.0)
        except ValueError:
            try:
                return max(parsedate_to_datetime(retry_after).timestamp() - now, 0.0)
            except (TypeError, ValueError):
                pass
    reset = headers.get("ratelimit-reset")
    if reset:
        try:
            return max(float(reset) - now, 0.0) + 0.05
        except ValueError:
            pass
    return backoff_delay(attempt)


def backoff_delay(attempt: int, *, base: float = 0.5, cap: float = 8.0) -> float:
    """Exponential backoff with jitter: about base * 2**attempt, at most ``cap``."""
    return min(cap, base * (2**attempt)) * (0.75 + 0.5 * random.random())


class GaveUp(Exception):
    """Raised by :meth:`RetryPolicy.run` when a fault is final; ``fault`` says which."""

    def __init__(self, fault: Fault, reason: str) -> None:
        super().__init__(reason)
        self.fault = fault
        self.reason = reason


@dataclass
class RetryPolicy:
    """How many times, and how long, to retry.

    ``max_retries`` bounds the retries of one call (rate limits and transient faults
    together); a rate limit whose reset is further away than ``max_rate_limit_wait``
    seconds is not waited for.
    """

    max_retries: int = 4
    max_rate_limit_wait: float = 120.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def run(
        self,
        fn: Callable[[], T],
        *,
        refresh: Callable[[], None] | None = None,
        recover: Callable[[], T | None] | None = None,
        retry_transient: bool = True,
        retry_rate_limit: bool = True,
    ) -> T:
        """Call ``fn`` (which raises :class:`Fault` on failure) until it succeeds or gives up.

        ``refresh`` is called once when the token is rejected; ``recover`` is asked,
        before repeating a request that may already have taken effect, whether it did
        (a non-None answer is returned as the result). Raises :class:`GaveUp`.
        """
        attempt = 0
        refreshed = False
        while True:
            try:
                return fn()
            except Fault as fault:
                if fault.rate_limited and retry_rate_limit:
                    if attempt >= self.max_retries:
                        raise GaveUp(fault, f"still rate-limited after {attempt} retries") from None
                    delay = rate_limit_delay(fault.headers, attempt)
                    if delay > self.max_rate_limit_wait:
                        raise GaveUp(
                            fault,
                            f"rate-limited; the limit resets in {delay:.0f} s, "
                            f"more than max_rate_limit_wait={self.max_rate_limit_wait:.0f} s",
                        ) from None
                    self.sleep(delay)
                    attempt += 1
                    continue
                if fault.token_problem and refresh is not None and not refreshed:
                    refresh()
                    refreshed = True
                    continue
                if fault.transient and retry_transient and attempt < self.max_retries:
                    self.sleep(backoff_delay(attempt))
                    attempt += 1
                    if recover is not None:
                        result = recover()
                        if result is not None:
                            return result
                    continue
                reason = fault.describe()
                if fault.transient and retry_transient:
                    reason += f" (after {attempt} retries)"
                raise GaveUp(fault, reason) from None
