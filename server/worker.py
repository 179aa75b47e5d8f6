"""``reelcast worker``: runs jobs from the shared work queue, and serves no API.

A worker needs the distributed store (``--store nats://...``): with the embedded store only the process that
owns the SQLite file can run its jobs, which is what ``reelcast serve`` does. Each worker takes up to
``--concurrency`` jobs at a time, heartbeats their claims while they run, and on SIGTERM finishes (or, after
the shutdown grace, hands back) the jobs it holds, so that another worker resumes them from their checkpoints.
That stop is bounded even with NATS gone, and a second signal stops at once (shutdown.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable

from reelcast.jobs.tracing import configure_tracing
from reelcast.plugins.host import PluginHost
from reelcast.server.announce import Announcer
from reelcast.server.config import Settings
from reelcast.server.execution.runner import JobRunner
from reelcast.server.logs import configure_logging
from reelcast.server.metrics import MetricsEndpoint, sample_periodically
from reelcast.server.shutdown import install_stop_signals, unless_stopped
from reelcast.server.storage.backend import StoreChoiceError
from reelcast.server.storage.selection import open_backend

log = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


async def run_worker(
    settings: Settings,
    stop: asyncio.Event,
    host: PluginHost | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Runs until ``stop`` is set, then drains for ``settings.shutdown_grace_seconds``."""
    backend = open_backend(settings)
    if not backend.shared:
        raise StoreChoiceError("a worker needs a shared store, and the embedded SQLite store is not one")
    plugins = host if host is not None else PluginHost.load(settings.disabled_plugins)
    # A stop while NATS is still being reached (it may be down: that waits up to a minute) ends the start.
    if not await unless_stopped(backend.open(), stop):
        await backend.close()
        return
    runner = JobRunner(settings, backend, plugins)
    # A worker reports the shared queue's depth, not job counts: the API servers report those.
    sampler = asyncio.create_task(
        sample_periodically(settings.metrics_interval_seconds, backend.queue.depth, None)
    )
    try:
        await runner.start()
        if on_ready is not None:
            on_ready(worker_name())
        await stop.wait()
        runner.accepting = False
        await runner.stop(grace=settings.shutdown_grace_seconds)
    finally:
        sampler.cancel()
        await backend.close()  # bounded, and never an error even with NATS gone (NatsConnection.close)


async def serve_worker(settings: Settings, announcer: Announcer) -> int:
    """The CLI command: a worker stopped by SIGINT or SIGTERM. ``announcer`` tells that it runs (and where its
    metrics are, with ``settings.metrics_listen``)."""
    configure_logging(settings.log_format, settings.log_level)
    log.info("tracing: %s", configure_tracing())  # docs/observability.md#traces
    stop = install_stop_signals(settings.shutdown_grace_seconds)
    concurrency = max(1, settings.max_concurrent_jobs)
    endpoint = MetricsEndpoint.from_settings(settings)

    def ready(name: str) -> None:
        announcer.say(f"reelcast worker {name} running {concurrency} slot(s)")
        announcer.ready(
            grpc=None,
            http=None,
            metrics=endpoint.url if endpoint is not None else None,
            tls=settings.tls_cert_file is not None and settings.tls_key_file is not None,
            worker=name,
            slots=concurrency,
            dataDir=str(settings.data_dir),
        )

    if endpoint is not None:
        announcer.say(f"reelcast metrics on {endpoint.url}")
    try:
        await run_worker(settings, stop, on_ready=ready)
    finally:
        if endpoint is not None:
            endpoint.close()
    return 0
