"""One URL classifier for both directions: what a reader opens, what a publisher shares.

Hosts are parsed the way the system resolver parses them (``127.1``,
``0x7f.0.0.1``, ``2130706433``, ``localhost.``, ``::ffff:127.0.0.1``), and names
are resolved with ``getaddrinfo``: an address is public only if every address
it resolves to is globally routable.

Reading (URLs that come from someone else's record): only ``http(s)`` to public
addresses, ``s3://`` (read with the reader's own S3 settings) and ``at://``
blobs, unless private addresses are allowed (:func:`private_urls_allowed`).
HTTP is read through :func:`checked_http_client`, whose connections go to the
very address that was checked, on every redirect hop.

Publishing: a URL carrying a credential is always refused; a URL others likely
cannot read is reported (:class:`~atdata.errors.PrivateURLWarning`, or
:class:`~atdata.errors.PrivateURLError` when public URLs are required).

    >>> url_concern("http://0x7f.0.0.1/d.tar", resolve=False)
    Concern(kind='private', reason='127.0.0.1 is a loopback address')
    >>> url_concern("https://93.184.216.34/d.tar") is None
    True
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import socket
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from atdata.errors import CredentialURLError, PrivateURLError, PrivateURLWarning

if TYPE_CHECKING:
    import httpx

__all__ = [
    "ALLOW_PRIVATE_ENV",
    "Concern",
    "ReadPolicy",
    "check_publishable",
    "checked_http_client",
    "checked_transport",
    "credential_reason",
    "host_concern",
    "is_aws_endpoint",
    "parse_ip",
    "private_urls_allowed",
    "public_s3_url",
    "redact_url",
    "url_concern",
]

ALLOW_PRIVATE_ENV = "ATDATA_ALLOW_PRIVATE_URLS"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Names that never leave the local network, whatever they resolve to today.
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa", ".intranet")
# Query parameters of presigned / signed URLs and bearer tokens (lower case).
_SECRET_PARAMS = frozenset(
    {
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "x-goog-signature",
        "x-goog-credential",
        "awsaccesskeyid",
        "signature",
        "sig",
        "token",
        "access_token",
        "auth",
        "api_key",
        "apikey",
        "key",
        "password",
        "secret",
    }
)
_INET_ATON = re.compile(r"^[0-9a-fx.]+$", re.IGNORECASE)
_AWS_HOST = re.compile(r"(^|\.)amazonaws\.com(\.cn)?$")


def private_urls_allowed(explicit: bool | None = None) -> bool:
    """``explicit`` if given, else whether ``$ATDATA_ALLOW_PRIVATE_URLS`` is ``1``/``true``/``yes``."""
    if explicit is not None:
        return explicit
    return os.environ.get(ALLOW_PRIVATE_ENV, "").strip().lower() in ("1", "true", "yes")


class Concern(NamedTuple):
    """Why a URL is not a public one: ``kind`` is ``local``, ``private`` or ``scheme``."""

    kind: Literal["local", "private", "scheme"]
    reason: str


# --------------------------------------------------------------------------- addresses


def parse_ip(host: str) -> IPAddress | None:
    """The address ``host`` denotes as the system resolver reads it, or None for a name.

    IPv4-mapped IPv6 addresses are returned as the IPv4 address they carry.

    >>> [str(parse_ip(h)) for h in ("127.1", "0x7f.0.0.1", "2130706433", "[::ffff:10.0.0.1]")]
    ['127.0.0.1', '127.0.0.1', '127.0.0.1', '10.0.0.1']
    >>> parse_ip("example.org") is None
    True
    """
    text = host.strip().lower().rstrip(".")
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    address: IPAddress | None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        address = None
        if text and _INET_ATON.match(text):
            try:  # the resolver's own reading: short (127.1), hex, octal and integer forms
                address = ipaddress.IPv4Address(socket.inet_aton(text))
            except OSError:
                address = None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _address_kind(address: IPAddress) -> str | None:
    """What kind of non-public address ``address`` is (``"a loopback address"``...), or None."""
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (where cloud metadata services live)"
    if address.is_private:
        return "a private-network address"
    if address.is_unspecified or address.is_multicast or address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "not a globally routable address"
    return None


def _address_reason(host: str, addresses: Sequence[IPAddress]) -> str | None:
    """Why ``host`` (resolved to ``addresses``) is not public, or None."""
    literal = parse_ip(host) is not None
    for address in addresses:
        kind = _address_kind(address)
        if kind is not None:
            if literal:
                return f"{address} is {kind}"
            return f"{host.lower().rstrip('.')!r} resolves to {address}, {kind}"
    return None


def resolve(host: str, port: int | None = None) -> list[IPAddress]:
    """Every address ``host`` resolves to (``getaddrinfo``); ``OSError`` if none."""
    literal = parse_ip(host)
    if literal is not None:
        return [literal]
    found: list[IPAddress] = []
    for *_, sockaddr in socket.getaddrinfo(host.rstrip(".") or host, port, type=socket.SOCK_STREAM):
        address = parse_ip(str(sockaddr[0]).split("%", 1)[0])
        if address is not None and address not in found:
            found.append(address)
    if not found:
        raise OSError(f"{host} resolves to no address")
    return found


def host_concern(host: str, *, resolve_names: bool = True) -> str | None:
    """Why ``host`` is not a public host, or None.

    Literal addresses in every resolver form are classified directly; names like
    ``localhost`` or ``*.internal`` are local by name; other names are resolved
    (when ``resolve_names``) and are private if any of their addresses is.
    """
    name = host.strip().lower().rstrip(".")
    if not name:
        return "it names no host"
    address = parse_ip(name)
    if address is not None:
        return _address_reason(name, [address])
    if name == "localhost" or name.endswith(_LOCAL_SUFFIXES):
        return f"{name!r} is a local host name"
    if "." not in name:
        return f"{name!r} is a single-label (intranet) host name"
    if not resolve_names:
        return None
    try:
        addresses = resolve(name)
    except (OSError, UnicodeError):
        return None  # no evidence either way (offline, or not yet in DNS): readers will see
    return _address_reason(name, addresses)


# --------------------------------------------------------------------------- URLs


def _is_local(scheme: str) -> bool:
    return not scheme or len(scheme) == 1 or scheme == "file"


def url_concern(url: str, *, resolve: bool = True, endpoint: str | None = None) -> Concern | None:
    """Why ``url`` is not readable by anyone on the internet, or None.

    ``endpoint`` is the S3 endpoint of an ``s3://`` URL (None: AWS).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if _is_local(scheme):
        return Concern("local", "it is a local file path")
    if scheme == "at":
        if "/blob/" in parts.path:
            return Concern(
                "scheme",
                "a blob named by URL is not kept alive by this record, so its PDS may delete "
                "it (store the shards with a PDSBlobStore instead)",
            )
        return None
    if scheme == "s3":
        if endpoint is None:
            return None
        concern = url_concern(endpoint, resolve=resolve)
        if concern is None:
            return None
        return Concern(concern.kind, f"its S3 endpoint {redact_url(endpoint)}: {concern.reason}")
    if scheme not in ("http", "https"):
        return Concern("scheme", f"{scheme}:// is not a scheme atdata reads from records")
    try:
        host = parts.hostname or ""
    except ValueError:
        return Concern("private", "its host cannot be parsed")
    reason = host_concern(host, resolve_names=resolve)
    return None if reason is None else Concern("private", reason)


