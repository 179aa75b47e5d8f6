"""Bad input, tested by machines: hypothesis drives spec validation, the SSE projection, CreateJob, and the
requests of every other RPC, with long repeated fields and oversized strings."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reelcast.bridge.sse import EVENT_NAMES, ProjectedEvent
from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from reelcast.jobs.validation import validate_spec, with_defaults
from reelcast.plugins.host import PluginHost
from reelcast.server.app import ReelcastServer
from reelcast.server.config import Settings

INT32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
ANY_TEXT = st.text(max_size=700)
FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)

briefs = st.builds(
    job_pb2.Brief,
    topic=ANY_TEXT,
    audience=ANY_TEXT,
    goal=ANY_TEXT,
    tone=ANY_TEXT,
    language=st.one_of(st.sampled_from(["", "en", "en-US", "he", "x"]), st.text(max_size=20)),
    aspect=st.integers(min_value=0, max_value=5),
)
scenes = st.builds(
    job_pb2.Scene, title=ANY_TEXT, narration=st.text(max_size=2100), caption=ANY_TEXT, visual_hint=ANY_TEXT
)
specs = st.builds(
    job_pb2.JobSpec,
    brief=briefs,
    plan=st.builds(
        job_pb2.Plan,
        target_duration_seconds=st.one_of(FLOATS, st.floats(min_value=0, max_value=2000)),
        pacing=st.integers(min_value=0, max_value=5),
        style=ANY_TEXT,
    ),
    voice=st.builds(job_pb2.VoiceSpec, name=st.text(max_size=120), rate=INT32, pitch=INT32),
    render=st.builds(
        job_pb2.RenderSpec,
        width=st.one_of(INT32, st.integers(min_value=0, max_value=4000)),
        height=st.one_of(INT32, st.integers(min_value=0, max_value=4000)),
        fps=INT32,
        video_bitrate_kbps=INT32,
        audio_bitrate_kbps=INT32,
        captions=st.booleans(),
        caption_mode=st.integers(min_value=0, max_value=4),
        variable_frame_rate=st.booleans(),
    ),
    script=st.lists(scenes, max_size=4),
)


@given(specs)
@settings(max_examples=300, deadline=None)
def test_validation_never_raises_and_valid_specs_get_bounded_defaults(spec: job_pb2.JobSpec) -> None:
    violations = validate_spec(spec)
    assert all(v.field.startswith("spec.") and v.description for v in violations)
    if violations:
        return
    filled = with_defaults(spec)
    assert validate_spec(filled) == []
    assert filled.brief.topic.strip()
    assert 3 <= filled.plan.target_duration_seconds <= 1800
    assert 160 <= filled.render.width <= 3840 and 160 <= filled.render.height <= 3840
    assert 1 <= filled.render.fps <= 60


progress_events = st.builds(
    job_pb2.JobProgress,
    job_id=st.text(max_size=40),
    sequence=st.integers(min_value=1, max_value=2**62),
    kind=st.sampled_from(sorted(EVENT_NAMES)),
    job_status=st.integers(min_value=0, max_value=5),
    stage=st.text(max_size=30),
    stage_title=ANY_TEXT,
    stage_status=st.integers(min_value=0, max_value=6),
    stage_percent=st.floats(min_value=0, max_value=100),
    job_percent=st.floats(min_value=0, max_value=100),
    message=ANY_TEXT,
    correlation_id=st.text(max_size=64),
    errors=st.lists(
        st.builds(job_pb2.JobError, code=ANY_TEXT, message=ANY_TEXT, remediation=ANY_TEXT), max_size=3
    ),
)


@given(progress_events)
@settings(max_examples=300, deadline=None)
def test_every_job_progress_projects_to_one_well_formed_sse_event(progress: job_pb2.JobProgress) -> None:
    frame = ProjectedEvent(progress).frame.decode()
    lines = frame.rstrip("\r\n").replace("\r\n", "\n").split("\n")
    data_lines = [line for line in lines if line.startswith("data:")]
    assert len(data_lines) == 1, "one JobProgress is exactly one SSE data line"
    assert f"id: {progress.sequence}" in lines
    assert f"event: {EVENT_NAMES[progress.kind]}" in lines
    data = json.loads(data_lines[0].removeprefix("data:").strip())
    assert data["correlationId"] == progress.correlation_id
    assert isinstance(data["jobProgressPct"], int | float) and not math.isnan(data["jobProgressPct"])
    if progress.kind == job_pb2.EVENT_KIND_STEP_PROGRESS:
        assert isinstance(data["progressPct"], int | float)
    if progress.kind == job_pb2.EVENT_KIND_JOB_FAILED:
        assert [error["code"] for error in data["errors"]] == [error.code for error in progress.errors]


class ServerLogProblems(logging.Handler):
    """Collects what the server logs at ERROR or with a traceback: client input must never cause either."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.problems: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.problems.append(self.format(record))

    def take(self) -> list[str]:
        taken, self.problems = self.problems, []
        return taken


