"""The webhooks of one server process: the registry, the outbox that delivers, and what an owner may do
with their endpoints. The RPC surface (server/rpc/webhooks.py) checks the request's shape and calls these."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.jobs.v1 import job_pb2
from reelcast.server.storage.job_store import JobStore
from reelcast.server.tasks import cancel_and_wait
from reelcast.server.webhooks.endpoints import EndpointRegistry, EventFilter, WebhookEndpoint
from reelcast.server.webhooks.outbox import WebhookOutbox
from reelcast.server.webhooks.registration import create_endpoint, rotate_secret
from reelcast.server.webhooks.registry import WebhookRegistry
from reelcast.server.webhooks.settings import WebhookSettings


class WebhookService:
    """Runs the outbox between :meth:`start` and :meth:`stop`. :meth:`embedded` and :func:`nats_webhooks`
    (nats_outbox.py) build one per backend."""

    def __init__(
        self, store: JobStore, settings: WebhookSettings, registry: EndpointRegistry, outbox: WebhookOutbox
    ) -> None:
        self.store = store
        self.settings = settings
        self.registry = registry
        self.outbox = outbox
        self._task: asyncio.Task[None] | None = None
        self._replays: set[asyncio.Task[int]] = set()

    @classmethod
    def embedded(cls, store: JobStore, path: Path, settings: WebhookSettings) -> WebhookService:
        registry = WebhookRegistry(path)
        return cls(store, settings, registry, WebhookOutbox(store, registry, settings))

    def start(self) -> None:
        self._task = asyncio.create_task(self.outbox.run())

    async def stop(self) -> None:
        await cancel_and_wait(*self._replays, self._task)

    def close(self) -> None:
        """Closes the registry, after :meth:`stop` and once no RPC can reach it (the server drained)."""
        self.registry.close()

    async def create(
        self, owner: str, url: str, event_filter: EventFilter, labels: Mapping[str, str]
    ) -> WebhookEndpoint:
        return await create_endpoint(
            self.registry, self.store, self.settings, owner, url, event_filter, labels
        )

    async def owned(self, owner: str, endpoint_id: str) -> WebhookEndpoint:
        """The endpoint if ``owner`` has it; another owner's is E096 like a missing one."""
        for endpoint in await self.registry.endpoints(owner):
            if endpoint.id == endpoint_id:
                return endpoint
        raise ReelcastError(errors.WEBHOOK_NOT_FOUND, "No webhook endpoint with this id.")

    async def delete(self, owner: str, endpoint_id: str) -> None:
        await self.registry.remove((await self.owned(owner, endpoint_id)).id)

    async def rotate(self, owner: str, endpoint_id: str) -> str:
        return await rotate_secret(self.registry, await self.owned(owner, endpoint_id), self.settings)

    async def replay(self, owner: str, endpoint_id: str, job_id: str, from_sequence: int) -> int:
        """Starts redelivering ``job_id``'s matching events from ``from_sequence`` in the background (a slow
        receiver must not hold the call) and gives how many there are."""
        endpoint = await self.owned(owner, endpoint_id)
        return self._redeliver(endpoint, await self.outbox.replay_events(endpoint, job_id, from_sequence))

    async def replay_since(self, owner: str, endpoint_id: str, since_us: int) -> int:
        """Starts redelivering the endpoint's deliveries since ``since_us`` (every event it selects, of
        all the owner's jobs, written since then) in the background and gives how many there are."""
        endpoint = await self.owned(owner, endpoint_id)
        return self._redeliver(endpoint, await self.outbox.events_since(endpoint, since_us))

    def _redeliver(self, endpoint: WebhookEndpoint, events: list[job_pb2.JobProgress]) -> int:
        task = asyncio.create_task(self.outbox.redeliver(endpoint, events))
        self._replays.add(task)
        task.add_done_callback(self._replays.discard)
        return len(events)
