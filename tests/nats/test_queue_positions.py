"""Live queue positions on both backends (SQLite and NATS JetStream, tests/nats/conftest.py), on SSE through a
real bridge and on gRPC WatchJob: a waiting job's stream counts its place down to 0, then it runs."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import httpx
import pytest

from reelcast.jobs.v1 import job_pb2, job_service_pb2
from reelcast.server.app import ReelcastServer
from reelcast.server.config import Settings
from reelcast.server.execution.recorder import JobRecorder
from reelcast.server.storage.job_store import ConcurrentWriteError
from tests.bridge.conftest import HANG_TIMEOUT, BridgeFactory, SseEvent, create_job, read_sse, start_bridge
from tests.nats.test_retry_backends import grpc_events
from tests.stages import PipelinePlugin

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub as Stub

__all__ = ["start_bridge"]  # the bridge fixture, used here as in tests/bridge

WAITING = 5


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Places change once per job run here (about 1 s): a short interval coalesces none of them away.
    settings.queue_position_interval_seconds = 0.1
    return settings


def places(events: list[SseEvent]) -> list[int]:
    return [e.data["queuePosition"] for e in events if "queuePosition" in e.data]


async def until_running(client: httpx.AsyncClient, job_id: str) -> None:
    """Reads the job's stream until it shows Running (then drops the connection)."""
    seen: list[SseEvent] = []
    while not any(e.data.get("status") == "Running" for e in seen):
        after = {"Last-Event-ID": seen[-1].id} if seen else None
        seen += (await read_sse(client, f"/api/jobs/{job_id}/events", headers=after, max_events=1)).events


async def test_five_waiting_jobs_count_their_place_down_to_zero_then_run_on_sse_and_grpc(
    server: ReelcastServer, stub: Stub, start_bridge: BridgeFactory
) -> None:
    server.host.register(PipelinePlugin(delay=0.05), "pipeline")  # about 1 s per job, on the one slot
    base = await start_bridge(heartbeat_seconds=15.0)
    async with httpx.AsyncClient(base_url=base, timeout=HANG_TIMEOUT) as client:
        first = await create_job(client, "First")
        await until_running(client, first["jobId"])
        waiting = [await create_job(client, f"Waiting {index}") for index in range(WAITING)]
        queued = await client.get(f"/api/jobs/{waiting[-1]['jobId']}")
        streams = await asyncio.gather(
            *(read_sse(client, f"/api/jobs/{job['jobId']}/events") for job in [first, *waiting])
        )
    # The REST answer of a waiting job carries its place too.
    assert queued.json()["status"] == "Queued"
    assert queued.json()["queuePosition"] == WAITING - 1

    first_events = streams[0].events
    assert places(first_events) == []  # a free slot: straight to Running
    for index, read in enumerate(streams[1:]):
        events = read.events
        ids = [int(event.id) for event in events]
        assert ids == list(range(1, len(ids) + 1))
        assert places(events) == list(range(index, -1, -1)), (index, [e.data for e in events[:8]])
        # Creation, then each place, then Running, before any step.
        statuses = [e.data["status"] for e in events[: index + 3]]
        assert statuses == ["Queued"] * (index + 2) + ["Running"]
        assert all(e.event == "job-status" for e in events[: index + 3])
        assert events[-1].event == "job-completed"
        # Once the first job ended, its stage durations estimate the wait of the places written after it.
        for event in events[2 : index + 2]:
            assert event.data["estimatedStartSeconds"] >= 0
        # gRPC sees the same log: the same sequences, the same places and estimates.
        on_grpc = await grpc_events(stub, waiting[index]["jobId"])
        assert [event.sequence for event in on_grpc] == ids
        grpc_places = [event.queue_position for event in on_grpc if event.HasField("queue_position")]
        assert grpc_places == places(events)
        for progress, sse in zip(on_grpc, events, strict=True):
            assert progress.HasField("estimated_start") == ("estimatedStartSeconds" in sse.data)
    # The last one waited longest: 4 jobs ahead of about 1 s each when it was 4th in line (index 4, place 3).
    last = [e for e in streams[-1].events if "estimatedStartSeconds" in e.data]
    assert last[0].data["queuePosition"] == WAITING - 2
    assert last[0].data["estimatedStartSeconds"] > last[-1].data["estimatedStartSeconds"]


