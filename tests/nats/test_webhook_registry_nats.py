"""The NATS webhook registry in process, on a real nats-server: one owner's listing reads only their keys,
and the failing mark written from an endpoint read before a rotation keeps the rotated secret (the outbox
reads an endpoint before attempts that can take hours)."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import AsyncIterator

import pytest

from reelcast.server.storage.nats.job_store import NatsJobStore
from reelcast.server.storage.nats.layout import NatsConnection
from reelcast.server.webhooks.endpoints import EventFilter
from reelcast.server.webhooks.nats_registry import NatsWebhookRegistry, consumer_name
from reelcast.server.webhooks.registration import create_endpoint, rotate_secret
from reelcast.server.webhooks.settings import WebhookSettings
from tests.nats.natsproc import NatsServer

SETTINGS = WebhookSettings(allowed_cidrs=(ipaddress.ip_network("127.0.0.0/8"),))


@pytest.fixture
async def connection(nats_server: NatsServer) -> AsyncIterator[NatsConnection]:
    opened = NatsConnection([nats_server.url], replicas=1, ack_wait_seconds=3.0)
    await opened.open()
    yield opened
    await opened.close()


async def test_endpoints_are_listed_per_owner_and_removed_with_their_consumer(
    connection: NatsConnection,
) -> None:
    registry, store = NatsWebhookRegistry(connection, SETTINGS), NatsJobStore(connection)
    url = "http://127.0.0.1:9/hooks"
    alices = [await create_endpoint(registry, store, SETTINGS, "alice", url, EventFilter(everything=True))]
    bobs = await create_endpoint(registry, store, SETTINGS, "bob ☃", url, EventFilter(terminal=True))
    alices.append(await create_endpoint(registry, store, SETTINGS, "alice", url, EventFilter(terminal=True)))

    assert [e.id for e in await registry.endpoints("alice")] == sorted(e.id for e in alices)
    assert await registry.endpoints("bob ☃") == [bobs]
    assert len(await registry.endpoints()) == 3

    await registry.remove(alices[0].id)
    assert [e.id for e in await registry.endpoints("alice")] == [alices[1].id]
    names = [info.name for info in await connection.layout.js.consumers_info("REELCAST_EVENTS")]
    assert consumer_name(alices[0].id) not in names and consumer_name(alices[1].id) in names


async def test_a_failing_mark_from_an_endpoint_read_before_a_rotation_keeps_the_new_secret(
    connection: NatsConnection,
) -> None:
    registry, store = NatsWebhookRegistry(connection, SETTINGS), NatsJobStore(connection)
    endpoint = await create_endpoint(
        registry, store, SETTINGS, "alice", "http://127.0.0.1:9/hooks", EventFilter(everything=True)
    )
    stale = dataclasses.replace(endpoint)
    rotated = await rotate_secret(registry, endpoint, SETTINGS)
    await registry.mark(stale.id, True, "E093-WEBHOOK_DELIVERY_FAILED: 503")

    now = await registry.get("alice", endpoint.id)
    assert now is not None
    assert (now.secret, now.previous_secret) == (rotated, stale.secret)
    assert (now.failing, now.last_error) == (True, "E093-WEBHOOK_DELIVERY_FAILED: 503")
