"""The NATS JetStream backend: every server and worker on the same cluster shares jobs, work and keys."""

from __future__ import annotations

from reelcast.server.config import Settings
from reelcast.server.security.keys import ApiKeys
from reelcast.server.storage.backend import Backend
from reelcast.server.storage.fairness import FairPolicy
from reelcast.server.storage.nats.job_store import NatsJobStore
from reelcast.server.storage.nats.keys import NatsKeyStore, shared_stream_token_secret
from reelcast.server.storage.nats.layout import NatsConnection
from reelcast.server.storage.nats.media_store import NatsMediaStore
from reelcast.server.storage.nats.subtasks import NatsSubtasks
from reelcast.server.storage.nats.work import NatsCancelBus, NatsJobFiles, NatsNotifier, NatsWorkQueue


class NatsBackend(Backend):
    name = "nats"
    shared = True

    def __init__(self, servers: list[str], settings: Settings) -> None:
        self.connection = NatsConnection(servers, settings.nats_replicas, settings.nats_ack_wait_seconds)
        queue = NatsWorkQueue(
            self.connection, FairPolicy(settings.user_weights, settings.max_running_jobs_per_user)
        )
        files = NatsJobFiles(self.connection)
        super().__init__(
            store=NatsJobStore(self.connection),
            notifier=NatsNotifier(self.connection),
            queue=queue,
            cancels=NatsCancelBus(self.connection),
            files=files,
            media=NatsMediaStore(self.connection),
            subtasks=NatsSubtasks(self.connection, queue, files, settings.data_dir / "subtasks"),
        )

    async def open(self, timeout: float | None = None) -> None:
        if timeout is None:
            await self.connection.open()
        else:
            await self.connection.open(timeout=timeout)
        await super().open(timeout)

    def key_store(self, settings: Settings) -> ApiKeys:
        # The shared KV bucket: every API server of the deployment checks the same keys.
        return NatsKeyStore(self.connection)

    async def stream_token_secret(self, settings: Settings) -> bytes:
        # Shared in the keys bucket, so every API server accepts every server's tokens.
        return await shared_stream_token_secret(self.connection)

    async def close(self) -> None:
        await super().close()
        await self.connection.close()
