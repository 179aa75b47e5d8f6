"""What every endpoint of one bridge app shares: its settings, the gRPC channel's stubs and the upstream hub.
The channel is opened in the app's lifespan; the bridge reads no store and no disk of its own."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from grpc import aio
from grpc_health.v1 import health_pb2
from starlette.requests import Request

from reelcast.bridge.auth import credential_var
from reelcast.bridge.limits import StreamSlots
from reelcast.bridge.problems import ApiError
from reelcast.bridge.upstream import UpstreamHub
from reelcast.jobs import errors
from reelcast.jobs.metadata import (
    ANONYMOUS,
    AUTHORIZATION_HEADER,
    CORRELATION_ID_HEADER,
    USER_HEADER,
    current_correlation_id,
)

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub

# Ids are never longer or stranger than this; anything else cannot name a job, so it is a 404 without a
# round trip (a 404, not a 400, like every unknown job: ids cannot be probed).
_JOB_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


@dataclass(frozen=True)
class BridgeSettings:
    grpc_target: str
    heartbeat_seconds: float = 15.0
    # The ``retry:`` hint: how long a browser waits before reconnecting, in milliseconds.
    retry_ms: int = 3000
    # How long a job's shared upstream outlives its last subscriber (or its terminal event).
    linger_seconds: float = 30.0
    # Jobs one /api/events connection may carry.
    max_stream_jobs: int = 100
    max_body_bytes: int = 64 * 1024
    # A write to an SSE client that takes longer than this drops the client (it resumes with Last-Event-ID),
    # so a client that stopped reading cannot hold server memory.
    send_timeout_seconds: float = 30.0
    # The upstream channel (bridge/channel.py): the deadline of every unary JobService call, and the interval
    # of its keepalive pings.
    upstream_deadline_seconds: float = 15.0
    upstream_keepalive_seconds: float = 20.0
    # Security (docs/security.md): whether a request without any credential is refused at once, open SSE
    # connections per user, session lifetime, whether cookies are marked Secure (TLS), CORS allow-list.
    auth_required: bool = True
    max_sse_connections_per_user: int = 8
    session_ttl_seconds: float = 12 * 3600.0
    secure_cookies: bool = False
    cors_origins: tuple[str, ...] = ()


@dataclass
class BridgeState:
    settings: BridgeSettings
    channel: aio.Channel
    jobs: JobServiceAsyncStub
    health_check: aio.UnaryUnaryMultiCallable[health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse]
    hub: UpstreamHub
    slots: StreamSlots


def bridge_state(request: Request) -> BridgeState:
    state: BridgeState = request.app.state.bridge
    return state


def grpc_metadata() -> tuple[tuple[str, str], ...]:
    """The request's correlation id as gRPC metadata, so it reaches the job and its events, and the caller's
    own credential, so the server answers as it would answer the caller."""
    credential = credential_var.get()
    correlation = (CORRELATION_ID_HEADER, current_correlation_id())
    return (correlation, (AUTHORIZATION_HEADER, credential)) if credential else (correlation,)


async def caller_of(call: object) -> str:
    """The user name the server reported in a finished call's initial metadata (``anonymous`` without
    authentication)."""
    initial_metadata = getattr(call, "initial_metadata", None)
    if initial_metadata is None:
        return ANONYMOUS
    for key, value in await initial_metadata() or ():
        if key == USER_HEADER:
            return value if isinstance(value, str) else value.decode()
    return ANONYMOUS


def checked_job_id(request: Request) -> str:
    job_id = str(request.path_params.get("job_id", ""))
    if not _JOB_ID.match(job_id):
        raise ApiError(errors.JOB_NOT_FOUND, "No job with this id.")
    return job_id


def is_job_id(text: str) -> bool:
    return bool(_JOB_ID.match(text))
