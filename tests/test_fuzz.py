"""Bad input, tested by machines: hypothesis drives spec validation, the SSE projection and CreateJob."""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import Iterator

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reelcast.bridge.sse import EVENT_NAMES, job_event
from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from reelcast.plugins.host import PluginHost
from reelcast.server.app import ReelcastServer
from reelcast.server.config import Settings
from reelcast.server.validation import validate_spec, with_defaults

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
    event = job_event(progress)
    frame = event.encode().decode()
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


@pytest.fixture(scope="module")
def background_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
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

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30)
    try:
        yield holder["server"].target
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)


@given(spec=specs, request_id=st.one_of(st.just(""), st.text(max_size=80)))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_arbitrary_create_requests_get_ok_or_invalid_argument(
    background_server: str, spec: job_pb2.JobSpec, request_id: str
) -> None:
    with grpc.insecure_channel(background_server) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        request = job_service_pb2.CreateJobRequest(spec=spec, request_id=request_id)
        failure: grpc.RpcError | None = None
        try:
            response = stub.CreateJob(request, timeout=10)
        except grpc.RpcError as error:
            failure = error
    if failure is not None:
        assert failure.code() == grpc.StatusCode.INVALID_ARGUMENT, failure
        assert "Traceback" not in (failure.details() or "")
        return
    assert response.job.id
    assert validate_spec(response.job.spec) == []