async def test_a_place_is_written_only_when_it_changes(server: ReelcastServer, stub: Stub) -> None:
    server.host.register(PipelinePlugin(hang_at="script"), "pipeline")  # the first job holds the slot

    async def create(topic: str) -> str:
        spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic=topic))
        return (await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec))).job.id

    async def latest(job_id: str) -> job_pb2.Job:
        return (await stub.GetJob(job_service_pb2.GetJobRequest(job_id=job_id))).job

    async def until(job_id: str, ready: object) -> job_pb2.Job:
        async def poll() -> job_pb2.Job:
            while True:
                job = await latest(job_id)
                if ready(job):  # type: ignore[operator]
                    return job
                await asyncio.sleep(0.05)

        return await asyncio.wait_for(poll(), HANG_TIMEOUT)

    holder = await create("Holder")
    await until(holder, lambda job: job.status == job_pb2.JOB_STATUS_RUNNING)
    second, third = await create("Second"), await create("Third")
    second_job = await until(second, lambda job: job.HasField("queue_position"))
    third_job = await until(third, lambda job: job.HasField("queue_position"))
    assert (second_job.queue_position, third_job.queue_position) == (0, 1)
    # A job queued behind them changes no place of theirs; passes that find nothing changed write nothing.
    fourth = await create("Fourth")
    fourth_job = await until(fourth, lambda job: job.HasField("queue_position"))
    assert fourth_job.queue_position == 2
    for _ in range(3):
        await server.runner.positions.refresh()
    await asyncio.sleep(0.3)  # NATS: a few of the runner's own passes too
    for job in (second_job, third_job, fourth_job):
        assert (await latest(job.id)).last_sequence == job.last_sequence
    # The holder ends: each one moves up by one place, with one new event each.
    await stub.CancelJob(job_service_pb2.CancelJobRequest(job_id=holder))
    await until(second, lambda job: job.status == job_pb2.JOB_STATUS_RUNNING)
    moved = await until(fourth, lambda job: job.queue_position == 1)
    assert moved.last_sequence == fourth_job.last_sequence + 1
    # A pass writes the changed places one job at a time: the third's may land after the fourth's.
    await until(third, lambda job: job.queue_position == 0)
    third_events = await asyncio.wait_for(_events(stub, third), HANG_TIMEOUT)
    assert [e.queue_position for e in third_events if e.HasField("queue_position")] == [1, 0]
    for job_id in (second, third, fourth):
        await stub.CancelJob(job_service_pb2.CancelJobRequest(job_id=job_id))


async def _events(stub: Stub, job_id: str) -> list[job_pb2.JobProgress]:
    """The job's log so far (GetJob's last sequence), through WatchJob."""
    last = (await stub.GetJob(job_service_pb2.GetJobRequest(job_id=job_id))).job.last_sequence
    events: list[job_pb2.JobProgress] = []
    async for event in stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job_id)):
        events.append(event)
        if event.sequence >= last:
            break
    return events


async def test_a_job_leaving_the_queue_goes_on_after_places_written_meanwhile(server: ReelcastServer) -> None:
    """A worker (or a cancel) read the job just before a runner, perhaps in another process, wrote a place:
    that is no takeover. A place over a stale snapshot, though, is dropped: the newer place is as good."""
    store, notifier = server.store, server.notifier
    job = job_pb2.Job(id="placed", owner="o", status=job_pb2.JOB_STATUS_QUEUED, correlation_id="c")
    first = job_pb2.JobProgress(job_id=job.id, kind=job_pb2.EVENT_KIND_JOB_STATUS, job_status=job.status)
    await store.create_job(job, first, "")  # stored only: no worker takes it
    read_by_worker = await store.latest_job(job.id)
    read_by_other_runner = await store.latest_job(job.id)
    assert read_by_worker is not None and read_by_other_runner is not None

    placing = job_pb2.Job.FromString(read_by_worker.SerializeToString())
    await JobRecorder(store, notifier, placing).queue_place(3, 40.0)
    with pytest.raises(ConcurrentWriteError):
        await JobRecorder(store, notifier, read_by_other_runner).queue_place(2, 30.0)
    worker = JobRecorder(store, notifier, read_by_worker)
    started = await worker.job_status(job_pb2.JOB_STATUS_RUNNING, "Running")

    assert started.sequence == 3 and not started.HasField("queue_position")
    stored = await store.latest_job(job.id)
    assert stored is not None and stored.status == job_pb2.JOB_STATUS_RUNNING
    assert not stored.HasField("queue_position") and not stored.HasField("estimated_start")
    log = await store.events_after(job.id, 0, 10)
    assert [(e.sequence, e.queue_position if e.HasField("queue_position") else None) for e in log] == [
        (1, None),
        (2, 3),
        (3, None),
    ]
