"""OpenTelemetry traces, recorded by the SDK's in-memory exporter: one REST POST with a W3C ``traceparent``
gives one trace through the bridge, the gRPC server, the runner's job span (linked to the creating span),
each stage and the real ffmpeg subprocess; the trace id is on the job's events, its REST body (a failed
job's too) and its log lines."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from reelcast.plugins import Stage, StageContext, hookimpl
from reelcast.server.app import ReelcastServer
from reelcast.server.logs import ContextFilter, JsonLineFormatter
from tests.bridge.conftest import read_sse
from tests.media import FFMPEG
from tests.stages import BUILTIN_SHAPE, writing_stage
from tests.tracing import recorded_spans, spans_by_name

CALLER_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01"


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    with recorded_spans() as exporter:
        yield exporter


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The JSON log lines of this process while the test runs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


class FfmpegPipeline:
    """The built-in shape with writing stages; ``render`` runs one real, tiny ffmpeg; topic ``fail`` fails
    in ``visuals``."""

    @hookimpl
    def register_stages(self, register: Callable[[Stage], None]) -> None:
        for name, title, weight, order in BUILTIN_SHAPE:
            run = writing_stage(name)
            if name == "render":
                run = self._render
            elif name == "visuals":
                run = self._maybe_failing(run)
            register(Stage(name=name, title=title, weight=weight, order=order, run=run))

    @staticmethod
    def _maybe_failing(run: Callable[[StageContext], Any]) -> Callable[[StageContext], Any]:
        async def maybe_fail(ctx: StageContext) -> Any:
            if ctx.spec.brief.topic == "fail":
                raise ValueError("forced failure")
            return await run(ctx)

        return maybe_fail

    @staticmethod
    async def _render(ctx: StageContext) -> dict[str, Any]:
        target = ctx.path("video.mp4")
        argv = [FFMPEG, "-v", "error", "-f", "lavfi", "-i", "color=c=blue:s=64x36:d=0.2", "-y", str(target)]
        result = await ctx.run_subprocess(argv)
        assert result.returncode == 0
        return {"output": {"video_path": str(target), "size_bytes": target.stat().st_size}}


async def _run(client: httpx.AsyncClient, topic: str) -> tuple[dict[str, Any], list[Any], dict[str, Any]]:
    response = await client.post(
        "/api/jobs", json={"brief": {"topic": topic}}, headers={"traceparent": TRACEPARENT}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    read = await read_sse(client, f"/api/jobs/{created['jobId']}/events")
    got = await client.get(f"/api/jobs/{created['jobId']}")
    return created, read.events, got.json()


async def test_one_rest_post_gives_one_trace_through_bridge_grpc_runner_stages_and_ffmpeg(
    server: ReelcastServer,
    client: httpx.AsyncClient,
    spans: InMemorySpanExporter,
    log_lines: io.StringIO,
) -> None:
    server.host.register(FfmpegPipeline(), "pipeline")
    spans.clear()
    created, events, job = await _run(client, "Otters")
    assert job["status"] == "Succeeded", job
    named = spans_by_name(spans, CALLER_TRACE_ID)

    bridge = named["POST /api/jobs"]
    grpc_server = named["reelcast.jobs.v1.JobService/CreateJob"]
    job_span = named["job"]
    assert bridge.parent is not None and format(bridge.parent.span_id, "016x") == CALLER_SPAN_ID
    assert grpc_server.parent is not None and grpc_server.parent.span_id == bridge.context.span_id
    # The job span continues the trace and links to the span that created the job, which ended long before.
    assert [link.context.span_id for link in job_span.links] == [grpc_server.context.span_id]
    assert grpc_server.end_time is not None and job_span.start_time is not None
    assert grpc_server.end_time <= job_span.start_time
    for name, *_ in BUILTIN_SHAPE:
        stage = named[f"stage {name}"]
        assert stage.parent is not None and stage.parent.span_id == job_span.context.span_id
    ffmpeg = named["subprocess ffmpeg"]
    assert ffmpeg.parent is not None and ffmpeg.parent.span_id == named["stage render"].context.span_id

    assert created["traceId"] == CALLER_TRACE_ID
    assert job["traceId"] == CALLER_TRACE_ID
    assert events and all(event.data["traceId"] == CALLER_TRACE_ID for event in events)
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    job_lines = [line for line in lines if line.get("job_id") == created["jobId"]]
    assert job_lines and all(line["trace_id"] == CALLER_TRACE_ID for line in job_lines)


async def test_a_failed_jobs_body_and_failure_event_carry_the_trace_id(
    server: ReelcastServer, client: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    server.host.register(FfmpegPipeline(), "pipeline")
    _, events, job = await _run(client, "fail")
    assert job["status"] == "Failed", job
    assert job["traceId"] == CALLER_TRACE_ID
    assert events[-1].event == "job-failed" and events[-1].data["traceId"] == CALLER_TRACE_ID
    failure = (await client.get(f"/api/jobs/{job['jobId']}/failure-details")).json()
    assert failure["traceId"] == CALLER_TRACE_ID
    failed_stage = spans_by_name(spans, CALLER_TRACE_ID)["stage visuals"]
    assert failed_stage.status.status_code == trace.StatusCode.ERROR


@pytest.mark.parametrize(
    "traceparent",
    [
        "not a traceparent",
        f"00-{'0' * 32}-{CALLER_SPAN_ID}-01",  # the spec's invalid all-zero trace id
        f"01-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01-extra",  # a version this server does not know
    ],
)
async def test_a_malformed_traceparent_starts_a_fresh_trace_instead_of_failing(
    server: ReelcastServer, client: httpx.AsyncClient, spans: InMemorySpanExporter, traceparent: str
) -> None:
    server.host.register(FfmpegPipeline(), "pipeline")
    response = await client.post(
        "/api/jobs", json={"brief": {"topic": "fail"}}, headers={"traceparent": traceparent}
    )
    assert response.status_code == 201, response.text
    trace_id = response.json()["traceId"]
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id) and trace_id not in (CALLER_TRACE_ID, "0" * 32)
    assert spans_by_name(spans, trace_id)["POST /api/jobs"].parent is None
