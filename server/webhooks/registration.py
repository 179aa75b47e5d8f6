"""Registering, rotating and removing endpoints: the checks an owner's request goes through before the
registry stores it (a URL the server would refuse to deliver to is refused at once, with its code)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping

from reelcast.server.storage.job_store import JobStore
from reelcast.server.webhooks.address import resolve_checked
from reelcast.server.webhooks.delivery import valid_url
from reelcast.server.webhooks.endpoints import EndpointRegistry, EventFilter, WebhookEndpoint
from reelcast.server.webhooks.settings import WebhookSettings
from reelcast.server.webhooks.signing import new_secret


async def create_endpoint(
    registry: EndpointRegistry,
    store: JobStore,
    settings: WebhookSettings,
    owner: str,
    url: str,
    event_filter: EventFilter,
    labels: Mapping[str, str] | None = None,
) -> WebhookEndpoint:
    """A new endpoint of ``owner`` with a fresh secret, receiving the events that come after now. Raises
    E090 for a URL that is not http(s) and E091 for one whose host resolves to a refused address."""
    parsed = valid_url(url)
    await resolve_checked(parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80), settings)
    endpoint = WebhookEndpoint(
        id=f"wh_{uuid.uuid4().hex}",
        owner=owner,
        url=url,
        event_filter=event_filter,
        labels=dict(labels or {}),
        secret=new_secret(),
    )
    await registry.add(endpoint, await store.feed_head())
    return endpoint


async def rotate_secret(
    registry: EndpointRegistry, endpoint: WebhookEndpoint, settings: WebhookSettings
) -> str:
    """Gives ``endpoint`` a new secret; the previous one keeps signing beside it for the overlap period, so
    a receiver can switch without missing a delivery."""
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_us = int((time.time() + settings.rotation_overlap_seconds) * 1e6)
    endpoint.secret = new_secret()
    await registry.save(endpoint)
    return endpoint.secret
