"""The REST endpoints: JSON with camelCase keys, each one a thin call of one ``JobService`` RPC.

Errors are raised (``ApiError`` or the RPC's ``grpc.RpcError``) and rendered by the app's handlers, so every
4xx and 5xx has the same body. Input is typed with msgspec; ranges and lengths are checked once, by
``JobService``, and its field violations come back renamed to the body's paths.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, TypeVar

import grpc
import msgspec
from grpc_health.v1 import health_pb2
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from reelcast.bridge.bodies import (
    ApproveBody,
    CreateJobBody,
    UpdateScriptBody,
    job_spec_from_body,
    page_size_param,
    scenes_from_body,
)
from reelcast.bridge.problems import ApiError
from reelcast.bridge.ranges import open_artifact, parse_range
from reelcast.bridge.state import bridge_state, caller_of, checked_job_id, grpc_metadata
from reelcast.jobs import errors
from reelcast.jobs.resources import (
    JOB_STATUS_FILTERS,
    Health,
    JobList,
    StageList,
    failure_resource,
    job_resource,
    stage_resource,
)
from reelcast.jobs.v1 import job_pb2, job_service_pb2
from reelcast.jobs.violations import FieldViolation

BodyT = TypeVar("BodyT", bound=msgspec.Struct)
_VIOLATION_PATH = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$")
_MISSING_FIELD = re.compile(r"(?:missing required|unknown) field `([^`]+)`")


def struct_response(
    resource: msgspec.Struct, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A resource of reelcast/jobs/resources.py as JSON, encoded by the Struct the document publishes."""
    return Response(
        msgspec.json.encode(resource), status_code, headers=headers, media_type="application/json"
    )


async def healthz(request: Request) -> Response:
    """200 while the gRPC server answers its health check; the upstream counters for operators and tests."""
    state = bridge_state(request)
    try:
        reply = await state.health_check(health_pb2.HealthCheckRequest(service=""), timeout=2.0)
        serving = reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        serving = False
    if not serving:
        raise ApiError(errors.UPSTREAM_UNAVAILABLE)
    counters = state.hub.counters
    return struct_response(
        Health(
            status="ok",
            grpc_target=state.settings.grpc_target,
            upstreams_open=counters.upstreams_open,
            upstreams_opened=counters.upstreams_opened,
            subscribers=counters.subscribers,
        )
    )


async def list_stages(request: Request) -> Response:
    state = bridge_state(request)
    reply = await state.jobs.ListStages(job_service_pb2.ListStagesRequest(), metadata=grpc_metadata())
    return struct_response(StageList([stage_resource(s) for s in reply.stages]))


async def read_capped_body(request: Request, limit: int) -> bytes:
    """The body, or 413 as soon as it passes ``limit`` bytes (a lying Content-Length cannot get around it)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(errors.BODY_TOO_LARGE, f"The body is {declared} bytes; the limit is {limit}.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(errors.BODY_TOO_LARGE, f"The body exceeds {limit} bytes.")
    return bytes(body)


def _body_violation(error: msgspec.ValidationError) -> FieldViolation:
    """msgspec's ``Expected `int`, got `str` - at `$.render.width``` as a field violation."""
    match = _VIOLATION_PATH.match(str(error))
    what = match.group("what") if match else str(error)
    path = (match.group("path") or "") if match else ""
    missing = _MISSING_FIELD.search(what)
    if missing:
        path = f"{path}.{missing.group(1)}"
    return FieldViolation(path.lstrip(".") or "(body)", what)


