"""Runs the bridge under uvicorn inside the caller's event loop, until the caller says stop.

Intentional divergence from ``uvicorn.Server.serve()``: it installs its own SIGINT/SIGTERM handlers, which
would steal the signals of ``reelcast serve`` (gRPC server and bridge in one process). Here the caller owns
the signals and sets ``stop``; uvicorn's handlers are switched off.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Generator
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from reelcast.bridge.app import create_app
from reelcast.bridge.http_protocol import guarded_protocol
from reelcast.bridge.state import BridgeState
from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.server.config import Settings

DEFAULT_HTTP_LISTEN = "127.0.0.1:8080"


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_ready: Callable[[int], None] | None) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._on_ready is not None:
            self._on_ready(self.bound_port)

    @property
    def bound_port(self) -> int:
        port: int = self.servers[0].sockets[0].getsockname()[1]
        return port


def bind_http_listener(http_listen: str) -> socket.socket:
    """The bridge's listening socket, bound before anything else starts, so that a taken port fails with a
    catalogue error (uvicorn would log it and raise SystemExit from inside the event loop)."""
    host, port = split_listen(http_listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise ReelcastError(
            errors.LISTEN_FAILED, f"Cannot listen for HTTP on {http_listen}: {error.strerror or error}."
        ) from None
    return listener


def split_listen(http_listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) → (host, port)."""
    host, _, port = http_listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--http-listen must be HOST:PORT, got {http_listen!r}")
    return host.strip("[]"), int(port)


async def serve_bridge(
    grpc_target: str,
    http_listen: str,
    *,
    stop: asyncio.Event,
    on_ready: Callable[[int], None] | None = None,
    heartbeat_seconds: float = 15.0,
    settings: Settings | None = None,
    listener: socket.socket | None = None,
) -> None:
    """Serves the bridge on ``http_listen`` (port 0 picks a free port, passed to ``on_ready``) in front of
    the ``JobService`` at ``grpc_target``, until ``stop`` is set. ``settings`` (default: from the
    environment) gives the security settings; with TLS configured, HTTP is served over TLS with the same
    certificate, and the gRPC channel trusts it."""
    settings = settings if settings is not None else Settings.from_env()
    tls = settings.tls_cert_file is not None and settings.tls_key_file is not None
    app = create_app(
        grpc_target,
        heartbeat_seconds=heartbeat_seconds,
        auth_required=settings.auth_required,
        max_sse_connections_per_user=settings.max_sse_connections_per_user,
        max_body_bytes=settings.max_body_bytes,
        session_ttl_seconds=settings.session_ttl_seconds,
        secure_cookies=tls,
        cors_origins=settings.cors_origins,
        allowed_hosts=settings.allowed_hosts,
        listen_host=split_listen(http_listen)[0],
        grpc_root_certificates=settings.tls_cert_file.read_bytes()
        if tls and settings.tls_cert_file
        else None,
    )
    await serve_app(
        app,
        http_listen,
        stop=stop,
        on_ready=on_ready,
        ssl_certfile=settings.tls_cert_file if tls else None,
        ssl_keyfile=settings.tls_key_file if tls else None,
        max_header_bytes=settings.max_header_bytes,
        request_timeout_seconds=settings.request_timeout_seconds,
        listener=listener,
    )


async def serve_app(
    app: Starlette,
    http_listen: str,
    *,
    stop: asyncio.Event,
    on_ready: Callable[[int], None] | None = None,
    ssl_certfile: Path | None = None,
    ssl_keyfile: Path | None = None,
    max_header_bytes: int = 32 * 1024,
    request_timeout_seconds: float = 15.0,
    listener: socket.socket | None = None,
) -> None:
    """Runs a bridge app made by :func:`create_app` until ``stop`` is set. Open SSE streams are ended
    first, so the shutdown does not wait for browsers; they reconnect with ``Last-Event-ID``. Request heads
    past ``max_header_bytes`` get 431, and requests not received whole within ``request_timeout_seconds``
    are closed (bridge/http_protocol.py)."""
    host, port = split_listen(http_listen)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        # httptools (a dependency) parses HTTP in C, here with a head cap and a request timeout; "auto" would
        # fall back to h11 silently. The event loop is the caller's: uvicorn's ``loop`` setting applies only
        # to loops it creates itself.
        http=guarded_protocol(max_header_bytes, request_timeout_seconds),
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
        ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
        ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
    )
    server = _Server(config, on_ready)

    async def stop_when_asked() -> None:
        await stop.wait()
        state: BridgeState | None = getattr(app.state, "bridge", None)
        if state is not None:
            await state.hub.close()
        server.should_exit = True

    watcher = asyncio.create_task(stop_when_asked())
    try:
        await server.serve(sockets=[listener if listener is not None else bind_http_listener(http_listen)])
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
