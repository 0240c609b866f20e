"""The one guard on every file the gateway fetches from a provider (an MMS medium, a call's
recording, a chat app's file): the channels call ``download`` and never ``requests.get`` a
provider's URL themselves (docs/security.md).

A URL a provider hands over (in a webhook, in an API answer) is a URL the worker will call,
sometimes with the account's credentials: it must not lead to the machine's own services, the
cloud's metadata address or the city's network (server-side request forgery). So, on every
hop, redirects included:

- the origin (scheme, host, port) must be one the operator configured: the provider's API base
  (``home``; the only origin credentials are sent to) or one of ``others`` (a CDN a redirect
  may lead to); anything else is refused before a request;
- a host written as a name is resolved (``resolver``, or the module's ``resolve``, which
  tests replace) and every address must be a public one: a name that leads to 127.0.0.1,
  10/8, 169.254.169.254, fc00::/7... is refused before a request. A host the operator wrote
  as an address (a test's fake server on 127.0.0.1, a local proxy) is taken as written: it is
  their setting;
- at most ``max_redirects`` redirects;
- a declared ``Content-Length`` over ``max_bytes`` is refused before reading, and the body is
  cut off as soon as it passes ``max_bytes``;
- the content type must be one of ``types`` (``"image/"`` accepts any image).

Not done (docs/security.md): the name is resolved here and again by the HTTP client when it
connects, so a DNS server that answers differently the second time (DNS rebinding) is not
stopped; only the origins an operator configured can get there.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

import requests

from gateway import filetypes

Resolver = Callable[[str, int], list[str]]
Origin = tuple[str, str, int | None]

REDIRECTS = frozenset({301, 302, 303, 307, 308})
CHUNK = 64 * 1024

# Why a download was refused; the console's names for a medium not kept
# (console.attachments.refused_reasons.<reason>).
ORIGIN, TOO_LARGE, TYPE = "origin", "too_large", "type"


class Refused(Exception):
    """Not fetched, for good; the message is log-safe (no URL, no address, no token)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class Unreachable(Exception):
    """Not had this time (network, a cut download): worth another try."""


class Answered(Exception):
    """The host answered something else than the file or a redirect: the caller decides."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the host answered {status}")
        self.status = status


def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (the system's resolver)."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError:
        return []
    return [str(info[4][0]) for info in infos]


def origin(url: str) -> Origin:
    """(scheme, host, port) of a URL; an unreadable one is nobody's origin."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "", "", None
    if port is None:
        port = {"https": 443, "http": 80}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True)
class Guard:
    home: str  # the provider's API base (a setting): credentials go there only
    max_bytes: int
    others: tuple[str, ...] = ()  # other origins a redirect may lead to (settings)
    types: tuple[str, ...] = ()  # accepted content types; "image/": any image; (): any
    max_redirects: int = 2
    resolver: Resolver | None = field(default=None, compare=False)  # None: ``resolve``
    timeout: float = 30

    def check(self, url: str) -> Origin:
        """The URL's origin if it may be fetched; Refused otherwise (no request made)."""
        _, host, port = target = origin(url)
        allowed = {origin(self.home), *(origin(o) for o in self.others)}
        if not host or target not in allowed:
            raise Refused(ORIGIN, "URL off the configured hosts")
        if urlsplit(url).username is not None:
            raise Refused(ORIGIN, "URL with credentials in it")
        if _literal(host) is None and host != "localhost":
            addresses = (self.resolver or resolve)(host, port or 0)
            if not addresses:
                raise Refused(ORIGIN, "host name resolves to nothing")
            if not all(_public(a) for a in addresses):
                raise Refused(ORIGIN, "host name resolves to a private address")
        return target

    def accepts(self, content_type: str) -> bool:
        if not self.types:
            return True
        return any(
            content_type.startswith(t) if t.endswith("/") else content_type == t for t in self.types
        )


@dataclass(frozen=True)
class Downloaded:
    content_type: str
    size: int
    data: bytes  # empty when written to ``out``


def download(
    guard: Guard,
    url: str,
    *,
    http: requests.Session | None = None,
    auth: tuple[str, str] | None = None,
    declared: str = "",
    out: BinaryIO | None = None,
) -> Downloaded:
    """The file at ``url``, every hop checked by ``guard``; into ``out`` if given (the caller
    removes a partial file on an exception), else in memory. ``auth`` goes to ``guard.home``
    only; ``declared``: the type to assume when the host names none."""
    get = http.get if http is not None else requests.get
    home = origin(guard.home)
    for _ in range(guard.max_redirects + 1):
        here = guard.check(url)
        try:
            response = get(
                url,
                auth=auth if here == home else None,
                stream=True,
                timeout=guard.timeout,
                allow_redirects=False,  # each hop is checked here
            )
        except requests.RequestException as exc:
            raise Unreachable(f"could not reach the host: {type(exc).__name__}") from exc
        with response:
            if response.status_code in REDIRECTS:
                url = urljoin(url, response.headers.get("Location", ""))
                continue
            if response.status_code != 200:
                raise Answered(response.status_code)
            content_type = filetypes.normalise(response.headers.get("Content-Type") or declared)
            if not guard.accepts(content_type):
                raise Refused(TYPE, f"type {content_type[:60]!r} is not accepted")
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > guard.max_bytes:
                raise Refused(
                    TOO_LARGE, f"{int(length)} bytes, over the {guard.max_bytes}-byte cap"
                )
            chunks: list[bytes] = []
            size = 0
            try:
                for chunk in response.iter_content(CHUNK):
                    size += len(chunk)
                    if size > guard.max_bytes:
                        raise Refused(TOO_LARGE, f"over the {guard.max_bytes}-byte cap")
                    if out is not None:
                        out.write(chunk)
                    else:
                        chunks.append(chunk)
            except requests.RequestException as exc:
                raise Unreachable(f"download cut: {type(exc).__name__}") from exc
            return Downloaded(content_type, size, b"".join(chunks))
    raise Refused(ORIGIN, "too many redirects")
