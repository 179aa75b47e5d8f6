"""Typed errors of the client: every failed call raises a :class:`ReelcastError` (a subclass per gRPC status).

The server puts a ``google.rpc.Status`` in the ``grpc-status-details-bin`` trailer of every error it raises
itself, read back by the kernel's status codec (reelcast.jobs.status): a ``google.rpc.ErrorInfo`` whose
``reason`` is the catalogue code (docs/errors.md) and whose metadata holds ``remediation`` and
``correlationId``, a ``google.rpc.BadRequest`` with field violations for invalid input, and a
``google.rpc.RetryInfo`` when the call was rate limited. Errors that never reached the service (connection
refused, a proxy cutting the stream) have no details: their ``code`` is empty and the correlation id is the
one the client sent.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from reelcast.jobs.status import decode_rpc_error
from reelcast.jobs.violations import FieldViolation


class ReelcastError(Exception):
    """A failed call to the job service.

    ``status`` is the gRPC status code; ``code`` the catalogue code (``E003-JOB_NOT_FOUND``), empty when the
    error did not come from the service itself (for example the server cannot be reached); ``message`` the
    server's sanitized message; ``remediation`` what to do about it; ``correlation_id`` the id that traces
    the call in the server's logs; ``field_violations`` the invalid fields of an INVALID_ARGUMENT;
    ``retry_after`` the delay in seconds a rate-limited caller should wait, when the server gave one.
    """

    def __init__(
        self,
        status: grpc.StatusCode,
        message: str,
        *,
        code: str = "",
        remediation: str = "",
        correlation_id: str = "",
        field_violations: Sequence[FieldViolation] = (),
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{code or status.name}: {message}" if message else code or status.name)
        self.status = status
        self.code = code
        self.message = message
        self.remediation = remediation
        self.correlation_id = correlation_id
        self.field_violations = tuple(field_violations)
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status.name}, code={self.code!r}, message={self.message!r}, "
            f"correlation_id={self.correlation_id!r})"
        )


class InvalidArgumentError(ReelcastError):
    """INVALID_ARGUMENT: the request is malformed; see ``field_violations``."""


class NotFoundError(ReelcastError):
    """NOT_FOUND: no such job or artifact, or a job of another user (ids cannot be probed)."""


class FailedPreconditionError(ReelcastError):
    """FAILED_PRECONDITION: for example cancelling a job that already finished (E004)."""


class AbortedError(ReelcastError):
    """ABORTED: a concurrent change won, for example an edit of a script edited meanwhile (E016); read the
    current state and try again."""


class UnauthenticatedError(ReelcastError):
    """UNAUTHENTICATED: no API key, or an unknown or revoked one (E020)."""


class PermissionDeniedError(ReelcastError):
    """PERMISSION_DENIED."""


class ResourceExhaustedError(ReelcastError):
    """RESOURCE_EXHAUSTED: a rate or concurrency limit (E021-E023) or a quota (E047, E061, E062);
    ``retry_after`` says how long to wait, when waiting helps."""


class OutOfRangeError(ReelcastError):
    """OUT_OF_RANGE: an artifact read past the end of the file (E006)."""


class UnavailableError(ReelcastError):
    """UNAVAILABLE: the server cannot be reached or is shutting down; retrying later may succeed."""


class DeadlineExceededError(ReelcastError):
    """DEADLINE_EXCEEDED: the call's timeout passed before the server answered."""


class CallCancelledError(ReelcastError):
    """CANCELLED: the call was cancelled (by the server shutting down, or by the client)."""


class InternalError(ReelcastError):
    """INTERNAL or UNKNOWN: a server bug (E500) or a broken transport; ``correlation_id`` finds it in the
    server's logs."""


_BY_STATUS: dict[grpc.StatusCode, type[ReelcastError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.ABORTED: AbortedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRangeError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.CANCELLED: CallCancelledError,
    grpc.StatusCode.INTERNAL: InternalError,
    grpc.StatusCode.UNKNOWN: InternalError,
}


def error_class(status: grpc.StatusCode) -> type[ReelcastError]:
    """The :class:`ReelcastError` subclass raised for ``status`` (the base class for the rest)."""
    return _BY_STATUS.get(status, ReelcastError)


def from_rpc_error(error: grpc.RpcError, correlation_id: str = "") -> ReelcastError:
    """The typed error of a failed call (grpc or grpc.aio); ``correlation_id`` is the one the call sent, used
    when the server's answer carries none (it never reached the service)."""
    details = decode_rpc_error(error)
    return error_class(details.status)(
        details.status,
        details.message,
        code=details.code,
        remediation=details.remediation,
        correlation_id=details.correlation_id or correlation_id,
        field_violations=details.field_violations,
        retry_after=details.retry_after,
    )
