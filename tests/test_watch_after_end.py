"""A watcher that reads a job's log just before the job's last event and waits just after the job ended must
still be woken: the runner keeps the job's latest sequence in the notifier for a while after the job ends,
rather than dropping it with the last event."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reelcast.jobs.terminal import TERMINAL_STATUSES
from reelcast.jobs.v1 import job_pb2, job_service_pb2
from reelcast.server.app import ReelcastServer
from reelcast.server.rpc.watch import RECHECK_SECONDS
from tests.stages import PipelinePlugin

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub


async def test_a_finished_job_still_wakes_a_watcher_behind_its_last_event(
    server: ReelcastServer, stub: JobServiceAsyncStub
) -> None:
    server.host.register(PipelinePlugin(), name="pipeline")
    spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic="otters"))
    job = (await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec))).job
    events = [event async for event in stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job.id))]
    last = events[-1].sequence
    stored = await server.store.get_job(job.id)
    assert stored is not None and stored.status in TERMINAL_STATUSES
    # Where a watcher stands that read everything but the last event: the wait must end at once (True), not
    # run into the safety-net recheck (False).
    assert await server.notifier.wait_beyond(job.id, last - 1, timeout=RECHECK_SECONDS)
