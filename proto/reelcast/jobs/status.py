"""The status codec: a catalogue error as a ``google.rpc.Status``, and a failed call's status read back.

The server puts the status in the ``grpc-status-details-bin`` trailer of every error it raises itself:

- a ``google.rpc.ErrorInfo`` whose ``reason`` is the catalogue code (docs/errors.md), in the ``reelcast.dev``
  domain, with ``remediation`` and ``correlationId`` in its metadata;
- a ``google.rpc.BadRequest`` with the field violations of invalid input;
- a ``google.rpc.RetryInfo`` when the caller should wait before trying again.

:func:`decode_rpc_error` is the one reader of it, for the client, the bridge and the tests alike. Errors that
never reached the service (connection refused, a proxy cutting the stream) carry no status: their ``code``
is empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from reelcast.jobs.errors import ErrorCode
from reelcast.jobs.metadata import CORRELATION_ID_HEADER, STATUS_DETAILS_HEADER
from reelcast.jobs.violations import FieldViolation

ERROR_DOMAIN = "reelcast.dev"


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def build_status(
    error: ErrorCode,
    message: str,
    correlation_id: str,
    violations: Sequence[FieldViolation] = (),
    retry_after_seconds: float | None = None,
) -> status_pb2.Status:
    """A ``google.rpc.Status`` whose message is ``"<code>: <message>"`` and whose details carry the catalogue
    code and remediation (ErrorInfo), any field violations (BadRequest) and any retry delay (RetryInfo)."""
    info = error_details_pb2.ErrorInfo(
        reason=error.code,
        domain=ERROR_DOMAIN,
        metadata={"remediation": error.remediation, "correlationId": correlation_id},
    )
    details = [_packed(info)]
    if violations:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in violations
            ]
        )
        details.append(_packed(bad_request))
    if retry_after_seconds is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromMilliseconds(max(0, int(retry_after_seconds * 1000)))
        details.append(_packed(retry))
    code_value = getattr(code_pb2, error.grpc_status.name, code_pb2.UNKNOWN)
    return status_pb2.Status(code=code_value, message=f"{error.code}: {message}", details=details)


@dataclass(frozen=True)
class StatusDetails:
    """What a failed call says about itself, as far as it says it.

    ``message`` is the server's message without its ``"<code>: "`` prefix; ``code`` the catalogue code, empty
    when the error did not come from the service; ``correlation_id`` the one in the ErrorInfo, else the one
    the server echoed in initial metadata, else empty; ``retry_after`` the RetryInfo delay in seconds.
    """

    status: grpc.StatusCode
    message: str
    code: str = ""
    remediation: str = ""
    correlation_id: str = ""
    field_violations: tuple[FieldViolation, ...] = ()
    retry_after: float | None = None


def _metadata_value(metadata: Iterable[Any] | None, key: str) -> str | bytes | None:
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


def decode_rpc_error(error: grpc.RpcError) -> StatusDetails:
    """The status of a failed call (grpc or grpc.aio), read from its trailers and initial metadata."""
    status_getter = getattr(error, "code", None)
    status = status_getter() if callable(status_getter) else grpc.StatusCode.UNKNOWN
    if not isinstance(status, grpc.StatusCode):
        status = grpc.StatusCode.UNKNOWN
    details_getter = getattr(error, "details", None)
    message = (details_getter() if callable(details_getter) else str(error)) or ""
    code = remediation = correlation_id = ""
    violations: list[FieldViolation] = []
    retry_after: float | None = None
    echoed = _metadata_value(_call_metadata(error, "initial_metadata"), CORRELATION_ID_HEADER)
    if echoed:
        correlation_id = echoed if isinstance(echoed, str) else echoed.decode("utf-8", "replace")
    packed = _metadata_value(_call_metadata(error, "trailing_metadata"), STATUS_DETAILS_HEADER)
    if isinstance(packed, bytes):
        for detail in status_pb2.Status.FromString(packed).details:
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
    return StatusDetails(status, message, code, remediation, correlation_id, tuple(violations), retry_after)
