"""Which backend a deployment uses: ``Settings.store_url`` (``--store``, ``REELCAST_STORE``) is ``sqlite``
(the default, embedded) or ``nats://HOST:PORT[,HOST:PORT...]``. The one place that imports the ``nats``
extra, and only when a NATS store is chosen."""

from __future__ import annotations

import importlib.util

from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.server.config import Settings, prepare_data_dir
from reelcast.server.storage.backend import Backend, StoreChoiceError
from reelcast.server.storage.embedded.backend import EmbeddedBackend
from reelcast.server.storage.job_store import JobStore


def parse_store_url(url: str) -> list[str] | None:
    """``nats://HOST:PORT[,HOST:PORT...]`` as the client's server list; None for the embedded store."""
    url = url.strip()
    if not url or url == "sqlite":
        return None
    if not url.startswith("nats://"):
        raise StoreChoiceError(f"store must be 'sqlite' or nats://HOST:PORT[,HOST:PORT...], got {url!r}")
    return [f"nats://{part.strip().removeprefix('nats://')}" for part in url.split(",") if part.strip()]


def open_backend(settings: Settings, store: JobStore | None = None) -> Backend:
    """The backend ``settings`` ask for, not yet opened. ``store`` replaces the embedded store (tests).
    Creates the data dir owner-only, or warns once if others may read it (config.prepare_data_dir). Without
    the ``nats`` extra, a NATS store is E030, which names the command that installs it."""
    prepare_data_dir(settings.data_dir)
    servers = parse_store_url(settings.store_url) if store is None else None
    if servers is None:
        return EmbeddedBackend(settings, store)
    if importlib.util.find_spec("nats") is None:
        raise ReelcastError(errors.NATS_NOT_INSTALLED)
    from reelcast.server.storage.nats.backend import NatsBackend

    return NatsBackend(servers, settings)
