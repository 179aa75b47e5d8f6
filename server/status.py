"""Turns catalogue errors into gRPC statuses with ``google.rpc`` details, and back on the client side."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc import aio
from grpc_status import rpc_status

from reelcast.jobs.errors import ErrorCode, ReelcastError
from reelcast.server.callcontext import current_correlation_id
from reelcast.server.validation import FieldViolation

ERROR_DOMAIN = "reelcast.dev"


def build_status(
    error: ErrorCode,
    message: str,
    violations: Sequence[FieldViolation] = (),
    retry_after_seconds: float | None = None,
) -> status_pb2.Status:
    """A ``google.rpc.Status`` whose details carry the catalogue code (ErrorInfo), the remediation
    (Help-like LocalizedMessage is not needed: the code is the key) and any field violations."""
    details: list[any_pb2.Any] = []
    info = error_details_pb2.ErrorInfo(
        reason=error.code,
        domain=ERROR_DOMAIN,
        metadata={"remediation": error.remediation, "correlationId": current_correlation_id()},
    )
    packed = any_pb2.Any()
    packed.Pack(info)
    details.append(packed)
    if violations:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in violations
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad_request)
        details.append(packed)
    if retry_after_seconds is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromMilliseconds(max(0, int(retry_after_seconds * 1000)))
        packed = any_pb2.Any()
        packed.Pack(retry)
        details.append(packed)
    code_value = getattr(code_pb2, error.grpc_status.name, code_pb2.UNKNOWN)
    return status_pb2.Status(code=code_value, message=f"{error.code}: {message}", details=details)


async def abort(
    context: aio.ServicerContext[Any, Any],
    error: ReelcastError,
    violations: Sequence[FieldViolation] = (),
    retry_after_seconds: float | None = None,
) -> NoReturn:
    status = build_status(error.error, error.message, violations, retry_after_seconds)
    await context.abort_with_status(rpc_status.to_status(status))
    raise AssertionError("abort_with_status returned")  # pragma: no cover


def error_details(call_error: grpc.RpcError) -> tuple[str, str, list[tuple[str, str]]]:
    """Client side: (code, remediation, field violations) from a failed call, as far as present."""
    code = remediation = ""
    violations: list[tuple[str, str]] = []
    status = rpc_status.from_call(call_error)  # type: ignore[arg-type]
    if status is None:
        return code, remediation, violations
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            code = info.reason
            remediation = info.metadata.get("remediation", "")
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations.extend((v.field, v.description) for v in bad_request.field_violations)
    return code, remediation, violations


def retry_after_seconds(call_error: grpc.RpcError) -> float | None:
    """Client side: the ``google.rpc.RetryInfo`` delay of a failed call, if it carries one."""
    status = rpc_status.from_call(call_error)  # type: ignore[arg-type]
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            milliseconds: int = retry.retry_delay.ToMilliseconds()
            return milliseconds / 1000
    return None
