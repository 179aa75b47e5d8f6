"""Queue positions with real processes on one NATS JetStream: an API server and two workers, each of which
recomputes the places of every waiting job. A place is written once per change, whichever process computed
it, and each stream still counts down to 0 before Running."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from grpc import aio

from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from tests.nats.natsproc import NatsServer
from tests.nats.processes import ReelcastProcess, server, worker
from tests.processes import ALL_BUILTINS

JOBS = 6  # on 2 slots: 4 wait
HANG_TIMEOUT = 60.0


async def test_two_workers_write_each_place_once_and_every_stream_counts_down_to_zero(
    tmp_path: Path, nats_server: NatsServer, installed_sample_plugin: Path
) -> None:
    env = {
        "PYTHONPATH": str(installed_sample_plugin),
        "REELCAST_DISABLED_PLUGINS": ALL_BUILTINS,
        "REELCAST_SAMPLE_DELAY": "0.2",  # about 1 s per job
        "REELCAST_QUEUE_POSITION_INTERVAL": "0.1",  # both workers recompute ten times a second
        "REELCAST_AUTH": "off",
    }
    api = server(tmp_path, "api", nats_server.url, env)
    workers = [worker(tmp_path, f"worker{index}", nats_server.url, env) for index in range(2)]
    processes: list[ReelcastProcess] = [api, *workers]
    try:
        await asyncio.gather(*(asyncio.to_thread(process.start) for process in processes))
        async with aio.insecure_channel(api.target) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            job_ids = []
            for index in range(JOBS):
                spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic=f"Waiting {index}"))
                created = await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec))
                job_ids.append(created.job.id)

            async def follow(job_id: str) -> list[job_pb2.JobProgress]:
                request = job_service_pb2.WatchJobRequest(job_id=job_id)
                return [event async for event in stub.WatchJob(request)]

            logs = await asyncio.wait_for(
                asyncio.gather(*(follow(job_id) for job_id in job_ids)), HANG_TIMEOUT
            )
    finally:
        for process in processes:
            process.stop()

    waited = 0
    for log in logs:
        assert [event.sequence for event in log] == list(range(1, len(log) + 1))
        assert log[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED
        places = [event.queue_position for event in log if event.HasField("queue_position")]
        if not places:
            continue
        waited += 1
        # Each change written once (no place twice in a row), never back, and the last place is 0.
        assert all(later < earlier for earlier, later in itertools.pairwise(places)), places
        assert places[-1] == 0, places
        last_place = max(i for i, event in enumerate(log) if event.HasField("queue_position"))
        running = log[last_place + 1]
        assert (
            running.kind == job_pb2.EVENT_KIND_JOB_STATUS and running.job_status == job_pb2.JOB_STATUS_RUNNING
        )
    assert waited >= JOBS - 2 - 1  # the jobs behind both slots (one may have slipped into a slot that freed)
