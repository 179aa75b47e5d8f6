"""The NATS backend's webhook records, shared by every API server of the deployment.

- The endpoint: ``endpoint.<user token>.<id>`` in the ``reelcast_webhooks`` KV bucket (owner-scoped like
  ``owner.<hex>`` of the media bucket, so one user's listing reads only their keys), a JSON record of the same
  fields as the embedded registry's.
- Its delivery position: a durable pull consumer ``webhook-<id>`` on ``REELCAST_EVENTS`` (every job's
  events and deletion records in the feed's one order), starting after the feed's head at creation. Explicit
  acks with ``max_ack_pending=1``: at most one event of the endpoint is out at a time, across every process,
  and the next is handed out only once it is acknowledged, so deliveries are in feed order (nats_outbox.py).

Creation makes the consumer before the record, deletion removes the record before the consumer: an
endpoint whose record exists always has its position.
"""

from __future__ import annotations

import contextlib
from typing import Any

from nats.js import api
from nats.js.errors import KeyNotFoundError, NotFoundError
from nats.js.kv import KV_OP, KeyValue

from reelcast.server.storage.nats.layout import (
    EVENTS_STREAM,
    WEBHOOKS_BUCKET,
    NatsConnection,
    owner_of_token,
    retrying,
    stream_messages,
    update_json_entry,
    user_token,
)
from reelcast.server.webhooks.endpoints import WebhookEndpoint
from reelcast.server.webhooks.registry import endpoint_of_record, record_of
from reelcast.server.webhooks.settings import WebhookSettings

_KV_SUBJECT = f"$KV.{WEBHOOKS_BUCKET}."
# Markers of a deleted key (nats-server 2.11 marks with Nats-Marker-Reason instead of KV-Operation).
_DELETED_HEADERS = (KV_OP, "Nats-Marker-Reason")


def consumer_name(endpoint_id: str) -> str:
    return f"webhook-{endpoint_id}"


def _key(owner: str, endpoint_id: str) -> str:
    return f"endpoint.{user_token(owner)}.{endpoint_id}"


class NatsWebhookRegistry:
    """:class:`EndpointRegistry` on the deployment's NATS connection (opened by the backend)."""

    def __init__(self, connection: NatsConnection, settings: WebhookSettings) -> None:
        self._connection = connection
        self._settings = settings

    def close(self) -> None:
        pass  # the connection is the backend's, closed with it

    @property
    def _bucket(self) -> KeyValue:
        return self._connection.layout.webhooks

    @property
    def js(self) -> Any:
        return self._connection.layout.js

    def consumer_config(self, endpoint_id: str, position: int) -> api.ConsumerConfig:
        return api.ConsumerConfig(
            durable_name=consumer_name(endpoint_id),
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=position + 1,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self._settings.ack_wait_seconds,
            # The outbox gives up on an event itself (max_attempts, then the failing mark): never the server.
            max_deliver=-1,
            max_ack_pending=1,
        )

    async def add(self, endpoint: WebhookEndpoint, position: int) -> None:
        config = self.consumer_config(endpoint.id, position)
        await retrying(lambda: self.js.add_consumer(EVENTS_STREAM, config))
        payload = record_of(endpoint).encode()
        bucket, key = self._bucket, _key(endpoint.owner, endpoint.id)
        await retrying(lambda: bucket.create(key, payload))

    async def save(self, endpoint: WebhookEndpoint) -> None:
        payload = record_of(endpoint).encode()
        bucket, key = self._bucket, _key(endpoint.owner, endpoint.id)
        await retrying(lambda: bucket.put(key, payload))

    async def mark(self, endpoint_id: str, failing: bool, last_error: str) -> None:
        def marked(record: dict[str, Any] | None) -> dict[str, Any] | None:
            if record is None:
                return None  # removed meanwhile
            return {**record, "failing": failing, "lastError": last_error}

        # Compare-and-set on the revision: a rotation by another server in between is kept.
        for endpoint in await self._read(f"endpoint.*.{endpoint_id}"):
            await update_json_entry(self._bucket, _key(endpoint.owner, endpoint_id), marked)

    async def remove(self, endpoint_id: str) -> None:
        for endpoint in await self._read(f"endpoint.*.{endpoint_id}"):
            bucket, key = self._bucket, _key(endpoint.owner, endpoint.id)
            await retrying(lambda bucket=bucket, key=key: bucket.purge(key))  # type: ignore[misc]
        with contextlib.suppress(NotFoundError):
            await retrying(lambda: self.js.delete_consumer(EVENTS_STREAM, consumer_name(endpoint_id)))

    async def endpoints(self, owner: str | None = None) -> list[WebhookEndpoint]:
        pattern = "endpoint.>" if owner is None else f"endpoint.{user_token(owner)}.*"
        return sorted(await self._read(pattern), key=lambda endpoint: endpoint.id)

    async def get(self, owner: str, endpoint_id: str) -> WebhookEndpoint | None:
        """The endpoint as it is now (after a rotation or a failing mark by any process); None once gone."""
        bucket = self._bucket
        try:
            entry = await retrying(lambda: bucket.get(_key(owner, endpoint_id)))
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        return endpoint_of_record(endpoint_id, owner, entry.value.decode())

    async def _read(self, pattern: str) -> list[WebhookEndpoint]:
        # Read from the bucket's stream one message at a time (stream_messages: a KV listing's push consumer
        # can miss entries); history=1, so each key's last message, a deletion marker for a removed one.
        found: list[WebhookEndpoint] = []
        async for message in stream_messages(self.js, f"KV_{WEBHOOKS_BUCKET}", _KV_SUBJECT + pattern):
            headers = message.headers or {}
            if any(name in headers for name in _DELETED_HEADERS) or not message.data:
                continue
            _, token, endpoint_id = (message.subject or "").removeprefix(_KV_SUBJECT).split(".")
            found.append(endpoint_of_record(endpoint_id, owner_of_token(token), message.data.decode()))
        return found
