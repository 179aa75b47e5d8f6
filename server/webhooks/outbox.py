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
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from reelcast.jobs.tracing import TRACEPARENT_HEADER, current_traceparent, parse_traceparent, span
from reelcast.jobs.v1 import job_pb2
from reelcast.server.metrics import (
    WEBHOOK_ATTEMPT_SECONDS,
    WEBHOOK_ATTEMPTS,
    WEBHOOK_FAILED_EVENTS,
    WEBHOOK_OUTBOX_DEPTH,
)
from reelcast.server.storage.job_store import JobStore
from reelcast.server.tasks import cancel_and_wait
from reelcast.server.webhooks.delivery import Deliverer, DeliveryOutcome
from reelcast.server.webhooks.endpoints import EndpointRegistry, WebhookEndpoint
from reelcast.server.webhooks.payloads import delivery_body, message_id
from reelcast.server.webhooks.registry import WebhookRegistry
from reelcast.server.webhooks.settings import WebhookSettings
from reelcast.server.webhooks.signing import signed_headers

log = logging.getLogger(__name__)
_BATCH = 100
_REMEMBERED_JOBS = 1024


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
        self._traceparents: OrderedDict[str, str] = OrderedDict()  # job id -> Job.traceparent

    async def run(self) -> None:
        try:
            while True:
                await self._follow_endpoints(await self._registry.endpoints())
                await asyncio.sleep(self._poll_seconds)
        finally:
            await cancel_and_wait(*self._followers.values())
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
            found = await self._cursors().endpoint(endpoint_id)
            if found is None:
                return  # deleted
            endpoint, position = found
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
        """One signed attempt of ``event`` to ``endpoint``; a fresh timestamp each time, the same id.

        The attempt is a client span in the job's trace, linked to the span that created the job (as the
        job's own span is: job_trace.py), and its ``traceparent`` goes along so that the receiver's work
        joins the trace."""
        creating = parse_traceparent(await self._job_traceparent(event.job_id))
        attributes: dict[str, str | int | float | bool] = {
            "reelcast.job_id": event.job_id,
            "reelcast.sequence": event.sequence,
            "reelcast.webhook_id": endpoint.id,
            "http.request.method": "POST",
        }
        with span(
            "webhook delivery",
            parent=creating,
            links=[creating] if creating else [],
            kind="client",
            attributes=attributes,
        ) as opened:
            outcome = await self._attempt(endpoint, event)
            opened.set_attribute("reelcast.webhook.outcome", "delivered" if outcome.delivered else "failed")
            if outcome.status_code:
                opened.set_attribute("http.response.status_code", outcome.status_code)
            if outcome.error is not None:
                opened.set_attribute("reelcast.error_code", outcome.error.code)
        return outcome

    async def _job_traceparent(self, job_id: str) -> str:
        """The job's creating span (``Job.traceparent``), remembered for the most recent jobs: a job's
        events are delivered together, and a job's traceparent never changes."""
        if job_id in self._traceparents:
            self._traceparents.move_to_end(job_id)
            return self._traceparents[job_id]
        job = await self._store.get_job(job_id)
        traceparent = job.traceparent if job is not None else ""
        self._traceparents[job_id] = traceparent
        if len(self._traceparents) > _REMEMBERED_JOBS:
            self._traceparents.popitem(last=False)
        return traceparent

    async def _attempt(self, endpoint: WebhookEndpoint, event: job_pb2.JobProgress) -> DeliveryOutcome:
        body = delivery_body(event)
        now = datetime.now(UTC)
        secrets = endpoint.signing_secrets(int(time.time() * 1e6))
        headers = signed_headers(message_id(event), body, secrets, now)
        traceparent = current_traceparent()
        if traceparent:
            headers[TRACEPARENT_HEADER] = traceparent
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

    async def events_since(self, endpoint: WebhookEndpoint, since_us: int) -> list[job_pb2.JobProgress]:
        """The endpoint's deliveries since ``since_us`` (microseconds since the epoch): every event of its
        owner's jobs on the feed, written at or after that time, that the endpoint selects, in feed order.
        The feed is read from its start (it is kept for the store's retention only): the time of an event
        is not an index of the feed, since a retried job writes into it long after it began."""
        matching: list[job_pb2.JobProgress] = []
        position = 0
        while True:
            entries = await self._store.feed_after(position, endpoint.owner, _BATCH)
            matching += [
                entry.event
                for entry in entries
                if entry.event.time.ToMicroseconds() >= since_us
                and endpoint.selects(entry.owner, entry.labels, entry.event)
            ]
            if len(entries) < _BATCH:
                return matching
            position = entries[-1].position

    async def redeliver(self, endpoint: WebhookEndpoint, events: list[job_pb2.JobProgress]) -> int:
        """Delivers ``events`` again, in order and with the same ids as the first time (a receiver
        deduplicating by ``webhook-id`` sees each once), each with its retries. Gives their number."""
        for event in events:
            await self._deliver_with_retries(endpoint, event)
        return len(events)

    async def replay_job(self, endpoint: WebhookEndpoint, job_id: str, from_sequence: int) -> int:
        """Redelivers ``job_id``'s matching events from ``from_sequence`` on; gives how many."""
        return await self.redeliver(endpoint, await self.replay_events(endpoint, job_id, from_sequence))
