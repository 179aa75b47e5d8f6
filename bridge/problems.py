"""Error bodies: every 4xx and 5xx of the bridge is one JSON shape built from the one error catalogue.

The body is RFC 9457-like (``application/problem+json``) with the seed's fields::

    {"type", "title", "status", "detail", "errorCode", "correlationId"}

plus ``remediation`` and, for invalid input, ``violations`` (``[{"field", "description"}]``) named in the
REST body's camelCase paths. gRPC errors from ``JobService`` are translated through the catalogue code in
their ``google.rpc.ErrorInfo`` detail, so the HTTP status is the catalogue's, never a guess.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated

import grpc
import msgspec
from starlette.responses import Response

from reelcast.jobs import errors
from reelcast.jobs.errors import ErrorCode
from reelcast.jobs.metadata import current_correlation_id
from reelcast.jobs.status import decode_rpc_error
from reelcast.jobs.violations import FieldViolation

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://reelcast.dev/errors/"

# gRPC statuses without a catalogue code (the channel's own failures) and what they mean to a browser.
_STATUS_FALLBACK: dict[grpc.StatusCode, ErrorCode] = {
    grpc.StatusCode.UNAVAILABLE: errors.UPSTREAM_UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.UPSTREAM_UNAVAILABLE,
    grpc.StatusCode.NOT_FOUND: errors.JOB_NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT: errors.INVALID_REQUEST,
    grpc.StatusCode.UNAUTHENTICATED: errors.UNAUTHENTICATED,
}
# JobService names fields as proto paths; REST clients know the camelCase body.
_FIELD_RENAMES = {
    "spec.voice.name": "voice.voiceName",
    "spec.render.video_bitrate_kbps": "render.videoBitrateK",
    "spec.render.audio_bitrate_kbps": "render.audioBitrateK",
    "request_id": "requestId",
    "label_selector": "label",
    "webhook.url": "url",
    "webhook.labels": "labels",
    "webhook.statuses": "statuses",
    "page_size": "pageSize",
    "page_token": "pageToken",
}


class Problem(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    """The error body (published as the document's ``Problem`` schema)."""

    type: str
    title: str
    status: int
    detail: str
    error_code: Annotated[str, msgspec.Meta(description="Catalogue code, see docs/errors.md")]
    correlation_id: str
    remediation: str
    violations: list[FieldViolation] | msgspec.UnsetType = msgspec.UNSET


@dataclass(eq=False)
class ApiError(Exception):
    """Raised anywhere in a request; the app's exception handler turns it into the error body."""

    error: ErrorCode
    detail: str = ""
    violations: Sequence[FieldViolation] = field(default_factory=tuple)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.detail or self.error.message)


def rest_field_name(proto_path: str) -> str:
    """``spec.plan.target_duration_seconds`` → ``plan.targetDurationSeconds``."""
    if proto_path in _FIELD_RENAMES:
        return _FIELD_RENAMES[proto_path]
    path = proto_path.removeprefix("spec.")
    return re.sub(r"_([a-z])", lambda match: match.group(1).upper(), path)


def problem_from_rpc_error(rpc_error: grpc.RpcError) -> ApiError:
    """The catalogue entry named by the error's ErrorInfo reason, with the server's sanitized message."""
    details = decode_rpc_error(rpc_error)
    entry = errors.CATALOGUE.get(details.code)
    if entry is None:
        entry = _STATUS_FALLBACK.get(details.status, errors.INTERNAL)
        detail = entry.message
    else:
        detail = details.message or entry.message
    headers: dict[str, str] = {}
    if entry is errors.UNAUTHENTICATED:
        headers["WWW-Authenticate"] = 'Bearer realm="reelcast"'
    if details.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(details.retry_after)))
    violations = [FieldViolation(rest_field_name(v.field), v.description) for v in details.field_violations]
    return ApiError(entry, detail, violations, headers)


def problem_response(problem: ApiError, correlation_id: str | None = None) -> Response:
    error = problem.error
    body = Problem(
        type=TYPE_BASE + error.code,
        title=error.title,
        status=error.http_status,
        detail=problem.detail or error.message,
        error_code=error.code,
        correlation_id=correlation_id or current_correlation_id(),
        remediation=error.remediation,
        violations=list(problem.violations) if problem.violations else msgspec.UNSET,
    )
    return Response(
        msgspec.json.encode(body),
        error.http_status,
        headers=problem.headers,
        media_type=PROBLEM_CONTENT_TYPE,
    )