@dataclass
class BackgroundServer:
    target: str
    log: ServerLogProblems


@pytest.fixture(scope="module")
def background_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundServer]:
    """A real server on its own event loop thread, so that hypothesis can drive it synchronously."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, ReelcastServer] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        data_dir = tmp_path_factory.mktemp("fuzz") / "data"
        server = ReelcastServer(
            Settings(data_dir=data_dir, grpc_listen="127.0.0.1:0"), host=PluginHost.load(builtins=False)
        )
        loop.run_until_complete(server.start())
        holder["server"] = server
        ready.set()
        loop.run_forever()
        loop.run_until_complete(server.stop(grace=0.5))

    problems = ServerLogProblems()
    server_log = logging.getLogger()  # the root: grpc's own loggers too, which log what escapes a handler
    server_log.addHandler(problems)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30)
    try:
        yield BackgroundServer(holder["server"].target, problems)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        server_log.removeHandler(problems)


@given(spec=specs, request_id=st.one_of(st.just(""), st.text(max_size=80)))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_arbitrary_create_requests_get_ok_or_invalid_argument(
    background_server: BackgroundServer, spec: job_pb2.JobSpec, request_id: str
) -> None:
    with grpc.insecure_channel(background_server.target) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        request = job_service_pb2.CreateJobRequest(spec=spec, request_id=request_id)
        failure: grpc.RpcError | None = None
        try:
            response = stub.CreateJob(request, timeout=10)
        except grpc.RpcError as error:
            failure = error
    assert background_server.log.take() == []
    if failure is not None:
        assert failure.code() == grpc.StatusCode.INVALID_ARGUMENT, failure
        assert "Traceback" not in (failure.details() or "")
        return
    assert response.job.id
    assert validate_spec(response.job.spec) == []


STATUS_VALUES = sorted(job_pb2.JobStatus.values())
# Sizes by magnitude, up to what still fits in one 1 MiB request (a value under 128 is one byte packed):
# size bugs (an SQL variable limit, a quadratic check) hide at the large end, which uniform sizes rarely
# reach.
LONG_RUN_LENGTHS = st.integers(min_value=12, max_value=19).map(lambda bits: 2**bits)
# Repeated fields: short and arbitrary, or long runs of valid values.
repeated_statuses = st.one_of(
    st.lists(INT32, max_size=40),
    st.builds(lambda status, count: [status] * count, st.sampled_from(STATUS_VALUES), LONG_RUN_LENGTHS),
)
# Ids and tokens: arbitrary text, and oversized runs of well-formed characters.
ANY_ID = st.one_of(st.text(max_size=300), LONG_RUN_LENGTHS.map(lambda length: "a" * length))
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
# Each field is often left at its default, so that one bad field is not hidden behind another's refusal.
list_requests = st.builds(
    job_service_pb2.ListJobsRequest,
    page_size=st.one_of(st.just(0), INT32),
    page_token=st.one_of(st.just(""), ANY_ID),
    statuses=repeated_statuses,
)
job_requests = st.one_of(
    st.builds(job_service_pb2.GetJobRequest, job_id=ANY_ID),
    st.builds(job_service_pb2.CancelJobRequest, job_id=ANY_ID),
    st.builds(job_service_pb2.WatchJobRequest, job_id=ANY_ID, after_sequence=INT64),
    st.builds(
        job_service_pb2.ReadJobArtifactRequest,
        job_id=ANY_ID,
        kind=INT32,
        offset=INT64,
        length=INT64,
    ),
)
CLIENT_ERRORS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}


def call_job_service(target: str, request: Any) -> grpc.RpcError | None:
    """Sends ``request`` to the RPC it belongs to and reads any stream to its end; the error, if any."""
    method = {
        job_service_pb2.ListJobsRequest: "ListJobs",
        job_service_pb2.GetJobRequest: "GetJob",
        job_service_pb2.CancelJobRequest: "CancelJob",
        job_service_pb2.WatchJobRequest: "WatchJob",
        job_service_pb2.ReadJobArtifactRequest: "ReadJobArtifact",
    }[type(request)]
    with grpc.insecure_channel(target) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        try:
            reply = getattr(stub, method)(request, timeout=10)
            if method in ("WatchJob", "ReadJobArtifact"):
                list(reply)
        except grpc.RpcError as error:
            return error
    return None


def assert_client_error_at_most(background_server: BackgroundServer, request: Any) -> None:
    failure = call_job_service(background_server.target, request)

    assert background_server.log.take() == []
    if request.ByteSize() > Settings().grpc_max_message_bytes:
        # grpc's own transport limit (REELCAST_GRPC_MAX_MESSAGE_BYTES) refuses it before any handler runs.
        assert failure is not None and failure.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, failure
        return
    if failure is not None:
        assert failure.code() in CLIENT_ERRORS, failure
        assert "Traceback" not in (failure.details() or "")


@given(request=list_requests)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_arbitrary_list_requests_get_ok_or_a_client_error_and_log_no_traceback(
    background_server: BackgroundServer, request: job_service_pb2.ListJobsRequest
) -> None:
    assert_client_error_at_most(background_server, request)


@given(request=job_requests)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_arbitrary_job_requests_get_ok_or_a_client_error_and_log_no_traceback(
    background_server: BackgroundServer, request: Any
) -> None:
    assert_client_error_at_most(background_server, request)


UNARY_REQUEST_METHODS = [
    f"/reelcast.jobs.v1.JobService/{name}"
    for name in ("CreateJob", "GetJob", "ListJobs", "CancelJob", "ListStages", "WatchJob", "ReadJobArtifact")
] + ["/grpc.health.v1.Health/Check"]
STREAMING_RESPONSES = ("WatchJob", "ReadJobArtifact")
REFLECTION_METHODS = [
    f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo" for version in ("v1", "v1alpha")
]


@given(method=st.sampled_from(UNARY_REQUEST_METHODS + REFLECTION_METHODS), payload=st.binary(max_size=64))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_arbitrary_request_bytes_get_ok_or_invalid_argument_and_log_no_traceback(
    background_server: BackgroundServer, method: str, payload: bytes
) -> None:
    """Bytes that may not parse as the request at all (bad wire format, a string that is not UTF-8)."""
    failure: grpc.RpcError | None = None
    with grpc.insecure_channel(background_server.target) as channel:
        try:
            if method in REFLECTION_METHODS:
                reflect: grpc.StreamStreamMultiCallable[bytes, bytes] = channel.stream_stream(method)
                list(reflect(iter([payload]), timeout=10))
            elif method.rsplit("/", 1)[-1] in STREAMING_RESPONSES:
                stream: grpc.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(method)
                list(stream(payload, timeout=10))
            else:
                unary: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method)
                unary(payload, timeout=10)
        except grpc.RpcError as error:
            failure = error

    assert background_server.log.take() == []
    if failure is not None:
        assert failure.code() in CLIENT_ERRORS, failure
        assert "Traceback" not in (failure.details() or "")
