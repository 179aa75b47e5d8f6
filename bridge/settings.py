"""The bridge's own settings: what one bridge process needs, each default written once, beside the
``REELCAST_*`` variable that sets it (docs/configuration.md).

The bridge is a gRPC client of ``JobService`` like any other, so it has no use for the server's settings: a
bridge on another machine reads these and nothing else. :meth:`BridgeSettings.from_env` is the one reader of
the environment; ``reelcast serve`` and ``reelcast bridge`` (server/cli.py) call it and apply their flags.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reelcast.bridge.channel import DEADLINE_SECONDS, KEEPALIVE_SECONDS

_OFF = frozenset({"0", "off", "false", "no"})


def _auth_mode(text: str) -> bool:
    """``required`` or ``off``; anything else is refused rather than guessed, so that a typo can never switch
    authentication off."""
    if text.lower() not in ("required", "off"):
        raise ValueError("must be 'required' or 'off'")
    return text.lower() == "required"


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("must be a whole number") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError("must be a number") from None


def _switch(text: str) -> bool:
    return text.lower() not in _OFF


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _from(variable: str, parse: Callable[[str], Any]) -> dict[str, Any]:
    """Field metadata: the variable that sets the field, and how its text becomes the value."""
    return {"variable": variable, "parse": parse}


@dataclass(frozen=True)
class BridgeSettings:
    """Construct with :meth:`from_env`, then :func:`dataclasses.replace` what command-line flags say."""

    # The JobService the bridge fronts (``--grpc-target``), and the HTTP address it serves (``--http-listen``;
    # port 0 picks a free one). The listen host is also a Host name the bridge answers (bridge/hosts.py).
    grpc_target: str = "127.0.0.1:50051"
    http_listen: str = "127.0.0.1:8080"

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
    send_timeout_seconds: float = field(default=30.0, metadata=_from("REELCAST_SSE_SEND_TIMEOUT", _number))
    # The upstream channel (bridge/channel.py): the deadline of every unary JobService call, and the interval
    # of its keepalive pings.
    upstream_deadline_seconds: float = field(
        default=DEADLINE_SECONDS, metadata=_from("REELCAST_UPSTREAM_DEADLINE", _number)
    )
    upstream_keepalive_seconds: float = KEEPALIVE_SECONDS

    # -- security (docs/security.md) ---------------------------------------------------------------------
    # Whether a request without any credential is refused at once; the credentials themselves are always
    # checked by the gRPC server.
    auth_required: bool = field(default=True, metadata=_from("REELCAST_AUTH", _auth_mode))
    # Open SSE connections per user, both SSE endpoints together.
    max_sse_connections_per_user: int = field(
        default=8, metadata=_from("REELCAST_MAX_SSE_PER_USER", _integer)
    )
    max_body_bytes: int = field(default=64 * 1024, metadata=_from("REELCAST_MAX_BODY_BYTES", _integer))
    # The session cookie's lifetime; the server ends the session itself after its own REELCAST_SESSION_TTL.
    session_ttl_seconds: float = field(default=12 * 3600.0, metadata=_from("REELCAST_SESSION_TTL", _number))
    # Origins allowed to call the bridge cross-site (CORS); empty means CORS is off.
    cors_origins: tuple[str, ...] = field(default=(), metadata=_from("REELCAST_CORS_ORIGINS", _names))
    # Host names answered besides localhost names, loopback addresses and the listen host (DNS-rebinding
    # guard, bridge/hosts.py); "*" answers every name.
    allowed_hosts: tuple[str, ...] = field(default=(), metadata=_from("REELCAST_ALLOWED_HOSTS", _names))
    # A request head (request line and headers) past this many bytes gets 431; a request that has not
    # arrived whole (head and body) this long after it began is closed (bridge/http_protocol.py).
    max_header_bytes: int = field(default=32 * 1024, metadata=_from("REELCAST_MAX_HEADER_BYTES", _integer))
    request_timeout_seconds: float = field(default=15.0, metadata=_from("REELCAST_REQUEST_TIMEOUT", _number))
    # TLS: a certificate and key (PEM) to serve HTTPS with (cookies are then Secure); the gRPC channel then
    # trusts that certificate too, as `reelcast serve` uses one for both.
    tls_cert_file: Path | None = field(default=None, metadata=_from("REELCAST_TLS_CERT", Path))
    tls_key_file: Path | None = field(default=None, metadata=_from("REELCAST_TLS_KEY", Path))

    # -- observability (docs/observability.md) -----------------------------------------------------------
    # Whether ``/metrics`` is served (bridge/metrics.py).
    metrics_route: bool = field(default=True, metadata=_from("REELCAST_BRIDGE_METRICS", _switch))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> BridgeSettings:
        """The defaults, with each field that has a variable set (and not empty) taken from it. A value that
        cannot be used raises ValueError naming the variable."""
        values: dict[str, Any] = {}
        for each in dataclasses.fields(cls):
            variable = each.metadata.get("variable")
            text = environ.get(variable, "").strip() if variable else ""
            if not text:
                continue
            try:
                values[each.name] = each.metadata["parse"](text)
            except ValueError as invalid:
                raise ValueError(f"{variable} {invalid}, got {text!r}") from None
        return cls(**values)

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
        return {f.name: f.metadata["variable"] for f in dataclasses.fields(cls) if "variable" in f.metadata}


def split_listen(http_listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) → (host, port)."""
    host, _, port = http_listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--http-listen must be HOST:PORT, got {http_listen!r}")
    return host.strip("[]"), int(port)
