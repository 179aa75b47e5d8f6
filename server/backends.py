"""Chooses and assembles a storage backend: the embedded SQLite default, or NATS JetStream.

A ``Backend`` is everything the runner and the service need from storage: the job store, the notifier, the
work queue, the cancel bus and the job files, and it makes the API server's key store. ``Settings.store_url``
picks it (``--store``, ``REELCAST_STORE``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.server.auth import load_or_create_secret
from reelcast.server.config import Settings, prepare_data_dir
from reelcast.server.keys import ApiKeys, KeyStore
from reelcast.server.notifier import EventNotifier
from reelcast.server.store import JobStore, SqliteJobStore
from reelcast.server.work_queue import (
    CancelBus,
    JobFiles,
    LocalCancelBus,
    LocalJobFiles,
    LocalWorkQueue,
    WorkQueue,
)

if TYPE_CHECKING:  # the nats extra is imported only when a nats:// store is chosen (nats_connection)
    from reelcast.server.nats_layout import NatsConnection


@dataclass
class Backend:
    store: JobStore
    notifier: EventNotifier
    queue: WorkQueue
    cancels: CancelBus
    files: JobFiles
    name: str = "sqlite"
    # Set on NATS only; the SQLite backend never imports the nats extra.
    _connection: NatsConnection | None = field(default=None, repr=False)

    async def open(self) -> None:
        """Connects and sets up what the backend needs (streams, buckets); a no-op for SQLite."""
        if self._connection is not None:
            await self._connection.open()
        await self.notifier.start()

    def key_store(self, settings: Settings) -> ApiKeys:
        """The API keys of this deployment: the shared KV bucket on NATS, else the embedded SQLite table."""
        if self._connection is not None:
            from reelcast.server.nats_keys import NatsKeyStore

            return NatsKeyStore(self._connection)
        return KeyStore(settings.database_path)

    async def stream_token_secret(self, settings: Settings) -> bytes:
        """The secret stream tokens are signed with: shared in the keys bucket on NATS (every API server
        accepts every server's tokens), else the file in the data dir. Call after ``open``."""
        if self._connection is not None:
            from reelcast.server.nats_keys import shared_stream_token_secret

            return await shared_stream_token_secret(self._connection)
        return load_or_create_secret(settings.stream_token_secret_path)

    async def close(self) -> None:
        await self.store.close()
        if self._connection is not None:
            await self._connection.close()


class NatsUnreachableError(ConnectionError):
    """No NATS server of the store URL answered within the open timeout. (Here, not in nats_layout.py, so
    that the CLI can catch it without the ``nats`` extra installed.)"""


class StoreChoiceError(ValueError):
    """The store the command line or REELCAST_STORE chose cannot be used: not a store URL, or the embedded
    store where a shared one is needed. The CLI prints it with a remediation (exit 2), never a traceback."""


def parse_store_url(url: str) -> list[str] | None:
    """``nats://HOST:PORT[,HOST:PORT...]`` as the client's server list; None for the embedded store."""
    url = url.strip()
    if not url or url == "sqlite":
        return None
    if not url.startswith("nats://"):
        raise StoreChoiceError(f"store must be 'sqlite' or nats://HOST:PORT[,HOST:PORT...], got {url!r}")
    return [f"nats://{part.strip().removeprefix('nats://')}" for part in url.split(",") if part.strip()]


def nats_connection(servers: list[str], settings: Settings) -> NatsConnection:
    """The one place that imports the nats extra: an unopened connection to ``servers``. Without the extra
    installed, E030 names the command that installs it."""
    if importlib.util.find_spec("nats") is None:
        raise ReelcastError(errors.NATS_NOT_INSTALLED)
    from reelcast.server.nats_layout import NatsConnection

    return NatsConnection(servers, settings.nats_replicas, settings.nats_ack_wait_seconds)


def open_backend(settings: Settings, store: JobStore | None = None) -> Backend:
    """The backend ``settings`` ask for, not yet opened. ``store`` overrides the embedded store (tests).
    Creates the data dir owner-only, or warns once if others may read it (config.prepare_data_dir)."""
    prepare_data_dir(settings.data_dir)
    servers = parse_store_url(settings.store_url) if store is None else None
    if servers is None:
        return Backend(
            store=store if store is not None else SqliteJobStore(settings.database_path),
            notifier=EventNotifier(),
            queue=LocalWorkQueue(),
            cancels=LocalCancelBus(),
            files=LocalJobFiles(settings),
        )
    connection = nats_connection(servers, settings)
    from reelcast.server.nats_store import NatsJobStore
    from reelcast.server.nats_work import NatsCancelBus, NatsJobFiles, NatsNotifier, NatsWorkQueue

    return Backend(
        store=NatsJobStore(connection),
        notifier=NatsNotifier(connection),
        queue=NatsWorkQueue(connection),
        cancels=NatsCancelBus(connection),
        files=NatsJobFiles(connection),
        name="nats",
        _connection=connection,
    )
