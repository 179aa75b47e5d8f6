"""The webhook deliveries' tunables, from ``REELCAST_WEBHOOK_*`` variables (docs/configuration.md)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from reelcast.jobs.settings_fields import from_environment, integer, number, setting, switch

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def cidrs(text: str) -> tuple[Network, ...]:
    """``10.0.0.0/8,fd00::/8``: networks the operator allows although they are private."""
    try:
        return tuple(
            ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()
        )
    except ValueError:
        raise ValueError("must be comma-separated CIDR networks") from None


@dataclass(frozen=True)
class WebhookSettings:
    # Private, loopback, link-local... addresses are refused unless the operator allows them (address.py).
    allow_private: bool = setting("REELCAST_WEBHOOK_ALLOW_PRIVATE", switch, default=False)
    allowed_cidrs: tuple[Network, ...] = setting("REELCAST_WEBHOOK_ALLOWED_CIDRS", cidrs, default=())
    connect_timeout_seconds: float = setting("REELCAST_WEBHOOK_CONNECT_TIMEOUT", number, default=5.0)
    read_timeout_seconds: float = setting("REELCAST_WEBHOOK_READ_TIMEOUT", number, default=10.0)
    # The whole attempt, redirects and body included: a receiver that trickles bytes is cut here.
    total_timeout_seconds: float = setting("REELCAST_WEBHOOK_TOTAL_TIMEOUT", number, default=15.0)
    max_response_bytes: int = setting("REELCAST_WEBHOOK_MAX_RESPONSE_BYTES", integer, default=64 * 1024)
    max_redirects: int = setting("REELCAST_WEBHOOK_MAX_REDIRECTS", integer, default=3)
    # Retries: base * 2**attempt with full jitter, capped at max; after max_attempts the endpoint is failing.
    retry_base_seconds: float = setting("REELCAST_WEBHOOK_RETRY_BASE", number, default=5.0)
    retry_max_seconds: float = setting("REELCAST_WEBHOOK_RETRY_MAX", number, default=3600.0)
    max_attempts: int = setting("REELCAST_WEBHOOK_MAX_ATTEMPTS", integer, default=12)
    # Deliveries in flight at once, over all endpoints: their own pool, never a job slot.
    max_concurrent_deliveries: int = setting("REELCAST_WEBHOOK_CONCURRENCY", integer, default=8)
    # NATS: how long an endpoint's event may stay unacknowledged before another process takes it over. The
    # delivering process renews it every third of this (during attempts and backoff alike), so this is only
    # how long a killed process holds its endpoint's next delivery.
    ack_wait_seconds: float = setting("REELCAST_WEBHOOK_ACK_WAIT", number, default=60.0)
    # How long the previous secret still signs after a rotation (both signatures are sent meanwhile).
    rotation_overlap_seconds: float = setting(
        "REELCAST_WEBHOOK_ROTATION_OVERLAP", number, default=24 * 3600.0
    )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> WebhookSettings:
        return cls(**from_environment(cls, environ))
