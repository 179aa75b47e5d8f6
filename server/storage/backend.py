"""The storage backend interface: everything the runner and the service need from storage.

A ``Backend`` holds the job store, the notifier, the work queue, the cancel bus, the job files, the
subtask pool (None where subtasks run in the stage's process) and the uploaded media (media/store.py), and
makes
the API server's key store and stream-token secret. Two implement it: ``embedded.backend.EmbeddedBackend``
(SQLite and in-process queues, the default) and ``nats.backend.NatsBackend`` (JetStream).
``selection.open_backend`` picks one from ``Settings.store_url`` (``--store``, ``REELCAST_STORE``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from reelcast.server.config import Settings
from reelcast.server.media.store import MediaStore
from reelcast.server.security.keys import ApiKeys
from reelcast.server.storage.job_store import JobStore
from reelcast.server.storage.notifier import EventNotifier
from reelcast.server.storage.work import CancelBus, JobFiles, SubtaskPool, WorkQueue


class Backend(ABC):
    # The name `--store` selects it by, in logs and metrics.
    name: ClassVar[str]
    # Whether other processes see the same jobs: a headless worker needs a shared backend.
    shared: ClassVar[bool]

    def __init__(
        self,
        store: JobStore,
        notifier: EventNotifier,
        queue: WorkQueue,
        cancels: CancelBus,
        files: JobFiles,
        media: MediaStore,
        subtasks: SubtaskPool | None = None,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.queue = queue
        self.cancels = cancels
        self.files = files
        self.media = media
        self.subtasks = subtasks

    async def open(self, timeout: float | None = None) -> None:
        """Connects and sets up what the backend needs (streams, buckets). ``timeout`` bounds the wait for
        a remote store; None means the backend's own patience (a server waits longer than a command)."""
        await self.notifier.start()

    @abstractmethod
    def key_store(self, settings: Settings) -> ApiKeys:
        """The API keys of this deployment."""

    @abstractmethod
    async def stream_token_secret(self, settings: Settings) -> bytes:
        """The secret stream tokens are signed with, the same for every API server of the deployment.
        Call after ``open``."""

    async def close(self) -> None:
        await self.store.close()


class NatsUnreachableError(ConnectionError):
    """No NATS server of the store URL answered within the open timeout. (Here, not in nats/, so that the
    CLI can catch it without the ``nats`` extra installed.)"""


class StoreChoiceError(ValueError):
    """The store the command line or REELCAST_STORE chose cannot be used: not a store URL, or the embedded
    store where a shared one is needed. The CLI prints it with a remediation (exit 2), never a traceback."""
