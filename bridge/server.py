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

import uvicorn
from starlette.applications import Starlette

from reelcast.bridge.app import create_app
from reelcast.bridge.http_protocol import guarded_protocol
from reelcast.bridge.settings import BridgeSettings, split_listen
from reelcast.bridge.state import BridgeState
from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError


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


def bind_http_listener(http_listen: str, *, reuse_port: bool = False) -> socket.socket:
    """The bridge's listening socket, bound before anything else starts, so that a taken port fails with a
    catalogue error (uvicorn would log it and raise SystemExit from inside the event loop). ``reuse_port``:
    shared with the other processes of one bridge (bridge/processes.py)."""
    host, port = split_listen(http_listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise ReelcastError(
            errors.LISTEN_FAILED, f"Cannot listen for HTTP on {http_listen}: {error.strerror or error}."
        ) from None
    return listener


async def serve_bridge(
    settings: BridgeSettings,
    *,
    stop: asyncio.Event,
    on_ready: Callable[[int], None] | None = None,
    listener: socket.socket | None = None,
) -> None:
    """Serves the bridge on ``settings.http_listen`` (port 0 picks a free port, passed to ``on_ready``) in
    front of the ``JobService`` at ``settings.grpc_target``, until ``stop`` is set. With TLS configured, HTTP
    is served over TLS with the same certificate, and the gRPC channel trusts it. ``listener`` is the socket
    :func:`bind_http_listener` bound already, if any."""
    await serve_app(
        create_app(settings), settings.http_listen, stop=stop, on_ready=on_ready, listener=listener
    )


async def serve_app(
    app: Starlette,
    http_listen: str,
    *,
    stop: asyncio.Event,
    on_ready: Callable[[int], None] | None = None,
    listener: socket.socket | None = None,
) -> None:
    """Runs a bridge app made by :func:`create_app` on ``http_listen`` until ``stop`` is set, with the HTTP
    settings the app was made with (TLS, the head cap, the request timeout). Open SSE streams are ended
    first, so the shutdown does not wait for browsers; they reconnect with ``Last-Event-ID``. Request heads
    past ``max_header_bytes`` get 431, and requests not received whole within ``request_timeout_seconds``
    are closed (bridge/http_protocol.py)."""
    settings: BridgeSettings = app.state.settings
    host, port = split_listen(http_listen)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        # httptools (a dependency) parses HTTP in C, here with a head cap and a request timeout; "auto" would
        # fall back to h11 silently. The event loop is the caller's: uvicorn's ``loop`` setting applies only
        # to loops it creates itself.
        http=guarded_protocol(settings.max_header_bytes, settings.request_timeout_seconds),
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
        ssl_certfile=str(settings.tls_cert_file) if settings.tls else None,
        ssl_keyfile=str(settings.tls_key_file) if settings.tls else None,
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
