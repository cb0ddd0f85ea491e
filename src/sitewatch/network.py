"""Outbound network safety: user-supplied URLs may not reach private or loopback addresses.

STAC sources and webhooks are URLs a user (or a web-app user) types in. Without a check, a URL
such as ``http://169.254.169.254/`` or ``http://localhost:5432/`` turns sitewatch into a proxy into
the analyst's own network (server-side request forgery). :func:`check_url` resolves the host and
refuses private, loopback, link-local, multicast and reserved addresses unless explicitly allowed.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from .errors import InputError

__all__ = ["UnsafeUrlError", "check_url"]


class UnsafeUrlError(InputError):
    """A URL points at a private, loopback or otherwise internal address."""


def _is_internal(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return bool(
        addr.is_private
        or addr.is_loopback
        or addr.is_link_local
        or addr.is_multicast
        or addr.is_reserved
        or addr.is_unspecified
    )


def check_url(
    url: str,
    *,
    allow_private: bool = False,
    schemes: tuple[str, ...] = ("https", "http"),
    what: str = "URL",
) -> str:
    """Return ``url`` if it is safe to fetch; raise :class:`UnsafeUrlError` otherwise.

    Every address the host resolves to must be public unless ``allow_private`` is set (for a
    STAC server or webhook receiver on the analyst's own network, configured on purpose).
    """
    parts = urlsplit(url)
    if parts.password:  # never echo a password in an error message or a log line
        url = parts._replace(netloc=f"{parts.username}:***@{parts.hostname or ''}").geturl()
    if parts.scheme not in schemes:
        raise UnsafeUrlError(
            f"{what} {url!r} must use {' or '.join(schemes)} (got {parts.scheme or 'no scheme'!r})"
        )
    host = parts.hostname
    if not host:
        raise UnsafeUrlError(f"{what} {url!r} has no host name")
    if parts.username or parts.password:
        raise UnsafeUrlError(
            f"{what} {url!r} carries credentials; put secrets in environment variables instead"
        )
    if allow_private:
        return url
    try:
        literal = ipaddress.ip_address(host)
        addrs = [literal]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
        except socket.gaierror as exc:
            raise UnsafeUrlError(f"{what} {url!r}: cannot resolve host {host!r} ({exc})") from exc
        addrs = [ipaddress.ip_address(info[4][0]) for info in infos]
    bad = sorted({str(a) for a in addrs if _is_internal(a)})
    if bad:
        raise UnsafeUrlError(
            f"{what} {url!r} resolves to internal address(es) {', '.join(bad)}; refusing to "
            "connect (server-side request forgery guard). If this server is yours on purpose, "
            "set allow_private = true for it in the configuration."
        )
    return url