async def decode_json_body(
    request: Request,
    body_type: type[BodyT],
    empty: BodyT | None = None,
    invalid_error: errors.ErrorCode = errors.INVALID_SPEC,
) -> BodyT:
    """The JSON body as ``body_type``: 415 when it is not JSON, 413 past the cap, 400 with the field's path
    when it does not fit the Struct. ``empty``, when given, is what no body at all means. A body that does
    not fit is ``invalid_error``: E001 (a job spec) unless the route's body is not a spec."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    is_json = media_type == "application/json" or media_type.endswith("+json")
    if not is_json and (empty is None or media_type):
        raise ApiError(errors.UNSUPPORTED_MEDIA_TYPE, f"Content-Type is '{media_type[:100]}'.")
    raw = await read_capped_body(request, bridge_state(request).settings.max_body_bytes)
    if empty is not None and not raw.strip():
        return empty
    if not is_json:
        raise ApiError(errors.UNSUPPORTED_MEDIA_TYPE, "A body needs Content-Type: application/json.")
    try:
        return msgspec.json.decode(raw, type=body_type)
    except msgspec.ValidationError as invalid:
        violation = _body_violation(invalid)
        raise ApiError(invalid_error, f"{violation.field}: {violation.description}", [violation]) from None
    except msgspec.DecodeError as invalid:
        raise ApiError(errors.INVALID_REQUEST, f"The body is not valid JSON: {invalid}.") from None


def _encodable(message: Any) -> None:
    """Surfaces text protobuf cannot carry (lone surrogates) as a 400."""
    try:
        message.SerializeToString()
    except (ValueError, TypeError, UnicodeError) as invalid:
        raise ApiError(
            errors.INVALID_SPEC, f"The body cannot be encoded: {type(invalid).__name__}."
        ) from None


async def create_job(request: Request) -> Response:
    state = bridge_state(request)
    body = await decode_json_body(request, CreateJobBody)
    try:
        spec = job_spec_from_body(body)
        spec.SerializeToString()  # surfaces text protobuf cannot carry (lone surrogates) as a 400
    except (ValueError, TypeError, UnicodeError) as invalid:
        raise ApiError(
            errors.INVALID_SPEC, f"The body cannot be encoded: {type(invalid).__name__}."
        ) from None
    # The channel retries CreateJob on UNAVAILABLE (bridge/channel.py): without the browser's own key, one
    # of the bridge's makes a retry return the job a lost reply had created instead of a second job.
    request_id = body.request_id or uuid.uuid4().hex
    reply = await state.jobs.CreateJob(
        job_service_pb2.CreateJobRequest(spec=spec, request_id=request_id), metadata=grpc_metadata()
    )
    job = reply.job
    return struct_response(job_resource(job), 201, headers={"Location": f"/api/jobs/{job.id}"})


def label_selector_from_query(request: Request) -> str:
    """``?label=k=v`` repeated or comma-separated, as one ``ListJobsRequest.label_selector``: the server
    checks its grammar, and its field violation on ``label_selector`` reaches the caller as ``label``."""
    return ",".join(request.query_params.getlist("label"))


def status_filter_from_query(request: Request) -> list[job_pb2.JobStatus.ValueType]:
    """``?status=Running,Failed``: the statuses a listing or a stream is filtered by (400 for a word that
    names none)."""
    statuses: list[job_pb2.JobStatus.ValueType] = []
    for word in filter(None, request.query_params.get("status", "").split(",")):
        if word not in JOB_STATUS_FILTERS:
            raise ApiError(
                errors.INVALID_REQUEST,
                f"Unknown status '{word[:40]}'.",
                [FieldViolation("status", f"must be one of {', '.join(JOB_STATUS_FILTERS)}")],
            )
        statuses.extend(JOB_STATUS_FILTERS[word])
    return statuses


async def list_jobs(request: Request) -> Response:
    state = bridge_state(request)
    params = request.query_params
    page_size = page_size_param(params)
    statuses = status_filter_from_query(request)
    reply = await state.jobs.ListJobs(
        job_service_pb2.ListJobsRequest(
            page_size=page_size,
            page_token=params.get("pageToken", ""),
            statuses=statuses,
            label_selector=label_selector_from_query(request),
        ),
        metadata=grpc_metadata(),
    )
    return struct_response(JobList([job_resource(j) for j in reply.jobs], reply.next_page_token))


async def fetch_job(request: Request, job_id: str) -> job_pb2.Job:
    reply = await bridge_state(request).jobs.GetJob(
        job_service_pb2.GetJobRequest(job_id=job_id), metadata=grpc_metadata()
    )
    return reply.job


async def fetch_job_and_caller(request: Request, job_id: str) -> tuple[job_pb2.Job, str]:
    """The job (as the caller may see it) and the caller's user name, as the server reports it."""
    call = bridge_state(request).jobs.GetJob(
        job_service_pb2.GetJobRequest(job_id=job_id), metadata=grpc_metadata()
    )
    reply = await call
    return reply.job, await caller_of(call)


async def get_job(request: Request) -> Response:
    return struct_response(job_resource(await fetch_job(request, checked_job_id(request))))


async def cancel_job(request: Request) -> Response:
    job_id = checked_job_id(request)
    reply = await bridge_state(request).jobs.CancelJob(
        job_service_pb2.CancelJobRequest(job_id=job_id), metadata=grpc_metadata()
    )
    return struct_response(job_resource(reply.job), 202)


