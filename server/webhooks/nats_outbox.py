"""The webhook outbox on NATS: every API server follows every endpoint, and JetStream hands each endpoint's
events out one at a time, to one process at a time.

Each endpoint's position is its durable pull consumer on ``REELCAST_EVENTS`` (nats_registry.py), the stream
``WatchJobs`` reads as the feed. A process fetches the endpoint's next event, delivers it (with the embedded
outbox's filter, signing, retries and failing mark: the same :class:`WebhookOutbox` code) and acknowledges it
only once it is settled: delivered (2xx) or given up after ``max_attempts``. With ``max_ack_pending=1`` the
consumer hands out nothing else meanwhile, to this process or another, so deliveries stay in feed order (per
endpoint, and so per job) and are never made by two processes at once. While delivering, and while backing
off between attempts, the process renews the message every third of the ack wait (``in_progress``), so a
slow receiver never lets it lapse; a process that dies mid-delivery stops renewing, and after the ack wait
the event goes to another process. That delivery may repeat one the dead process made just before dying,
with the same ``webhook-id`` (``<jobId>_<sequence>``), which receivers deduplicate by.

Intentional divergence from the embedded outbox's cursor, which moves after every event: events an
endpoint does not select (other owners', filtered out) are acknowledged at once, so its consumer still
reads every owner's events (O(all events) per endpoint, like a WatchJobs watcher on NATS).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import nats.errors
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError

from reelcast.server.metrics import WEBHOOK_OUTBOX_DEPTH
from reelcast.server.storage.job_store import JobStore
from reelcast.server.storage.nats.job_store import feed_entry_of
from reelcast.server.storage.nats.layout import EVENTS_STREAM, NatsConnection
from reelcast.server.tasks import cancel_and_wait
from reelcast.server.webhooks.nats_registry import NatsWebhookRegistry, consumer_name
from reelcast.server.webhooks.outbox import WebhookOutbox
from reelcast.server.webhooks.service import WebhookService
from reelcast.server.webhooks.settings import WebhookSettings

log = logging.getLogger(__name__)


class NatsWebhookOutbox(WebhookOutbox):
    """Follows every endpoint of the shared registry while :meth:`run` runs; a new endpoint is picked up
    within ``poll_seconds``."""

    def __init__(
        self,
        store: JobStore,
        registry: NatsWebhookRegistry,
        settings: WebhookSettings,
        poll_seconds: float = 1.0,
    ) -> None:
        super().__init__(store, registry, settings, poll_seconds)
        self._nats_registry = registry

    async def run(self) -> None:
        try:
            while True:
                try:
                    endpoints = {e.id: e.owner for e in await self._nats_registry.endpoints()}
                except Exception as error:  # NATS away longer than the retries: try again
                    log.warning("webhook endpoints unreadable: %s: %s", type(error).__name__, error)
                    await asyncio.sleep(self._poll_seconds)
                    continue
                for gone in set(self._followers) - set(endpoints):
                    self._followers.pop(gone).cancel()
                    self._lag.pop(gone, None)
                for endpoint_id, owner in endpoints.items():
                    # Again for a follower that ended while its endpoint is still listed (a missed read).
                    if endpoint_id not in self._followers or self._followers[endpoint_id].done():
                        follower = asyncio.create_task(self._follow_nats(endpoint_id, owner))
                        self._followers[endpoint_id] = follower
                WEBHOOK_OUTBOX_DEPTH.set(sum(self._lag.values()))
                await asyncio.sleep(self._poll_seconds)
        finally:
            await cancel_and_wait(*self._followers.values())
            await self.close()

    async def _follow_nats(self, endpoint_id: str, owner: str) -> None:
        while True:
            try:
                await self._consume(endpoint_id, owner)
                return  # the endpoint is gone
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("webhook %s follower: %s: %s", endpoint_id, type(error).__name__, error)
                await asyncio.sleep(self._poll_seconds)

    async def _consume(self, endpoint_id: str, owner: str) -> None:
        js = self._nats_registry.js
        durable = consumer_name(endpoint_id)
        subscription = await js.pull_subscribe_bind(durable=durable, stream=EVENTS_STREAM)
        try:
            while True:
                try:
                    messages = await subscription.fetch(1, timeout=self._poll_seconds)
                except nats.errors.TimeoutError:
                    messages = []  # nothing new, or another process holds the endpoint's event
                if not messages:
                    if await self._nats_registry.get(owner, endpoint_id) is None:
                        return
                    await self._measure_lag(endpoint_id)
                    continue
                if not await self._settle(endpoint_id, owner, messages[0]):
                    return
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def _measure_lag(self, endpoint_id: str) -> None:
        with contextlib.suppress(NotFoundError):
            info = await self._nats_registry.js.consumer_info(EVENTS_STREAM, consumer_name(endpoint_id))
            self._lag[endpoint_id] = int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    async def _settle(self, endpoint_id: str, owner: str, message: Msg) -> bool:
        """Delivers ``message`` if the endpoint selects it, then acknowledges it; False once the endpoint
        is gone (the message is left to lapse: its consumer is being deleted)."""
        entry = feed_entry_of(message.subject, message.metadata.sequence.stream, message.data)
        # Read again for each event: a rotation or a failing mark made by another process applies now.
        endpoint = await self._nats_registry.get(owner, endpoint_id)
        if endpoint is None:
            return False
        if entry is not None and endpoint.selects(entry.owner, entry.labels, entry.event):
            async with self._renewing(message):
                await self._deliver_with_retries(endpoint, entry.event)
        # Acknowledged with the server's answer: the next fetch then gets the next event, not this one again.
        await message.ack_sync()
        return True

    @contextlib.asynccontextmanager
    async def _renewing(self, message: Msg) -> AsyncIterator[None]:
        async def renew() -> None:
            while True:
                await asyncio.sleep(self._settings.ack_wait_seconds / 3)
                with contextlib.suppress(nats.errors.Error):
                    await message.in_progress()

        renewer = asyncio.create_task(renew())
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer


def nats_webhooks(store: JobStore, connection: NatsConnection, settings: WebhookSettings) -> WebhookService:
    """The webhooks of an API server on the NATS backend: the shared registry and a follower of each of its
    endpoints."""
    registry = NatsWebhookRegistry(connection, settings)
    return WebhookService(store, settings, registry, NatsWebhookOutbox(store, registry, settings))
