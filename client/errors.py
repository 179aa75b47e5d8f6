"""Typed errors of the client: every failed call raises a :class:`ReelcastError` (a subclass per gRPC status).

The server puts a ``google.rpc.Status`` in the ``grpc-status-details-bin`` trailer of every error it raises
itself (server/status.py): a ``google.rpc.ErrorInfo`` whose ``reason`` is the catalogue code (docs/errors.md)
and whose metadata holds ``remediation`` and ``correlationId``, a ``google.rpc.BadRequest`` with field
violations for invalid input, and a ``google.rpc.RetryInfo`` when the call was rate limited. Errors that never
reached the service (connection refused, a proxy cutting the stream) have no details: their ``code`` is empty
and the correlation id is the one the client sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

ERROR_DOMAIN = "reelcast.dev"
_STATUS_DETAILS_KEY = "grpc-status-details-bin"
_CORRELATION_ID_KEY = "x-correlation-id"


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field of a request, as ``google.rpc.BadRequest`` names it (``spec.brief.topic``)."""

    field: str
    description: str


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


class UnauthenticatedError(ReelcastError):
    """UNAUTHENTICATED: no API key, or an unknown or revoked one (E020)."""


class PermissionDeniedError(ReelcastError):
    """PERMISSION_DENIED."""


class ResourceExhaustedError(ReelcastError):
    """RESOURCE_EXHAUSTED: a rate or concurrency limit (E021-E023); ``retry_after`` says how long to wait."""


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


def _metadata_value(metadata: Any, key: str) -> str | bytes | None:
    for item in metadata or ():
        if item[0] == key:
            value: str | bytes = item[1]
            return value
    return None


def _call_metadata(error: grpc.RpcError, name: str) -> Any:
    getter = getattr(error, name, None)
    if getter is None:
        return ()
    try:
        return getter()
    except Exception:  # a call object that failed before any metadata arrived
        return ()


def from_rpc_error(error: grpc.RpcError, correlation_id: str = "") -> ReelcastError:
    """The typed error of a failed call (grpc or grpc.aio); ``correlation_id`` is the one the call sent, used
    when the server's answer carries none (it never reached the service)."""
    status_getter = getattr(error, "code", None)
    status = status_getter() if callable(status_getter) else grpc.StatusCode.UNKNOWN
    if not isinstance(status, grpc.StatusCode):
        status = grpc.StatusCode.UNKNOWN
    details_getter = getattr(error, "details", None)
    message = (details_getter() if callable(details_getter) else str(error)) or ""
    code = remediation = ""
    violations: list[FieldViolation] = []
    retry_after: float | None = None
    echoed = _metadata_value(_call_metadata(error, "initial_metadata"), _CORRELATION_ID_KEY)
    if echoed:
        correlation_id = echoed if isinstance(echoed, str) else echoed.decode("utf-8", "replace")
    packed = _metadata_value(_call_metadata(error, "trailing_metadata"), _STATUS_DETAILS_KEY)
    if isinstance(packed, bytes):
        rich = status_pb2.Status.FromString(packed)
        for detail in rich.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                code = info.reason
                remediation = info.metadata.get("remediation", "")
                correlation_id = info.metadata.get("correlationId", "") or correlation_id
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad_request = error_details_pb2.BadRequest()
                detail.Unpack(bad_request)
                violations.extend(
                    FieldViolation(v.field, v.description) for v in bad_request.field_violations
                )
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                retry_after = retry.retry_delay.ToMilliseconds() / 1000
    # The server prefixes its messages with the code ("E003-JOB_NOT_FOUND: No such job."); keep the text.
    if code and message.startswith(f"{code}: "):
        message = message[len(code) + 2 :]
    return error_class(status)(
        status,
        message,
        code=code,
        remediation=remediation,
        correlation_id=correlation_id,
        field_violations=violations,
        retry_after=retry_after,
    )
