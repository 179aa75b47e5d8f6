"""The embedded backend: one process, jobs in the data dir's SQLite file."""

from __future__ import annotations

from reelcast.server.config import Settings
from reelcast.server.security.auth import load_or_create_secret
from reelcast.server.security.keys import ApiKeys, KeyStore
from reelcast.server.storage.backend import Backend
from reelcast.server.storage.embedded.job_store import SqliteJobStore
from reelcast.server.storage.embedded.media_store import LocalMediaStore
from reelcast.server.storage.embedded.work import LocalCancelBus, LocalJobFiles, LocalWorkQueue
from reelcast.server.storage.fairness import FairPolicy
from reelcast.server.storage.job_store import JobStore
from reelcast.server.storage.notifier import EventNotifier


class EmbeddedBackend(Backend):
    name = "sqlite"
    shared = False

    def __init__(self, settings: Settings, store: JobStore | None = None) -> None:
        """``store`` replaces the SQLite store (tests)."""
        self.local_media = LocalMediaStore(settings.media_database_path, settings.media_dir)
        super().__init__(
            store=store if store is not None else SqliteJobStore(settings.database_path),
            notifier=EventNotifier(),
            queue=LocalWorkQueue(FairPolicy(settings.user_weights, settings.max_running_jobs_per_user)),
            cancels=LocalCancelBus(),
            files=LocalJobFiles(settings),
            media=self.local_media,
        )

    def key_store(self, settings: Settings) -> ApiKeys:
        return KeyStore(settings.database_path)

    async def stream_token_secret(self, settings: Settings) -> bytes:
        return load_or_create_secret(settings.stream_token_secret_path)

    async def close(self) -> None:
        await super().close()
        self.local_media.close()
