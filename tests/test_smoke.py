from __future__ import annotations

from typing import TYPE_CHECKING

from reelcast.jobs.v1 import job_pb2, job_service_pb2
from reelcast.server.app import ReelcastServer
from tests.stages import PipelinePlugin

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub


async def test_job_runs_through_registered_stages(server: ReelcastServer, stub: JobServiceAsyncStub) -> None:
    server.host.register(PipelinePlugin(), "pipeline")
    created = await stub.CreateJob(
        job_service_pb2.CreateJobRequest(spec=job_pb2.JobSpec(brief=job_pb2.Brief(topic="Otters")))
    )
    events = [e async for e in stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=created.job.id))]
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED
