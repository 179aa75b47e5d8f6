"""reelcast.client: the Python client library for the JobService, async (:class:`AsyncClient`) and sync
(:class:`Client`), with the same methods: they are written once, in AsyncClient, and Client runs them on an
event loop thread of its own (reelcast.client.sync says why). See docs/client.md.

    async with AsyncClient("127.0.0.1:50051", api_key="rck_...") as client:
        job = await client.create_job(topic="Why otters hold hands")
        async for event in client.watch_job(job.id):
            print(event.sequence, event.message)
"""

from reelcast.client.aio import AsyncClient
from reelcast.client.errors import (
    AbortedError,
    CallCancelledError,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    ReelcastError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    from_rpc_error,
)
from reelcast.client.retry import NO_RETRY, RetryPolicy
from reelcast.client.spec import SpecFields, job_spec
from reelcast.client.sync import Client
from reelcast.jobs.terminal import is_terminal
from reelcast.jobs.violations import FieldViolation

__all__ = [
    "NO_RETRY",
    "AbortedError",
    "AsyncClient",
    "CallCancelledError",
    "Client",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "FieldViolation",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "OutOfRangeError",
    "PermissionDeniedError",
    "ReelcastError",
    "ResourceExhaustedError",
    "RetryPolicy",
    "SpecFields",
    "UnauthenticatedError",
    "UnavailableError",
    "from_rpc_error",
    "is_terminal",
    "job_spec",
]
