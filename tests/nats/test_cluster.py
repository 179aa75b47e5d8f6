"""A 3-node JetStream cluster with R3: one node killed mid-run loses no job and no event; then every NATS node
and every reelcast process restarts, and finished jobs, their events and their outputs are all still there."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from grpc import aio

from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from tests.nats.natsproc import NatsCluster
from tests.nats.processes import ReelcastProcess, server, worker
from tests.processes import ALL_BUILTINS

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub as Stub

JOBS = 6
TERMINAL = (job_pb2.EVENT_KIND_JOB_COMPLETED, job_pb2.EVENT_KIND_JOB_FAILED)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    nodes = NatsCluster(tmp_path / "nats")
    nodes.start()
    try:
        yield nodes
    finally:
        nodes.stop()


async def follow(stub: Stub, job_id: str) -> list[job_pb2.JobProgress]:
    """Follows one job to its end, resuming after the last event whenever the stream breaks."""
    events: list[job_pb2.JobProgress] = []
    while not events or events[-1].kind not in TERMINAL:
        after = events[-1].sequence if events else 0
        try:
            request = job_service_pb2.WatchJobRequest(job_id=job_id, after_sequence=after)
            async for event in stub.WatchJob(request, timeout=60):
                events.append(event)
        except aio.AioRpcError:
            await asyncio.sleep(0.2)
    return events


async def test_r3_cluster_loses_no_event_to_a_dead_node_and_keeps_everything_over_a_full_restart(
    tmp_path: Path, cluster: NatsCluster, installed_sample_plugin: Path
) -> None:
    env = {
        "PYTHONPATH": str(installed_sample_plugin),
        "REELCAST_DISABLED_PLUGINS": ALL_BUILTINS,
        "REELCAST_SAMPLE_DELAY": "0.2",
        "REELCAST_NATS_REPLICAS": "3",
        "REELCAST_NATS_ACK_WAIT": "3",
    }
    processes: list[ReelcastProcess] = [
        server(tmp_path, "server", cluster.url, env),
        *(worker(tmp_path, f"worker{index}", cluster.url, env, concurrency=2) for index in range(2)),
    ]
    try:
        await asyncio.gather(*(asyncio.to_thread(process.start) for process in processes))
        async with aio.insecure_channel(processes[0].address) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            job_ids = []
            for index in range(JOBS):
                request = job_service_pb2.CreateJobRequest(
                    spec=job_pb2.JobSpec(brief=job_pb2.Brief(topic=f"R3 {index}"))
                )
                job_ids.append((await stub.CreateJob(request)).job.id)
            following = asyncio.gather(*(follow(stub, job_id) for job_id in job_ids))
            await asyncio.sleep(1.0)
            cluster.nodes[0].kill()
            logs = await asyncio.wait_for(following, 120)
        for events in logs:
            sequences = [event.sequence for event in events]
            assert sequences == list(range(1, len(sequences) + 1))
            terminal = [event for event in events if event.kind in TERMINAL]
            assert [event.kind for event in terminal] == [job_pb2.EVENT_KIND_JOB_COMPLETED], terminal

        # Everything stops, every node included, then everything starts again.
        for process in processes:
            process.stop()
        cluster.stop()
        cluster.start()
        restarted = processes[0]
        await asyncio.to_thread(restarted.start)
        async with aio.insecure_channel(restarted.address) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            listed = (await stub.ListJobs(job_service_pb2.ListJobsRequest(page_size=100))).jobs
            assert sorted(job.id for job in listed) == sorted(job_ids)
            assert all(job.status == job_pb2.JOB_STATUS_SUCCEEDED for job in listed)
            for job_id, before in zip(job_ids, logs, strict=True):
                after = [
                    e async for e in stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job_id), timeout=30)
                ]
                assert after == before
                read = job_service_pb2.ReadJobArtifactRequest(
                    job_id=job_id, kind=job_service_pb2.ARTIFACT_KIND_VIDEO
                )
                data = b"".join([chunk.data async for chunk in stub.ReadJobArtifact(read)])
                assert data.startswith(b"stamped R3")
    finally:
        for process in processes:
            process.stop()