async def retry_job(request: Request) -> Response:
    """``POST /api/jobs/{jobId}/retry``: JobService.RetryJob."""
    job_id = checked_job_id(request)
    reply = await bridge_state(request).jobs.RetryJob(
        job_service_pb2.RetryJobRequest(job_id=job_id), metadata=grpc_metadata()
    )
    bridge_state(request).hub.forget_job(job_id)  # a new stream from 0 must not end at the old failure
    return struct_response(job_resource(reply.job), 202)


async def delete_job(request: Request) -> Response:
    """``DELETE /api/jobs/{jobId}``: JobService.DeleteJob."""
    job_id = checked_job_id(request)
    await bridge_state(request).jobs.DeleteJob(
        job_service_pb2.DeleteJobRequest(job_id=job_id), metadata=grpc_metadata()
    )
    bridge_state(request).hub.forget_job(job_id)
    return Response(status_code=204)


async def update_script(request: Request) -> Response:
    """``PUT /api/jobs/{jobId}/script``: JobService.UpdateJobScript."""
    job_id = checked_job_id(request)
    body = await decode_json_body(request, UpdateScriptBody)
    update = job_service_pb2.UpdateJobScriptRequest(
        job_id=job_id, scenes=scenes_from_body(body.scenes), expected_revision=body.expected_revision
    )
    _encodable(update)
    reply = await bridge_state(request).jobs.UpdateJobScript(update, metadata=grpc_metadata())
    return struct_response(job_resource(reply.job))


async def approve_job(request: Request) -> Response:
    """``POST /api/jobs/{jobId}/approve``: JobService.ApproveJob; no body approves the script as it is."""
    job_id = checked_job_id(request)
    body = await decode_json_body(request, ApproveBody, empty=ApproveBody())
    approve = job_service_pb2.ApproveJobRequest(job_id=job_id, scenes=scenes_from_body(body.scenes))
    _encodable(approve)
    reply = await bridge_state(request).jobs.ApproveJob(approve, metadata=grpc_metadata())
    return struct_response(job_resource(reply.job))


async def failure_details(request: Request) -> Response:
    job = await fetch_job(request, checked_job_id(request))
    if job.status not in (job_pb2.JOB_STATUS_FAILED, job_pb2.JOB_STATUS_CANCELLED):
        raise ApiError(errors.NO_FAILURE_DETAILS)
    return struct_response(failure_resource(job))


async def _artifact(
    request: Request, kind: job_service_pb2.ArtifactKind.ValueType, preview_revision: int = 0
) -> Response:
    job_id = checked_job_id(request)
    requested = parse_range(request.headers.get("range"))
    stream = await open_artifact(
        bridge_state(request).jobs, job_id, kind, requested, grpc_metadata(), preview_revision
    )
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Length": str(stream.end - stream.start + 1),
        "Cache-Control": "private, max-age=3600",
    }
    status = 200
    if requested is not None:
        status = 206
        headers["Content-Range"] = f"bytes {stream.start}-{stream.end}/{stream.total_size}"
    return StreamingResponse(
        stream.chunks, status_code=status, headers=headers, media_type=stream.content_type
    )


async def job_output(request: Request) -> Response:
    return await _artifact(request, job_service_pb2.ARTIFACT_KIND_VIDEO)


async def job_thumbnail(request: Request) -> Response:
    return await _artifact(request, job_service_pb2.ARTIFACT_KIND_THUMBNAIL)


async def job_subtitles(request: Request) -> Response:
    return await _artifact(request, job_service_pb2.ARTIFACT_KIND_SUBTITLES)


async def job_webvtt(request: Request) -> Response:
    return await _artifact(request, job_service_pb2.ARTIFACT_KIND_WEBVTT)


# Past any revision a job's render could reach; a bigger number names no preview.
MAX_PREVIEW_REVISION = 1_000_000


async def job_preview(request: Request) -> Response:
    """``?revision=N`` (what ``Preview.videoUrl`` names) is served only while it is the job's latest preview,
    so a player never mixes ranges of two files; without it, the latest."""
    raw = request.query_params.get("revision", "")
    if raw and not (raw.isdigit() and 1 <= int(raw) <= MAX_PREVIEW_REVISION):
        raise ApiError(
            errors.INVALID_REQUEST,
            f"Unknown preview revision '{raw[:20]}'.",
            [FieldViolation("revision", f"must be a whole number from 1 to {MAX_PREVIEW_REVISION}")],
        )
    response = await _artifact(request, job_service_pb2.ARTIFACT_KIND_PREVIEW, int(raw or 0))
    if not raw:  # the latest changes; a revision's bytes never do, and keep the outputs' hour of caching
        response.headers["Cache-Control"] = "no-store"
    return response
