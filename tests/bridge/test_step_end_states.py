"""Every step that ends says so with its own step-status event, before the job's terminal event, and the
same events reach gRPC (WatchJob) and SSE: a failing render, a cancelled job and a successful one."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import httpx

from reelcast.jobs.v1 import job_pb2, job_service_pb2
from reelcast.server.app import ReelcastServer
from tests.bridge.conftest import HANG_TIMEOUT, SseEvent, create_job, read_sse
from tests.stages import PipelinePlugin

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub

STEP_NAMES = ("script", "voice", "visuals", "render", "postprocess")
END_WORDS = {"Succeeded", "Failed", "Cancelled", "Skipped"}
STEP_WORDS = {
    job_pb2.STEP_STATUS_RUNNING: "Running",
    job_pb2.STEP_STATUS_SUCCEEDED: "Succeeded",
    job_pb2.STEP_STATUS_FAILED: "Failed",
    job_pb2.STEP_STATUS_SKIPPED: "Skipped",
    job_pb2.STEP_STATUS_CANCELLED: "Cancelled",
}


async def watch_all(stub: JobServiceAsyncStub, job_id: str) -> list[job_pb2.JobProgress]:
    request = job_service_pb2.WatchJobRequest(job_id=job_id)
    return [event async for event in stub.WatchJob(request)]


def grpc_step_statuses(events: list[job_pb2.JobProgress]) -> list[tuple[str, str]]:
    return [
        (event.stage, STEP_WORDS[event.stage_status])
        for event in events
        if event.kind == job_pb2.EVENT_KIND_STEP_STATUS
    ]


def sse_step_statuses(events: list[SseEvent]) -> list[tuple[str, str]]:
    return [
        (event.data["stepName"], event.data["status"]) for event in events if event.event == "step-status"
    ]


def end_states(statuses: list[tuple[str, str]]) -> dict[str, list[str]]:
    """The end statuses each step announced, in order."""
    ended: dict[str, list[str]] = {}
    for name, word in statuses:
        if word in END_WORDS:
            ended.setdefault(name, []).append(word)
    return ended


async def both_transports(
    client: httpx.AsyncClient, stub: JobServiceAsyncStub, job_id: str
) -> tuple[list[job_pb2.JobProgress], list[SseEvent]]:
    grpc_events = await asyncio.wait_for(watch_all(stub, job_id), HANG_TIMEOUT)
    sse_events = (await read_sse(client, f"/api/jobs/{job_id}/events")).events
    return grpc_events, sse_events


def assert_end_states(
    grpc_events: list[job_pb2.JobProgress],
    sse_events: list[SseEvent],
    expected: dict[str, str],
    rest_job: dict[str, object],
    correlation_id: str,
) -> None:
    # One sequence, both transports: the same step-status events with the same ids.
    assert sse_step_statuses(sse_events) == grpc_step_statuses(grpc_events)
    assert [event.id for event in sse_events] == [str(event.sequence) for event in grpc_events]
    # Each step announced exactly one end state, the one REST shows, and all of them before the terminal.
    assert end_states(grpc_step_statuses(grpc_events)) == {name: [word] for name, word in expected.items()}
    rest_steps = {step["name"]: step["status"] for step in rest_job["steps"]}  # type: ignore[attr-defined]
    assert rest_steps == expected
    terminal = [
        index for index, event in enumerate(sse_events) if event.event in ("job-completed", "job-failed")
    ]
    assert terminal == [len(sse_events) - 1]
    # The seed's format, exactly: step, status and correlationId first.
    for event in sse_events:
        if event.event == "step-status" and event.data["status"] in END_WORDS:
            assert list(event.data)[:3] == ["step", "status", "correlationId"]
            assert event.data["correlationId"] == correlation_id
            assert event.data["step"] == next(
                step["step"]
                for step in rest_job["steps"]  # type: ignore[attr-defined]
                if step["name"] == event.data["stepName"]
            )


async def test_a_failing_render_ends_rendering_failed_and_postprocessing_skipped(
    client: httpx.AsyncClient, stub: JobServiceAsyncStub, server: ReelcastServer
) -> None:
    server.host.register(PipelinePlugin(fail_at="render"), "pipeline")
    job = await create_job(client, **{"X-Correlation-ID": "ends-failed"})
    grpc_events, sse_events = await both_transports(client, stub, job["jobId"])
    rest_job = (await client.get(f"/api/jobs/{job['jobId']}")).json()
    expected = {name: "Succeeded" for name in STEP_NAMES[:3]} | {"render": "Failed", "postprocess": "Skipped"}
    assert_end_states(grpc_events, sse_events, expected, rest_job, "ends-failed")
    assert sse_events[-1].event == "job-failed"
    assert [error["code"] for error in sse_events[-1].data["errors"]] == ["E309-STAGE_FAILED"]


async def test_a_cancelled_job_ends_the_running_step_cancelled_and_later_ones_skipped(
    client: httpx.AsyncClient, stub: JobServiceAsyncStub, server: ReelcastServer
) -> None:
    server.host.register(PipelinePlugin(hang_at="visuals"), "pipeline")
    job = await create_job(client, **{"X-Correlation-ID": "ends-cancelled"})

    async def cancel_once_visuals_runs() -> None:
        request = job_service_pb2.WatchJobRequest(job_id=job["jobId"])
        async for event in stub.WatchJob(request):
            if event.stage == "visuals" and event.kind == job_pb2.EVENT_KIND_STEP_PROGRESS:
                break
        response = await client.post(f"/api/jobs/{job['jobId']}/cancel")
        assert response.status_code == 202, response.text

    await asyncio.wait_for(cancel_once_visuals_runs(), HANG_TIMEOUT)
    grpc_events, sse_events = await both_transports(client, stub, job["jobId"])
    rest_job = (await client.get(f"/api/jobs/{job['jobId']}")).json()
    expected = {"script": "Succeeded", "voice": "Succeeded", "visuals": "Cancelled"}
    expected |= {"render": "Skipped", "postprocess": "Skipped"}
    assert_end_states(grpc_events, sse_events, expected, rest_job, "ends-cancelled")
    assert [error["code"] for error in sse_events[-1].data["errors"]] == ["E311-CANCELLED"]


async def test_a_job_cancelled_while_queued_ends_every_step_skipped(
    client: httpx.AsyncClient, stub: JobServiceAsyncStub, server: ReelcastServer
) -> None:
    server.host.register(PipelinePlugin(), "pipeline")
    await server.runner.stop()  # no worker: the job stays queued until cancelled
    job = await create_job(client, **{"X-Correlation-ID": "ends-queued"})
    response = await client.post(f"/api/jobs/{job['jobId']}/cancel")
    assert response.status_code == 202, response.text
    grpc_events, sse_events = await both_transports(client, stub, job["jobId"])
    rest_job = (await client.get(f"/api/jobs/{job['jobId']}")).json()
    assert_end_states(grpc_events, sse_events, dict.fromkeys(STEP_NAMES, "Skipped"), rest_job, "ends-queued")


async def test_a_successful_job_ends_every_step_succeeded(
    client: httpx.AsyncClient, stub: JobServiceAsyncStub, pipeline: PipelinePlugin
) -> None:
    job = await create_job(client, **{"X-Correlation-ID": "ends-succeeded"})
    grpc_events, sse_events = await both_transports(client, stub, job["jobId"])
    rest_job = (await client.get(f"/api/jobs/{job['jobId']}")).json()
    assert_end_states(
        grpc_events, sse_events, dict.fromkeys(STEP_NAMES, "Succeeded"), rest_job, "ends-succeeded"
    )
    assert sse_events[-1].event == "job-completed"
