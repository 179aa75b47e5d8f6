"""What both clients need to open a channel and make a call: target, credentials, metadata, timeouts, and the
constructor they share (:class:`ClientBase`).

Authentication and correlation ids travel as per-call metadata, as the server reads them
(server/rpc/interceptors.py): ``authorization: Bearer <key>`` and ``x-correlation-id``. Per-call metadata
rather than ``grpc.metadata_call_credentials`` because call credentials need a secure channel, and a key is
also used over plain loopback connections.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata as distribution
from pathlib import Path
from typing import Any, Self

import grpc

from reelcast.client.retry import RetryPolicy
from reelcast.jobs.metadata import (
    AUTHORIZATION_HEADER,
    CORRELATION_ID_HEADER,
    CORRELATION_ID_PATTERN,
    is_well_formed_correlation_id,
    new_correlation_id,
)
from reelcast.jobs.tracing import TRACEPARENT_HEADER, current_traceparent

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_TIMEOUT = 30.0
TARGET_ENV = "REELCAST_TARGET"
API_KEY_ENV = "REELCAST_API_KEY"

Metadata = tuple[tuple[str, str], ...]


def _version() -> str:
    try:
        return distribution.version("reelcast")
    except distribution.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0"


def checked_correlation_id(correlation_id: str) -> str:
    """``correlation_id`` if the server will keep it (the kernel's rule, reelcast.jobs.metadata); ValueError
    otherwise, rather than letting the server silently trace the call under another id."""
    if not is_well_formed_correlation_id(correlation_id):
        raise ValueError(f"correlation id {correlation_id!r} must match {CORRELATION_ID_PATTERN.pattern}")
    return correlation_id


def _read_pem(value: bytes | str | Path) -> bytes:
    if isinstance(value, bytes):
        return value
    return Path(value).read_bytes()


@dataclass(frozen=True)
class Connection:
    """The resolved options of a client. Built by :meth:`resolve` from the constructor's arguments."""

    target: str
    api_key: str
    root_certificates: bytes | None
    tls: bool
    timeout: float | None
    retry: RetryPolicy
    correlation_id: str | None
    channel_options: tuple[tuple[str, Any], ...] = field(default=())

    @classmethod
    def resolve(
        cls,
        target: str | None,
        api_key: str | None,
        root_certificates: bytes | str | Path | None,
        tls: bool | None,
        timeout: float | None,
        retry: RetryPolicy | None,
        correlation_id: str | None,
        channel_options: Sequence[tuple[str, Any]],
    ) -> Connection:
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive (or None for no deadline)")
        roots = _read_pem(root_certificates) if root_certificates is not None else None
        return cls(
            target=target or os.environ.get(TARGET_ENV) or DEFAULT_TARGET,
            api_key=os.environ.get(API_KEY_ENV, "") if api_key is None else api_key,
            root_certificates=roots,
            tls=roots is not None if tls is None else tls,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            correlation_id=checked_correlation_id(correlation_id) if correlation_id else None,
            channel_options=tuple(channel_options),
        )

    def credentials(self) -> grpc.ChannelCredentials | None:
        """TLS credentials (trusting ``root_certificates``, else the system's roots); None for plain TCP."""
        if not self.tls:
            return None
        return grpc.ssl_channel_credentials(root_certificates=self.root_certificates)

    def options(self) -> list[tuple[str, Any]]:
        """Channel options: the unary retry policy, a reconnect backoff no slower than the watch's own, and a
        user agent; the caller's ``channel_options`` win."""
        options: dict[str, Any] = {
            "grpc.service_config": self.retry.service_config(),
            "grpc.enable_retries": 1,
            "grpc.initial_reconnect_backoff_ms": int(self.retry.initial_backoff * 1000),
            "grpc.max_reconnect_backoff_ms": int(self.retry.max_backoff * 1000),
            "grpc.primary_user_agent": f"reelcast-client/{_version()}",
        }
        options.update(dict(self.channel_options))
        return list(options.items())

    def call_correlation_id(self, correlation_id: str | None) -> str:
        """The id a call sends: the call's own, else the client's, else a fresh one."""
        if correlation_id:
            return checked_correlation_id(correlation_id)
        return self.correlation_id or new_correlation_id()

    def metadata(self, correlation_id: str) -> Metadata:
        """The call's metadata: its correlation id, the key, and the current span's ``traceparent`` (a call
        made inside a span, the bridge's request span say, is that span's child on the server)."""
        sent: tuple[tuple[str, str], ...] = ((CORRELATION_ID_HEADER, correlation_id),)
        if self.api_key:
            sent += ((AUTHORIZATION_HEADER, f"Bearer {self.api_key}"),)
        traceparent = current_traceparent()
        if traceparent:
            sent += ((TRACEPARENT_HEADER, traceparent),)
        return sent

    def call_timeout(self, timeout: float | None) -> float | None:
        return self.timeout if timeout is None else timeout


class ClientBase:
    """The constructor both clients share.

    ``target`` is ``HOST:PORT`` (default: ``REELCAST_TARGET``, else ``127.0.0.1:50051``); ``api_key`` is sent
    as ``authorization: Bearer`` on every call (default: ``REELCAST_API_KEY``). TLS is on when
    ``root_certificates`` (PEM bytes or a file) is given or ``tls=True`` (then the system's roots are
    trusted). ``timeout`` is the deadline of each unary call in seconds (None: none); ``watch_job`` streams
    have none. ``retry`` governs the retries of unary calls and the reconnections of ``watch_job``.
    ``correlation_id`` is sent with every call that does not pass its own (default: a fresh one per call).

    A subclass keeps the rest of its state in class-level defaults, so that :meth:`from_connection` needs
    no second constructor.
    """

    _closed = False

    def __init__(
        self,
        target: str | None = None,
        *,
        api_key: str | None = None,
        root_certificates: bytes | str | Path | None = None,
        tls: bool | None = None,
        timeout: float | None = 30.0,
        retry: RetryPolicy | None = None,
        correlation_id: str | None = None,
        channel_options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self.connection = Connection.resolve(
            target, api_key, root_certificates, tls, timeout, retry, correlation_id, channel_options
        )

    @classmethod
    def from_connection(cls, connection: Connection) -> Self:
        """A client with options resolved already (another client's)."""
        client = cls.__new__(cls)
        client.connection = connection
        return client

    @property
    def target(self) -> str:
        return self.connection.target
