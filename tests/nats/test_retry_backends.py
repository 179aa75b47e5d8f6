"""RetryJob on both backends (SQLite and NATS JetStream, tests/nats/conftest.py), through REST, SSE and gRPC:
a job failed in its render resumes from its checkpoints, and a cancelled one starts over and is not cancelled
again by the request it was cancelled with."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import httpx

from reelcast.jobs.v1 import job_pb2, job_service_pb2
from reelcast.server.app import ReelcastServer
from tests.bridge.conftest import HANG_TIMEOUT, BridgeFactory, create_job, read_sse, start_bridge
from tests.bridge.test_rest import assert_problem
from tests.stages import PipelinePlugin

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub as Stub

__all__ = ["start_bridge"]  # the bridge fixture, used here as in tests/bridge

SKIPPED_ON_RETRY = ("Script", "Voice", "Visuals")


async def grpc_events(stub: Stub, job_id: str, after: int = 0) -> list[job_pb2.JobProgress]:
    async def follow() -> list[job_pb2.JobProgress]:
        request = job_service_pb2.WatchJobRequest(job_id=job_id, after_sequence=after)
        return [event async for event in stub.WatchJob(request)]

    return await asyncio.wait_for(follow(), HANG_TIMEOUT)


async def test_a_job_failed_in_rendering_is_retried_over_rest_and_its_sse_ids_continue(
    server: ReelcastServer, stub: Stub, start_bridge: BridgeFactory
) -> None:
    plugin = PipelinePlugin(fail_at="render", fail_times=1)
    server.host.register(plugin, "pipeline")
    base = await start_bridge(heartbeat_seconds=15.0)
    async with httpx.AsyncClient(base_url=base, timeout=HANG_TIMEOUT) as client:
        job = await create_job(client)
        url = f"/api/jobs/{job['jobId']}/events"
        failed = (await read_sse(client, url)).events
        assert failed[-1].event == "job-failed"

        retried = await client.post(f"/api/jobs/{job['jobId']}/retry")
        assert retried.status_code == 202, retried.text
        assert retried.json()["status"] == "Queued"
        again = (await read_sse(client, url, headers={"Last-Event-ID": failed[-1].id})).events

        refused = await client.post(f"/api/jobs/{job['jobId']}/retry")
        assert_problem(refused, 409, "E060-JOB_NOT_RETRYABLE")
        unknown = await client.post("/api/jobs/nosuchjob/retry")
        assert_problem(unknown, 404, "E003-JOB_NOT_FOUND")

    ids = [int(event.id) for event in failed + again]
    assert ids == list(range(1, len(ids) + 1))
    assert again[0].event == "job-status"
    assert again[0].data["status"] == "Queued" and again[0].data["retried"] is True
    assert again[0].data["attempt"] == 2
    assert again[-1].event == "job-completed"
    assert not [e for e in again if e.event == "step-status" and e.data["step"] in SKIPPED_ON_RETRY]
    assert plugin.runs["render"] == 2
    # gRPC sees the same log: the same sequences, the retried event at the same place.
    on_grpc = await grpc_events(stub, job["jobId"])
    assert [event.sequence for event in on_grpc] == ids
    retried_event = on_grpc[len(failed)]
    assert retried_event.kind == job_pb2.EVENT_KIND_JOB_RETRIED and retried_event.attempt == 2


async def test_a_cancelled_job_retried_starts_over_and_succeeds(server: ReelcastServer, stub: Stub) -> None:
    server.host.register(PipelinePlugin(delay=0.05), "pipeline")
    created = await stub.CreateJob(
        job_service_pb2.CreateJobRequest(spec=job_pb2.JobSpec(brief=job_pb2.Brief(topic="Otters")))
    )
    job_id = created.job.id

    async def cancel_when_visuals_start() -> list[job_pb2.JobProgress]:
        events = []
        async for event in stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job_id)):
            events.append(event)
            if event.stage == "visuals" and event.stage_status == job_pb2.STEP_STATUS_RUNNING:
                await stub.CancelJob(job_service_pb2.CancelJobRequest(job_id=job_id))
        return events

    first = await asyncio.wait_for(cancel_when_visuals_start(), HANG_TIMEOUT)
    assert first[-1].job_status == job_pb2.JOB_STATUS_CANCELLED
    await stub.RetryJob(job_service_pb2.RetryJobRequest(job_id=job_id))
    again = await grpc_events(stub, job_id, first[-1].sequence)
    assert again[0].kind == job_pb2.EVENT_KIND_JOB_RETRIED
    assert again[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED
    # Its files went with the cancel, so every stage runs again, the script first.
    started = [
        e.stage
        for e in again
        if e.kind == job_pb2.EVENT_KIND_STEP_STATUS and e.stage_status == job_pb2.STEP_STATUS_RUNNING
    ]
    assert started == ["script", "voice", "visuals", "render", "postprocess"]
    sequences = [event.sequence for event in first + again]
    assert sequences == list(range(1, len(sequences) + 1))