def credential_reason(url: str) -> str | None:
    """Why ``url`` carries a credential (user-info, signed or token query), or None.

    >>> credential_reason("https://b.s3.amazonaws.com/k?X-Amz-Signature=abc&X-Amz-Credential=x")
    'its query carries X-Amz-Signature'
    >>> credential_reason("https://user:pw@example.org/d.tar")
    'it carries a user name or password'
    """
    parts = urlsplit(url)
    if _is_local(parts.scheme.lower()) or parts.scheme.lower() == "at":
        return None
    if "@" in parts.netloc:
        return "it carries a user name or password"
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        if name.lower() in _SECRET_PARAMS:
            return f"its query carries {name}"
    return None


def redact_url(url: str) -> str:
    """``url`` without credentials or query string, safe to print.

    >>> redact_url("https://user:secret@example.org:8443/data.tar?X-Amz-Signature=abc")
    'https://example.org:8443/data.tar'
    """
    parts = urlsplit(url)
    if not parts.scheme or len(parts.scheme) == 1 or parts.scheme == "at":
        return url  # a local path (or a Windows drive), or an at:// URI (a DID has no secrets)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def is_aws_endpoint(endpoint: str | None) -> bool:
    """Whether ``endpoint`` is AWS's own S3 (or unset): records then need not name it."""
    if not endpoint:
        return True
    return bool(_AWS_HOST.search((urlsplit(endpoint).hostname or "").lower()))


