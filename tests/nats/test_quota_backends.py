"""Per-user resource quotas on both backends (SQLite and NATS JetStream, tests/nats/conftest.py): queued
render time (E061) and stored bytes (E062) refuse new jobs, retries and uploads before anything is
stored, with RESOURCE_EXHAUSTED and the usage in the message; deleting a job frees the quota again.

Authentication is off here, as in the rest of the contract suite: the quotas hold for the anonymous owner,
as the media quota does (server/rpc/quotas.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc
import pytest
from grpc import aio

from reelcast.jobs.status import decode_rpc_error
from reelcast.jobs.v1 import job_pb2, job_service_pb2
from reelcast.server.app import ReelcastServer
from reelcast.server.config import Settings
from tests.bridge.conftest import HANG_TIMEOUT
from tests.media import png_bytes
from tests.stages import PipelinePlugin

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub as Stub

RENDER_SECONDS_LIMIT = 60.0
# Below one finished test video (tests/stages.py writes some 40 bytes) and below any picture.
STORED_BYTES_LIMIT = 10


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.max_queued_render_seconds_per_user = RENDER_SECONDS_LIMIT
    settings.max_stored_bytes_per_user = STORED_BYTES_LIMIT
    return settings


def _request(seconds: float) -> job_service_pb2.CreateJobRequest:
    spec = job_pb2.JobSpec(
        brief=job_pb2.Brief(topic="Otters"), plan=job_pb2.Plan(target_duration_seconds=seconds)
    )
    return job_service_pb2.CreateJobRequest(spec=spec)


async def _job_count(server: ReelcastServer, expected: int) -> int:
    """The stored jobs, read until they are ``expected`` (for up to a few seconds): on NATS a job's snapshot,
    which the count reads, is written just after its first event, so a count can briefly lag a creation."""
    deadline = asyncio.get_running_loop().time() + 5.0
    while True:
        count = sum((await server.store.count_by_status()).values())
        if count == expected or asyncio.get_running_loop().time() > deadline:
            return count
        await asyncio.sleep(0.05)


async def _refused(call: object) -> tuple[grpc.StatusCode, str, str]:
    with pytest.raises(aio.AioRpcError) as failure:
        await call  # type: ignore[misc]
    details = decode_rpc_error(failure.value)
    assert details.correlation_id
    return failure.value.code(), details.code, details.message


async def _until_ended(stub: Stub, job_id: str) -> job_pb2.JobProgress:
    request = job_service_pb2.WatchJobRequest(job_id=job_id)
    events = [event async for event in stub.WatchJob(request)]
    return events[-1]


async def test_queued_render_time_past_the_quota_is_refused_before_any_job_and_freed_by_a_delete(
    server: ReelcastServer, stub: Stub
) -> None:
    server.host.register(PipelinePlugin(hang_at="script"), "pipeline")
    first = (await stub.CreateJob(_request(40))).job
    await stub.CreateJob(_request(20))  # 60 s in all: at the limit, not past it
    assert await _job_count(server, 2) == 2

    code, error, message = await _refused(stub.CreateJob(_request(3)))

    assert (code, error) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "E061-RENDER_TIME_QUOTA_EXCEEDED")
    assert "60 s" in message and "2 unfinished jobs" in message
    assert await _job_count(server, 2) == 2  # no job, so no event either
    await stub.DeleteJob(job_service_pb2.DeleteJobRequest(job_id=first.id))
    admitted = (await stub.CreateJob(_request(40))).job
    assert admitted.status == job_pb2.JOB_STATUS_QUEUED


async def test_a_retry_past_the_render_time_quota_is_refused_and_the_job_stays_failed(
    server: ReelcastServer, stub: Stub
) -> None:
    server.host.register(PipelinePlugin(fail_at="render", fail_times=1), "pipeline")
    failed = (await stub.CreateJob(_request(40))).job
    ended = await asyncio.wait_for(_until_ended(stub, failed.id), HANG_TIMEOUT)
    assert ended.job_status == job_pb2.JOB_STATUS_FAILED
    server.host.unregister(name="pipeline")
    server.host.register(PipelinePlugin(hang_at="script"), "pipeline")
    waiting = (await stub.CreateJob(_request(40))).job
    last_sequence = (await stub.GetJob(job_service_pb2.GetJobRequest(job_id=failed.id))).job.last_sequence

    code, error, _ = await _refused(stub.RetryJob(job_service_pb2.RetryJobRequest(job_id=failed.id)))

    assert (code, error) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "E061-RENDER_TIME_QUOTA_EXCEEDED")
    job = (await stub.GetJob(job_service_pb2.GetJobRequest(job_id=failed.id))).job
    assert (job.status, job.last_sequence) == (job_pb2.JOB_STATUS_FAILED, last_sequence)  # no event
    await stub.DeleteJob(job_service_pb2.DeleteJobRequest(job_id=waiting.id))
    retried = (await stub.RetryJob(job_service_pb2.RetryJobRequest(job_id=failed.id))).job
    assert retried.status == job_pb2.JOB_STATUS_QUEUED


async def test_stored_bytes_at_the_quota_refuse_new_jobs_until_a_finished_job_is_deleted(
    server: ReelcastServer, stub: Stub
) -> None:
    server.host.register(PipelinePlugin(), "pipeline")
    finished = (await stub.CreateJob(_request(3))).job
    ended = await asyncio.wait_for(_until_ended(stub, finished.id), HANG_TIMEOUT)
    assert ended.kind == job_pb2.EVENT_KIND_JOB_COMPLETED
    size = (await stub.GetJob(job_service_pb2.GetJobRequest(job_id=finished.id))).job.output.size_bytes
    assert size >= STORED_BYTES_LIMIT
    assert await _job_count(server, 1) == 1

    code, error, message = await _refused(stub.CreateJob(_request(3)))

    assert (code, error) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "E062-STORAGE_QUOTA_EXCEEDED")
    assert f"videos keep {size} bytes" in message and f"limit of {STORED_BYTES_LIMIT} bytes" in message
    assert await _job_count(server, 1) == 1
    await stub.DeleteJob(job_service_pb2.DeleteJobRequest(job_id=finished.id))
    await stub.CreateJob(_request(3))


async def test_an_upload_past_the_stored_bytes_quota_is_refused_with_e062_and_nothing_is_stored(
    server: ReelcastServer, stub: Stub
) -> None:
    data = png_bytes()
    assert len(data) > STORED_BYTES_LIMIT  # the media quota (500 MiB) alone would take it

    async def messages() -> AsyncIterator[job_service_pb2.UploadMediaRequest]:
        yield job_service_pb2.UploadMediaRequest(
            metadata=job_service_pb2.UploadMediaMetadata(file_name="card.png")
        )
        yield job_service_pb2.UploadMediaRequest(chunk=data)

    code, error, message = await _refused(stub.UploadMedia(messages()))

    assert (code, error) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "E062-STORAGE_QUOTA_EXCEEDED")
    assert "would pass it" in message
    listed = await stub.ListMedia(job_service_pb2.ListMediaRequest())
    assert list(listed.media) == []


def _stored_job(job_id: str, owner: str, seconds: float) -> tuple[job_pb2.Job, job_pb2.JobProgress]:
    spec = job_pb2.JobSpec(
        brief=job_pb2.Brief(topic="Otters"), plan=job_pb2.Plan(target_duration_seconds=seconds)
    )
    job = job_pb2.Job(id=job_id, owner=owner, status=job_pb2.JOB_STATUS_QUEUED, spec=spec)
    job.create_time.GetCurrentTime()
    first = job_pb2.JobProgress(job_id=job_id, kind=job_pb2.EVENT_KIND_JOB_STATUS, message="Queued")
    return job, first


async def _move(
    server: ReelcastServer, job: job_pb2.Job, status: job_pb2.JobStatus.ValueType, size_bytes: int = 0
) -> None:
    job.status = status
    if size_bytes:
        job.output.size_bytes = size_bytes
    event = job_pb2.JobProgress(job_id=job.id, kind=job_pb2.EVENT_KIND_JOB_STATUS, message="moved")
    await server.store.append_event(job, event)


async def test_the_stores_usage_sums_only_the_owners_unfinished_time_and_every_finished_video(
    server: ReelcastServer,
) -> None:
    """JobStore.owner_usage, which every CreateJob reads, against the jobs it was given: the unfinished jobs
    (Queued, Running, AwaitingReview) count their expected seconds, an ended job counts its video's bytes
    and no seconds, another owner's jobs count nothing, and a deleted job's share is gone."""
    store = server.store
    jobs = {}
    for index, (owner, seconds) in enumerate(
        [("ann", 30), ("ann", 20), ("ann", 15), ("ann", 12), ("ann", 10), ("ann", 8), ("bob", 40)]
    ):
        job, first = _stored_job(f"usage{index}", owner, seconds)
        await store.create_job(job, first, "")
        jobs[index] = job
    await _move(server, jobs[1], job_pb2.JOB_STATUS_RUNNING)
    await _move(server, jobs[2], job_pb2.JOB_STATUS_AWAITING_REVIEW)
    await _move(server, jobs[3], job_pb2.JOB_STATUS_RUNNING)
    await _move(server, jobs[3], job_pb2.JOB_STATUS_SUCCEEDED, size_bytes=1_000)
    await _move(server, jobs[4], job_pb2.JOB_STATUS_FAILED, size_bytes=0)
    await _move(server, jobs[5], job_pb2.JOB_STATUS_CANCELLED, size_bytes=0)
    await _move(server, jobs[6], job_pb2.JOB_STATUS_SUCCEEDED, size_bytes=7_000)

    ann = await store.owner_usage("ann")
    assert (ann.unfinished_jobs, ann.queued_render_seconds, ann.output_bytes) == (3, 65.0, 1_000)
    bob = await store.owner_usage("bob")
    assert (bob.unfinished_jobs, bob.queued_render_seconds, bob.output_bytes) == (0, 0.0, 7_000)
    nobody = await store.owner_usage("carol")
    assert (nobody.unfinished_jobs, nobody.queued_render_seconds, nobody.output_bytes) == (0, 0.0, 0)

    await store.delete_job(jobs[3].id)
    await store.delete_job(jobs[0].id)
    ann = await store.owner_usage("ann")
    assert (ann.unfinished_jobs, ann.queued_render_seconds, ann.output_bytes) == (2, 35.0, 0)
