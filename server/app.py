"""Assembles one reelcast server process: store, plugin host, runner and the gRPC server."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable

import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.jobs.v1 import job_service_pb2, job_service_pb2_grpc
from reelcast.plugins.host import PluginHost
from reelcast.server.config import Settings
from reelcast.server.execution.review import expire_reviews_periodically
from reelcast.server.execution.runner import JobRunner
from reelcast.server.metrics import sample_periodically
from reelcast.server.rpc.interceptors import CallContextInterceptor, MetricsInterceptor
from reelcast.server.rpc.reflection import enable_reflection
from reelcast.server.rpc.service import JobService
from reelcast.server.security.auth import Authenticator, StreamTokens, load_or_create_secret
from reelcast.server.storage.job_store import JobStore
from reelcast.server.storage.retention import collect_periodically
from reelcast.server.storage.selection import open_backend
from reelcast.server.webhooks.service import WebhookService
from reelcast.server.webhooks.settings import WebhookSettings

log = logging.getLogger(__name__)
# How much longer than its grace periods a stop may take before its stuck steps are abandoned.
STOP_MARGIN_SECONDS = 10.0
SERVICE_NAME = job_service_pb2.DESCRIPTOR.services_by_name["JobService"].full_name


class ReelcastServer:
    """The gRPC API with an embedded runner. ``start`` returns the bound port (useful with port 0)."""

    def __init__(
        self, settings: Settings, host: PluginHost | None = None, store: JobStore | None = None
    ) -> None:
        self.settings = settings
        self.host = host if host is not None else PluginHost.load(settings.disabled_plugins)
        # SQLite by default; NATS JetStream with Settings.store_url (storage/selection.py).
        self.backend = open_backend(settings, store)
        self.store: JobStore = self.backend.store
        self.notifier = self.backend.notifier
        self.runner = JobRunner(settings, self.backend, self.host)
        self.health = health.aio.HealthServicer()
        # The key store and the token secret exist even with authentication off, so `reelcast keys` and a
        # later restart with authentication on find them.
        self.keys = self.backend.key_store(settings)
        self.stream_tokens = StreamTokens(
            load_or_create_secret(settings.stream_token_secret_path), settings.stream_token_ttl_seconds
        )
        self.authenticator = (
            Authenticator(
                self.keys,
                self.stream_tokens,
                session_ttl_seconds=settings.session_ttl_seconds,
                max_sessions_per_user=settings.max_sessions_per_user,
            )
            if settings.auth_required
            else None
        )
        limit = settings.grpc_max_message_bytes
        self.grpc_server = aio.server(
            interceptors=[
                MetricsInterceptor(),
                CallContextInterceptor(self.authenticator, settings.key_recheck_seconds),
            ],
            options=[
                ("grpc.max_receive_message_length", limit),
                # Keepalive pings are welcome every 5 s or more, on idle connections too: the bridge pings
                # every 20 s by default and never below 6 s (bridge/channel.py), so it is never struck out
                # with GOAWAY too_many_pings (gRPC's default enforcement refuses pings closer than 5 min).
                ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
                ("grpc.keepalive_permit_without_calls", 1),
            ],
        )
        self.port = 0
        self._retention: asyncio.Task[None] | None = None
        self._metrics: asyncio.Task[None] | None = None
        self._reviews: asyncio.Task[None] | None = None
        # Webhooks follow the store's feed: a cursor per endpoint beside the embedded store, a durable
        # consumer per endpoint on NATS (docs/webhooks.md); a backend with neither has none (E095).
        self.webhooks = self._webhooks(settings, WebhookSettings.from_environ(os.environ))

    def _webhooks(self, settings: Settings, webhook_settings: WebhookSettings) -> WebhookService | None:
        if not settings.store_url:
            return WebhookService.embedded(self.store, settings.data_dir / "webhooks.db", webhook_settings)
        # Imported here, not at the top: the nats extra is optional, and only a NATS store reaches this line
        # (storage/selection.py has already refused a NATS store without it, with E030).
        from reelcast.server.storage.nats.backend import NatsBackend
        from reelcast.server.webhooks.nats_outbox import nats_webhooks

        if isinstance(self.backend, NatsBackend):
            return nats_webhooks(self.store, self.backend.connection, webhook_settings)
        return None

    async def start(self) -> int:
        await self.backend.open()
        self.stream_tokens.use_secret(await self.backend.stream_token_secret(self.settings))
        job_service_pb2_grpc.add_JobServiceServicer_to_server(
            JobService(
                self.runner,
                self.store,
                self.notifier,
                self.stream_tokens if self.authenticator is not None else None,
                self.backend.media,
                self.webhooks,
            ),
            self.grpc_server,
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc_server)
        enable_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name), self.grpc_server
        )
        try:
            self.port = self._add_port()
        except RuntimeError:  # grpc's "Failed to bind to address"
            self.port = 0
        if self.port == 0:
            raise ReelcastError(
                errors.LISTEN_FAILED,
                f"Cannot listen for gRPC on {self.settings.grpc_listen}: the address is taken.",
            )
        await self.grpc_server.start()
        await self.runner.start()
        if self.webhooks is not None:
            self.webhooks.start()
        self._retention = asyncio.create_task(
            collect_periodically(self.settings, self.store, self.backend.queue, self.backend.media)
        )
        # Every API server fails the reviews that expired (a job waiting for review has no worker).
        self._reviews = asyncio.create_task(expire_reviews_periodically(self.settings, self.runner))
        # Job counts come from the API servers (every one reports the whole store; workers report none).
        self._metrics = asyncio.create_task(
            sample_periodically(
                self.settings.metrics_interval_seconds, self.backend.queue.depth, self.store.count_by_status
            )
        )
        await self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        return self.port

    async def stop(self, grace: float = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        self.runner.accepting = False
        for task in (self._retention, self._metrics, self._reviews):
            if task is not None:
                task.cancel()
        if self.webhooks is not None:
            await self.webhooks.stop()
        # Running jobs get the shutdown grace to finish while open calls drain; whatever is still running
        # after that is stopped and resumes from its checkpoint on the next start.
        draining = asyncio.gather(
            self.grpc_server.stop(grace), self.runner.stop(grace=self.settings.shutdown_grace_seconds)
        )
        # Shutdown is bounded: a step that cannot finish (a backend call that ignores cancellation) is
        # logged and abandoned rather than keeping the process alive forever.
        limit = max(grace, self.settings.shutdown_grace_seconds) + STOP_MARGIN_SECONDS
        await self._bounded(draining, "draining calls and jobs", limit)
        if self.webhooks is not None:
            self.webhooks.close()
        await self._bounded(self.backend.close(), "closing the store", limit)
        self.keys.close()

    @staticmethod
    async def _bounded(step: Awaitable[object], name: str, limit: float) -> None:
        try:
            await asyncio.wait_for(step, limit)
        except TimeoutError:
            log.warning("shutdown: %s took longer than %.0f s; continuing", name, limit)

    def _add_port(self) -> int:
        settings = self.settings
        if settings.tls_cert_file is None and settings.tls_key_file is None:
            return self.grpc_server.add_insecure_port(settings.grpc_listen)
        if settings.tls_cert_file is None or settings.tls_key_file is None:
            raise ValueError("TLS needs both a certificate and a key file")
        credentials = grpc.ssl_server_credentials(
            [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())]
        )
        return self.grpc_server.add_secure_port(settings.grpc_listen, credentials)

    @property
    def tls(self) -> bool:
        return self.settings.tls_cert_file is not None

    @property
    def target(self) -> str:
        host = self.settings.grpc_listen.rsplit(":", 1)[0].strip("[]")
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1"
        return f"{host}:{self.port}"