def public_s3_url(url: str, endpoint: str) -> str:
    """The anonymous, path-style HTTP URL of ``s3://bucket/key`` on ``endpoint``.

    >>> public_s3_url("s3://data/a b.tar", "https://s3.example.org/")
    'https://s3.example.org/data/a%20b.tar'
    """
    parts = urlsplit(url)
    return f"{endpoint.rstrip('/')}/{parts.netloc}/{quote(parts.path.lstrip('/'), safe='/~')}"


# --------------------------------------------------------------------------- publishing


def _user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside atdata."""
    package = os.path.dirname(__file__)
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def check_publishable(
    urls: Iterable[str],
    *,
    endpoint: str | None = None,
    require_public: bool = False,
    warn: bool = True,
) -> None:
    """Vet URLs about to go into a public record.

    A URL carrying a credential raises :class:`~atdata.errors.CredentialURLError`
    (always). URLs others likely cannot read raise
    :class:`~atdata.errors.PrivateURLError` with ``require_public``, else one
    :class:`~atdata.errors.PrivateURLWarning` names each of them and why
    (``warn=False``: refusals only, for the check made before copying; the
    warning comes when the final URLs are published).
    """
    concerns: dict[str, list[str]] = {}
    url_list = list(urls)
    for url in [*url_list, *([endpoint] if endpoint else [])]:
        secret = credential_reason(url)
        if secret is not None:
            raise CredentialURLError(
                f"refusing to publish {redact_url(url)!r}: {secret}; a record is public and "
                "permanent, so publish the plain URL and let readers bring their own access",
                url=redact_url(url),
            )
    by_origin: dict[tuple[str, str], Concern | None] = {}  # resolve each host once
    for url in url_list:
        parts = urlsplit(url)
        origin = (parts.scheme.lower(), parts.netloc.lower())
        if origin not in by_origin or _is_local(origin[0]):
            by_origin[origin] = url_concern(url, endpoint=endpoint)
        concern = by_origin[origin]
        if concern is not None:
            concerns.setdefault(concern.reason, []).append(redact_url(url))
    if not concerns:
        return
    lines = []
    for reason, found in concerns.items():
        shown = ", ".join(repr(u) for u in found[:20])
        more = f" and {len(found) - 20} more" if len(found) > 20 else ""
        lines.append(f"{shown}{more}: {reason}")
    text = "; ".join(lines)
    first = next(iter(concerns.values()))[0]
    if require_public:
        raise PrivateURLError(
            f"refusing to publish URLs others likely cannot read: {text}; copy the shards "
            "where others can read them (your PDS as blobs, or a public bucket)",
            url=first,
        )
    if warn:
        warnings.warn(
            PrivateURLWarning(f"publishing URLs others likely cannot read: {text}"),
            stacklevel=_user_stacklevel(),
        )


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class ReadPolicy:
    """Which URLs from other people's records this reader opens.

    ``allow_private``: also local files and loopback, private and link-local
    hosts. ``trusted``: ``(host, port)`` pairs the reader configured itself (its
    own PDS), opened whatever their address.
    """

    allow_private: bool = False
    trusted: frozenset[tuple[str, int]] = frozenset()

    @classmethod
    def make(cls, allow_private: bool | None = None, trusted: Iterable[str] = ()) -> ReadPolicy:
        """The policy for ``allow_private`` (None: ``$ATDATA_ALLOW_PRIVATE_URLS``),
        trusting the origins of the ``trusted`` URLs and ``$ATDATA_PDS_URL``."""
        origins = {_origin(u) for u in (*trusted, os.environ.get("ATDATA_PDS_URL", "")) if u}
        return cls(private_urls_allowed(allow_private), frozenset(o for o in origins if o))

    def is_trusted(self, url: str) -> bool:
        """Whether ``url`` is on an origin the reader configured itself."""
        return _origin(url) in self.trusted

    def check(self, url: str) -> None:
        """Raise :class:`~atdata.errors.PrivateURLError` if this reader does not open ``url``.

        Only the URL's form is checked here (scheme, literal addresses in any
        spelling, local names); what a host name resolves to is checked when
        connecting, see :func:`checked_http_client`.
        """
        scheme = urlsplit(url).scheme.lower()
        if scheme in ("s3", "at"):
            return
        if self.allow_private and (scheme in ("http", "https") or _is_local(scheme)):
            return
        if scheme in ("http", "https") and self.is_trusted(url):
            return
        concern = url_concern(url, resolve=False)
        if concern is not None:
            raise _refusal(url, concern.reason, opt_in=concern.kind != "scheme")

    def check_address(self, host: str, port: int, addresses: Sequence[IPAddress]) -> None:
        """Refuse a connection to ``host`` unless every address it resolved to is allowed."""
        if self.allow_private or (host.lower().rstrip("."), port) in self.trusted:
            return
        reason = _address_reason(host, addresses)
        if reason is not None:
            where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            raise _refusal(where, reason, opt_in=True)


def _refusal(url: str, reason: str, *, opt_in: bool) -> PrivateURLError:
    hint = (
        f"; a record's URLs may only name public hosts unless you allow private ones "
        f"({ALLOW_PRIVATE_ENV}=1, or allow_private_urls=True in Python)"
        if opt_in
        else ""
    )
    return PrivateURLError(
        f"refusing to read {redact_url(url)!r}: {reason}{hint}", url=redact_url(url)
    )


def _origin(url: str) -> tuple[str, int] | None:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return None
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        return None
    return ((parts.hostname or "").lower().rstrip("."), port)


@functools.cache
def _checked_transport_class() -> Callable[[ReadPolicy], httpx.HTTPTransport]:
    """The pinned transport class (built on first use: ``import atdata`` stays light)."""
    import httpcore
    import httpx

    class CheckedBackend(httpcore.SyncBackend):
        """Resolve once, check every address, connect to a checked one.

        The TLS server name and the ``Host`` header still come from the URL, so
        certificates are verified against the name; only the socket's destination
        is pinned, which closes the gap between checking a name and connecting to
        whatever it resolves to a moment later (DNS rebinding).
        """

        def __init__(self, policy: ReadPolicy) -> None:
            self._policy = policy

        def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Iterable[Any] | None = None,
        ) -> httpcore.NetworkStream:
            try:
                addresses = resolve(host, port)
            except (OSError, UnicodeError) as exc:
                raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
            self._policy.check_address(host, port, addresses)
            error: Exception | None = None
            for address in addresses:
                try:
                    return super().connect_tcp(
                        str(address), port, timeout, local_address, socket_options
                    )
                except httpcore.ConnectError as exc:
                    error = exc
            assert error is not None
            raise error

    class CheckedTransport(httpx.HTTPTransport):
        """Every connection (redirect hops included) goes through the policy."""

        def __init__(self, policy: ReadPolicy) -> None:
            super().__init__(trust_env=False)
            self._pool = httpcore.ConnectionPool(
                ssl_context=httpx.create_ssl_context(trust_env=False),
                network_backend=CheckedBackend(policy),
            )

    return CheckedTransport


def checked_transport(policy: ReadPolicy) -> httpx.HTTPTransport:
    """An ``httpx`` transport whose every connection is checked and pinned by ``policy``."""
    return _checked_transport_class()(policy)


def checked_http_client(policy: ReadPolicy, *, timeout: float = 60.0) -> httpx.Client:
    """An ``httpx.Client`` that reads only what ``policy`` allows, redirect hops included.

    It ignores proxy and ``.netrc`` settings of the environment: a stranger's URL
    gets neither the reader's proxy route into its network nor its passwords.
    """
    import httpx

    return httpx.Client(
        timeout=timeout,
        follow_redirects=True,
        trust_env=False,
        transport=checked_transport(policy),
    )
