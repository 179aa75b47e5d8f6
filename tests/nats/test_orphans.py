"""A job whose API server stopped between storing it and queueing it (an orphan) runs once a reelcast
process starts again; a job already waiting in the work stream is not queued a second time."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from google.protobuf.timestamp_pb2 import Timestamp
from grpc import aio

from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from reelcast.server.storage.nats.job_store import NatsJobStore
from reelcast.server.storage.nats.layout import NatsConnection
from tests.nats.natsproc import NatsServer
from tests.nats.processes import server, worker
from tests.processes import ALL_BUILTINS

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub as Stub


async def store_without_queueing(url: str, template: job_pb2.Job) -> str:
    """Writes a new Queued job exactly as ``Runner.submit`` stores it, and stops before it queues it: the
    state a server killed between the two leaves behind."""
    connection = NatsConnection([url], replicas=1, ack_wait_seconds=30)
    await connection.open()
    try:
        created = Timestamp()
        created.GetCurrentTime()
        job = job_pb2.Job(
            id=uuid.uuid4().hex,
            owner=template.owner,
            status=job_pb2.JOB_STATUS_QUEUED,
            spec=job_pb2.JobSpec(brief=job_pb2.Brief(topic="orphan")),
            correlation_id=uuid.uuid4().hex,
            create_time=created,
        )
        for step in template.steps:
            job.steps.add(name=step.name, title=step.title, status=job_pb2.STEP_STATUS_PENDING)
        first = job_pb2.JobProgress(
            job_id=job.id,
            kind=job_pb2.EVENT_KIND_JOB_STATUS,
            job_status=job.status,
            message="Queued",
            time=created,
            correlation_id=job.correlation_id,
        )
        await NatsJobStore(connection).create_job(job, first, request_id="")
        return job.id
    finally:
        await connection.close()


async def create_job(stub: Stub, topic: str) -> job_pb2.Job:
    spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic=topic))
    return (await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec))).job


async def watch_to_end(stub: Stub, job_id: str) -> list[job_pb2.JobProgress]:
    request = job_service_pb2.WatchJobRequest(job_id=job_id)
    return [event async for event in stub.WatchJob(request, timeout=60)]


async def test_an_orphaned_job_runs_after_a_restart_and_a_waiting_job_runs_once(
    tmp_path: Path, nats_server: NatsServer, installed_sample_plugin: Path
) -> None:
    env = {"PYTHONPATH": str(installed_sample_plugin), "REELCAST_DISABLED_PLUGINS": ALL_BUILTINS}
    api = server(tmp_path, "server", nats_server.url, env)
    runner = worker(tmp_path, "worker", nats_server.url, env)
    try:
        api.start()
        async with aio.insecure_channel(api.address) as channel:
            # No worker yet: this job waits in the work stream.
            waiting = await create_job(job_service_pb2_grpc.JobServiceStub(channel), "waiting")
        orphan_id = await store_without_queueing(nats_server.url, waiting)

        api.stop()
        api.start()
        runner.start()
        async with aio.insecure_channel(api.address) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            for job_id in (waiting.id, orphan_id):
                events = await watch_to_end(stub, job_id)
                assert events[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED, events[-1]
                assert [e.sequence for e in events] == list(range(1, len(events) + 1))

        restarted_log = api.log()
        assert f"job {orphan_id} was stored but never queued" in restarted_log
        assert f"job {waiting.id} was stored but never queued" not in restarted_log
        claims = re.findall(r"job (\w+) claimed", runner.log())
        assert sorted(claims) == sorted([waiting.id, orphan_id]), "each job is claimed exactly once"
    finally:
        runner.stop()
        api.stop()


async def test_an_orphan_made_while_servers_run_is_queued_on_the_retention_schedule(
    tmp_path: Path, nats_server: NatsServer, installed_sample_plugin: Path
) -> None:
    env = {
        "PYTHONPATH": str(installed_sample_plugin),
        "REELCAST_DISABLED_PLUGINS": ALL_BUILTINS,
        "REELCAST_GC_INTERVAL": "1",
    }
    api = server(tmp_path, "server", nats_server.url, env)
    runner = worker(tmp_path, "worker", nats_server.url, env)
    try:
        api.start()
        runner.start()
        async with aio.insecure_channel(api.address) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            template = await create_job(stub, "template")
            # Nobody restarts: the API server's schedule finds the orphan.
            orphan_id = await store_without_queueing(nats_server.url, template)
            events = await watch_to_end(stub, orphan_id)
        assert events[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED, events[-1]
        assert f"job {orphan_id} was stored but never queued" in api.log()
    finally:
        runner.stop()
        api.stop()
