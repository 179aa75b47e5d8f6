"""The bridge's own settings: what one bridge process needs, each default written once, beside the
``REELCAST_*`` variable that sets it (docs/configuration.md).

The bridge is a gRPC client of ``JobService`` like any other, so it has no use for the server's settings: a
bridge on another machine reads these and nothing else. :meth:`BridgeSettings.from_env` is the one reader of
the environment; ``reelcast serve`` and ``reelcast bridge`` (cli/settings.py) call it and apply their flags.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reelcast.bridge.channel import DEADLINE_SECONDS, KEEPALIVE_SECONDS
from reelcast.jobs.settings_fields import (
    auth_mode,
    from_environment,
    integer,
    names,
    number,
    path,
    setting,
    switch,
)
from reelcast.jobs.settings_fields import variables as setting_variables


@dataclass(frozen=True)
class BridgeSettings:
    """Construct with :meth:`from_env`, then :func:`dataclasses.replace` what command-line flags say."""

    # The JobService the bridge fronts (``--grpc-target``), and the HTTP address it serves (``--http-listen``;
    # port 0 picks a free one). The listen host is also a Host name the bridge answers (bridge/hosts.py).
    grpc_target: str = "127.0.0.1:50051"
    http_listen: str = "127.0.0.1:8080"
    # Bridge processes on that address (``reelcast bridge --processes``; bridge/processes.py): each one a
    # whole bridge on its own core, sharing the port through SO_REUSEPORT. 1 serves in the command's process.
    processes: int = setting("REELCAST_BRIDGE_PROCESSES", integer, default=1)

    # -- SSE (docs/api.md) -------------------------------------------------------------------------------
    heartbeat_seconds: float = 15.0
    # The ``retry:`` hint: how long a browser waits before reconnecting, in milliseconds.
    retry_ms: int = 3000
    # How long a job's shared upstream outlives its last subscriber (or its terminal event).
    linger_seconds: float = 30.0
    # Jobs one /api/events connection may carry.
    max_stream_jobs: int = 100
    # A write to an SSE client that takes longer than this drops the client (it resumes with Last-Event-ID),
    # so a client that stopped reading cannot hold server memory.
    send_timeout_seconds: float = setting("REELCAST_SSE_SEND_TIMEOUT", number, default=30.0)
    # The upstream channel (bridge/channel.py): the deadline of every unary JobService call, and the interval
    # of its keepalive pings.
    upstream_deadline_seconds: float = setting("REELCAST_UPSTREAM_DEADLINE", number, default=DEADLINE_SECONDS)
    upstream_keepalive_seconds: float = KEEPALIVE_SECONDS

    # -- security (docs/security.md) ---------------------------------------------------------------------
    # Whether a request without any credential is refused at once; the credentials themselves are always
    # checked by the gRPC server.
    auth_required: bool = setting("REELCAST_AUTH", auth_mode, default=True)
    # Open SSE connections per user, both SSE endpoints together.
    max_sse_connections_per_user: int = setting("REELCAST_MAX_SSE_PER_USER", integer, default=8)
    max_body_bytes: int = setting("REELCAST_MAX_BODY_BYTES", integer, default=64 * 1024)
    # One uploaded file (POST /api/media), checked while it streams; the server's own cap has the same
    # variable, so one setting serves both.
    max_upload_bytes: int = setting("REELCAST_MEDIA_MAX_BYTES", integer, default=50 * 1024 * 1024)
    # The session cookie's lifetime; the server ends the session itself after its own REELCAST_SESSION_TTL.
    session_ttl_seconds: float = setting("REELCAST_SESSION_TTL", number, default=12 * 3600.0)
    # Origins allowed to call the bridge cross-site (CORS); empty means CORS is off.
    cors_origins: tuple[str, ...] = setting("REELCAST_CORS_ORIGINS", names, default=())
    # Host names answered besides localhost names, loopback addresses and the listen host (DNS-rebinding
    # guard, bridge/hosts.py); "*" answers every name.
    allowed_hosts: tuple[str, ...] = setting("REELCAST_ALLOWED_HOSTS", names, default=())
    # A request head (request line and headers) past this many bytes gets 431; a request that has not
    # arrived whole (head and body) this long after it began is closed (bridge/http_protocol.py).
    max_header_bytes: int = setting("REELCAST_MAX_HEADER_BYTES", integer, default=32 * 1024)
    request_timeout_seconds: float = setting("REELCAST_REQUEST_TIMEOUT", number, default=15.0)
    # TLS: a certificate and key (PEM) to serve HTTPS with (cookies are then Secure); the gRPC channel then
    # trusts that certificate too, as `reelcast serve` uses one for both.
    tls_cert_file: Path | None = setting("REELCAST_TLS_CERT", path, default=None)
    tls_key_file: Path | None = setting("REELCAST_TLS_KEY", path, default=None)

    # -- observability (docs/observability.md) -----------------------------------------------------------
    # Whether ``/metrics`` is served (bridge/metrics.py).
    metrics_route: bool = setting("REELCAST_BRIDGE_METRICS", switch, default=True)

    def __post_init__(self) -> None:
        if self.processes < 1:
            raise ValueError(
                f"REELCAST_BRIDGE_PROCESSES (--processes) must be 1 or more, got {self.processes}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> BridgeSettings:
        """The defaults, with each field that has a variable set (and not empty) taken from it. A value that
        cannot be used raises ValueError naming the variable."""
        return cls(**from_environment(cls, environ))

    @property
    def tls(self) -> bool:
        """Whether HTTP is served over TLS (certificate and key both given)."""
        return self.tls_cert_file is not None and self.tls_key_file is not None

    def grpc_root_certificates(self) -> bytes | None:
        """The PEM roots the gRPC channel trusts: the certificate, with TLS; None is plaintext."""
        return self.tls_cert_file.read_bytes() if self.tls and self.tls_cert_file is not None else None

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Field name → the variable that sets it, for every field that has one."""
        return setting_variables(cls)


def split_listen(http_listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) → (host, port)."""
    host, _, port = http_listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--http-listen must be HOST:PORT, got {http_listen!r}")
    return host.strip("[]"), int(port)
