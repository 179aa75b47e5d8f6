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
from reelcast.bridge.settings import BridgeSettings
from reelcast.bridge.upstream import UpstreamHub
from reelcast.jobs import errors
from reelcast.jobs.metadata import (
    ANONYMOUS,
    AUTHORIZATION_HEADER,
    CORRELATION_ID_HEADER,
    USER_HEADER,
    current_correlation_id,
)
from reelcast.jobs.tracing import TRACEPARENT_HEADER, current_traceparent

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub

# Ids are never longer or stranger than this; anything else cannot name a job, so it is a 404 without a
# round trip (a 404, not a 400, like every unknown job: ids cannot be probed).
_JOB_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


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
    """The request's correlation id as gRPC metadata, so it reaches the job and its events, the caller's
    own credential, so the server answers as it would answer the caller, and the request span's
    ``traceparent``, so the server's spans are its children."""
    credential = credential_var.get()
    metadata: tuple[tuple[str, str], ...] = ((CORRELATION_ID_HEADER, current_correlation_id()),)
    if credential:
        metadata += ((AUTHORIZATION_HEADER, credential),)
    traceparent = current_traceparent()
    if traceparent:
        metadata += ((TRACEPARENT_HEADER, traceparent),)
    return metadata


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
