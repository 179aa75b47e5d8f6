"""The webhook outbox: one follower per endpoint on the store's ordered feed (``feed_after``), delivering
each matching event in feed order, one at a time per endpoint (so in order per endpoint and job), and
moving the endpoint's cursor only once the event is settled.

An event that fails is retried with exponential backoff and full jitter (``retry_base * 2**attempt``,
capped at ``retry_max``); after ``max_attempts`` the endpoint is marked failing (its API answer says so, with
the last error) and the follower moves on, so that one dead receiver does not stall forever: a replay
redelivers what it missed. The next delivered event clears the mark.

Intentional divergence from a table of pending deliveries written beside each event: the feed already is
that table, ordered and durable, so a cursor per endpoint is all the outbox needs on the embedded backend.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from reelcast.jobs.v1 import job_pb2
from reelcast.server.metrics import (
    WEBHOOK_ATTEMPT_SECONDS,
    WEBHOOK_ATTEMPTS,
    WEBHOOK_FAILED_EVENTS,
    WEBHOOK_OUTBOX_DEPTH,
)
from reelcast.server.storage.job_store import JobStore
from reelcast.server.webhooks.delivery import Deliverer, DeliveryOutcome
from reelcast.server.webhooks.endpoints import EndpointRegistry, WebhookEndpoint
from reelcast.server.webhooks.payloads import delivery_body, message_id
from reelcast.server.webhooks.registry import WebhookRegistry
from reelcast.server.webhooks.settings import WebhookSettings
from reelcast.server.webhooks.signing import signed_headers

log = logging.getLogger(__name__)
_BATCH = 100


def retry_delay(attempt: int, settings: WebhookSettings, draw: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry): full jitter, so that
    receivers coming back up are not hit by every endpoint's retry at the same instant."""
    ceiling: float = min(settings.retry_max_seconds, settings.retry_base_seconds * 2.0 ** (attempt - 1))
    return ceiling * draw()


