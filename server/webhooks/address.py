"""Where a delivery may connect: the URL's host is resolved here and every address it gives is checked, on
the first hop and on every redirect, before any byte is sent (docs/webhooks.md, "Safe to point anywhere").

The check is on the resolved addresses, never on the name, so a public-looking name that resolves (or
redirects) to 127.0.0.1, 10.x or 169.254.169.254 is refused like the literal address. The connection then
goes to the address that was checked, not to a second lookup a rebinding DNS server could answer
differently.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.server.webhooks.settings import WebhookSettings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Shared address space (RFC 6598): neither private nor global, and often a cloud's internal network.
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


def refusal_reason(address: Address) -> str | None:
    """Why a delivery may not connect to ``address`` by default, or None for a public address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return refusal_reason(address.ipv4_mapped)
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local (cloud metadata services live there)"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "shared (CGNAT)"
    if address.is_unspecified or address.is_reserved:
        return "reserved"
    if address.is_private or not address.is_global:
        return "private"
    return None


def check_address(address: Address, settings: WebhookSettings, host: str) -> None:
    """Raises E091 unless ``address`` is public or the operator allowed it."""
    reason = refusal_reason(address)
    if reason is None or settings.allow_private:
        return
    if any(address in network for network in settings.allowed_cidrs if network.version == address.version):
        return
    raise ReelcastError(
        errors.WEBHOOK_ADDRESS_NOT_ALLOWED, f"{host} resolves to {address}, a {reason} address"
    )


async def resolve_checked(host: str, port: int, settings: WebhookSettings) -> Address:
    """The address to connect to for ``host``: every address it resolves to must pass :func:`check_address`
    (one private answer among public ones refuses the host: that is how rebinding attacks mix them)."""
    try:
        literal: Address | None = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        check_address(literal, settings, host)
        return literal
    loop = asyncio.get_running_loop()
    try:
        answers = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as failure:
        raise ReelcastError(errors.WEBHOOK_DELIVERY_FAILED, f"{host} does not resolve: {failure}") from None
    addresses = [ipaddress.ip_address(str(answer[4][0]).split("%")[0]) for answer in answers]
    if not addresses:
        raise ReelcastError(errors.WEBHOOK_DELIVERY_FAILED, f"{host} does not resolve")
    for address in addresses:
        check_address(address, settings, host)
    return addresses[0]
