"""Durability: a server killed with SIGKILL and restarted on the same data dir still has every job."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from grpc import aio

from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc

if TYPE_CHECKING:
    pass
from tests.processes import ALL_BUILTINS, ServerProcess


@pytest.fixture
def server_process(installed_sample_plugin: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(
        tmp_path / "data",
        env={"PYTHONPATH": str(installed_sample_plugin), "REELCAST_DISABLED_PLUGINS": ALL_BUILTINS},
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


async def _snapshot(
    target: str, job_ids: list[str]
) -> dict[str, tuple[job_pb2.Job, list[job_pb2.JobProgress]]]:
    async with aio.insecure_channel(target) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        result = {}
        for job_id in job_ids:
            # Watching to the end first means the job is finished when it is read.
            events = [e async for e in stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job_id))]
            job = (await stub.GetJob(job_service_pb2.GetJobRequest(job_id=job_id))).job
            result[job_id] = (job, events)
        return result


async def test_finished_jobs_survive_sigkill_and_restart(server_process: ServerProcess) -> None:
    async with aio.insecure_channel(server_process.target) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        ids = []
        for topic in ("one", "two", "three"):
            created = await stub.CreateJob(
                job_service_pb2.CreateJobRequest(spec=job_pb2.JobSpec(brief=job_pb2.Brief(topic=topic)))
            )
            ids.append(created.job.id)
        await stub.CancelJob(job_service_pb2.CancelJobRequest(job_id=ids[2]))
    before = await asyncio.wait_for(_snapshot(server_process.target, ids), 60)
    assert [before[i][0].status for i in ids] == [
        job_pb2.JOB_STATUS_SUCCEEDED,
        job_pb2.JOB_STATUS_SUCCEEDED,
        job_pb2.JOB_STATUS_CANCELLED,
    ]

    server_process.kill()
    server_process.start()

    after = await asyncio.wait_for(_snapshot(server_process.target, ids), 60)
    for job_id in ids:
        assert after[job_id][0] == before[job_id][0]
        assert after[job_id][1] == before[job_id][1]
        sequences = [event.sequence for event in after[job_id][1]]
        assert sequences == list(range(1, len(sequences) + 1))