class WebhookOutbox:
    """Delivers every endpoint's pending events while :meth:`run` runs; a new endpoint is picked up within
    ``poll_seconds``, a new event too."""

    def __init__(
        self,
        store: JobStore,
        registry: EndpointRegistry,
        settings: WebhookSettings,
        poll_seconds: float = 0.2,
    ) -> None:
        self._store = store
        self._registry = registry
        self._settings = settings
        self._poll_seconds = poll_seconds
        self._deliverer = Deliverer(settings)
        self._followers: dict[str, asyncio.Task[None]] = {}
        self._lag: dict[str, int] = {}  # per endpoint: feed events after its cursor

    async def run(self) -> None:
        try:
            while True:
                await self._follow_endpoints(await self._registry.endpoints())
                await asyncio.sleep(self._poll_seconds)
        finally:
            for follower in self._followers.values():
                follower.cancel()
            await asyncio.gather(*self._followers.values(), return_exceptions=True)
            await self.close()

    async def close(self) -> None:
        """Closes the connection pool (:meth:`run` does it when it ends)."""
        await self._deliverer.close()

    def _cursors(self) -> WebhookRegistry:
        # The feed cursors are the embedded registry's; the NATS outbox (nats_outbox.py) follows consumers.
        assert isinstance(self._registry, WebhookRegistry)
        return self._registry

    async def _follow_endpoints(self, endpoints: Iterable[WebhookEndpoint]) -> None:
        current = {endpoint.id for endpoint in endpoints}
        for gone in set(self._followers) - current:
            self._followers.pop(gone).cancel()
            self._lag.pop(gone, None)
        if self._followers or current:
            head = await self._store.feed_head()
            for endpoint_id in current:
                position = await self._cursors().position(endpoint_id)
                self._lag[endpoint_id] = max(head - position, 0) if position is not None else 0
            WEBHOOK_OUTBOX_DEPTH.set(sum(self._lag.values()))
        for endpoint_id in current - set(self._followers):
            self._followers[endpoint_id] = asyncio.create_task(self._follow(endpoint_id))

    async def _follow(self, endpoint_id: str) -> None:
        while True:
            position = await self._cursors().position(endpoint_id)
            endpoint = next((e for e in await self._registry.endpoints() if e.id == endpoint_id), None)
            if position is None or endpoint is None:
                return  # deleted
            entries = await self._store.feed_after(position, endpoint.owner, _BATCH)
            for entry in entries:
                if endpoint.selects(entry.owner, entry.labels, entry.event):
                    await self._deliver_with_retries(endpoint, entry.event)
                await self._cursors().advance(endpoint_id, entry.position)
            if len(entries) < _BATCH:
                await asyncio.sleep(self._poll_seconds)

    async def _deliver_with_retries(self, endpoint: WebhookEndpoint, event: job_pb2.JobProgress) -> None:
        outcome = DeliveryOutcome()
        for attempt in range(1, self._settings.max_attempts + 1):
            if attempt > 1:
                await asyncio.sleep(retry_delay(attempt - 1, self._settings))
            outcome = await self.deliver_once(endpoint, event)
            if outcome.delivered:
                if endpoint.failing:
                    endpoint.failing, endpoint.last_error = False, ""
                    await self._registry.mark(endpoint.id, False, "")
                return
        assert outcome.error is not None
        WEBHOOK_FAILED_EVENTS.inc()
        endpoint.failing, endpoint.last_error = True, f"{outcome.error.code}: {outcome.error.message}"
        log.warning("webhook %s failing after %d attempts: %s", endpoint.id, attempt, endpoint.last_error)
        # Only the mark is written: ``endpoint`` was read before the attempts (hours, with the backoff), and
        # saving it whole would undo a rotation made meanwhile.
        await self._registry.mark(endpoint.id, True, endpoint.last_error)

    async def deliver_once(self, endpoint: WebhookEndpoint, event: job_pb2.JobProgress) -> DeliveryOutcome:
        """One signed attempt of ``event`` to ``endpoint``; a fresh timestamp each time, the same id."""
        body = delivery_body(event)
        now = datetime.now(UTC)
        secrets = endpoint.signing_secrets(int(time.time() * 1e6))
        headers = signed_headers(message_id(event), body, secrets, now)
        started = time.monotonic()
        outcome = await self._deliverer.attempt(endpoint.url, body, headers)
        result = "delivered" if outcome.error is None else "failed"
        WEBHOOK_ATTEMPT_SECONDS.labels(result).observe(time.monotonic() - started)
        WEBHOOK_ATTEMPTS.labels("delivered" if outcome.error is None else outcome.error.code).inc()
        return outcome

    async def replay_events(
        self, endpoint: WebhookEndpoint, job_id: str, from_sequence: int
    ) -> list[job_pb2.JobProgress]:
        """``job_id``'s events from ``from_sequence`` on that match ``endpoint``'s filter, in order."""
        matching: list[job_pb2.JobProgress] = []
        after = max(from_sequence, 1) - 1
        while True:
            events = await self._store.events_after(job_id, after, _BATCH)
            matching += [event for event in events if endpoint.event_filter.matches(event)]
            if len(events) < _BATCH:
                return matching
            after = events[-1].sequence

    async def redeliver(self, endpoint: WebhookEndpoint, events: list[job_pb2.JobProgress]) -> int:
        """Delivers ``events`` again, in order and with the same ids as the first time (a receiver
        deduplicating by ``webhook-id`` sees each once), each with its retries. Gives their number."""
        for event in events:
            await self._deliver_with_retries(endpoint, event)
        return len(events)

    async def replay_job(self, endpoint: WebhookEndpoint, job_id: str, from_sequence: int) -> int:
        """Redelivers ``job_id``'s matching events from ``from_sequence`` on; gives how many."""
        return await self.redeliver(endpoint, await self.replay_events(endpoint, job_id, from_sequence))
