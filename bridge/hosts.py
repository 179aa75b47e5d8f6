"""The Host header check: the bridge answers only names it can be reached by legitimately.

DNS rebinding: a page on ``evil.example`` points its own name at 127.0.0.1, and the browser then lets that
page read the bridge's answers as same-origin (without the bridge's cookies, but a bridge with authentication
off needs none). The requests still say ``Host: evil.example``, so answering only allowed names closes the
hole. The rule is Jupyter's (``allow_remote_access`` off):

- localhost names and loopback addresses are always allowed;
- so is the host the bridge listens on; listening on every interface (``0.0.0.0``, ``::``) allows every IP
  literal, because a rebinding page always carries a name, never an address;
- operators add names (``REELCAST_ALLOWED_HOSTS``, ``--allowed-hosts``): ``video.example`` exactly,
  ``.example.com`` for it and every subdomain, ``*`` for any name at all.

A request without a Host header (HTTP/1.0 tools) passes: every browser sends one.

Intentional divergence from Starlette's ``TrustedHostMiddleware``: it answers a bare text 400, not the
catalogue's error body, and knows neither loopback addresses nor the wildcard-listen rule.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from reelcast.bridge.problems import ApiError, problem_response
from reelcast.jobs import errors

LOCALHOST_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
WILDCARD_LISTEN = frozenset({"", "0.0.0.0", "::"})


def _host_name(host_header: str) -> str:
    """``Name:port``, ``[v6]:port`` or a bare name → the lowercase name without port or trailing dot."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


class HostRule:
    """Which Host names one bridge answers (see the module docstring)."""

    def __init__(self, listen_host: str | None, extra: Iterable[str] = ()) -> None:
        names = [name.strip().lower().rstrip(".") for name in extra if name.strip()]
        self.any_host = "*" in names
        self.suffixes = tuple(name for name in names if name.startswith("."))
        self.names = frozenset(name for name in names if not name.startswith(".")) | LOCALHOST_NAMES
        listen = _host_name(listen_host) if listen_host is not None else "localhost"
        self.any_ip = listen in WILDCARD_LISTEN
        if not self.any_ip:
            self.names |= {listen}

    def allows(self, host_header: str) -> bool:
        if self.any_host or not host_header:
            return True
        name = _host_name(host_header)
        address = _ip(name)
        if address is not None:
            return self.any_ip or address.is_loopback or name in self.names or str(address) in self.names
        if name in self.names or name.endswith(".localhost"):
            return True
        return any(name.endswith(suffix) or name == suffix[1:] for suffix in self.suffixes)


class HostCheckMiddleware:
    """Answers 400 ``E025-HOST_NOT_ALLOWED`` to a request whose Host the :class:`HostRule` refuses."""

    def __init__(self, app: ASGIApp, rule: HostRule) -> None:
        self.app = app
        self.rule = rule

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if not self.rule.allows(host):
                await problem_response(ApiError(errors.HOST_NOT_ALLOWED))(scope, receive, send)
                return
        await self.app(scope, receive, send)
