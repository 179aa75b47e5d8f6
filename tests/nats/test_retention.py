"""Retention on NATS removes a job's request-id key with the job: the requests bucket does not grow with every
job ever created, and the request id is free again afterwards."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import pytest
from nats.js.errors import NoKeysError
from nats.js.kv import KeyValue

from reelcast.jobs.v1 import job_pb2, job_service_pb2
from reelcast.server.app import ReelcastServer
from reelcast.server.nats_layout import NatsConnection
from reelcast.server.retention import collect_garbage
from tests.nats.natsproc import NatsServer
from tests.stages import PipelinePlugin

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub as Stub


async def request_entries(url: str) -> tuple[list[str], list[str]]:
    """The job ids the requests bucket's live keys name, and the job ids with a ``request.`` entry (the way
    back from a job to its key) in the state bucket."""
    connection = NatsConnection([url], replicas=1, ack_wait_seconds=30)
    await connection.open()
    try:
        requests, state = connection.layout.requests, connection.layout.state
        named = [((await requests.get(key)).value or b"").decode() for key in await _keys(requests)]
        backrefs = [key.removeprefix("request.") for key in await _keys(state) if key.startswith("request.")]
        return sorted(named), sorted(backrefs)
    finally:
        await connection.close()


async def _keys(bucket: KeyValue) -> list[str]:
    try:
        return list(await bucket.keys())
    except NoKeysError:
        return []


async def create_and_finish(stub: Stub, request_id: str) -> job_pb2.Job:
    request = job_service_pb2.CreateJobRequest(
        spec=job_pb2.JobSpec(brief=job_pb2.Brief(topic="retention")), request_id=request_id
    )
    job = (await stub.CreateJob(request)).job
    watch = job_service_pb2.WatchJobRequest(job_id=job.id)
    events = await asyncio.wait_for(_collect(stub, watch), 60)
    assert events[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED
    return job


async def _collect(stub: Stub, request: job_service_pb2.WatchJobRequest) -> list[job_pb2.JobProgress]:
    return [event async for event in stub.WatchJob(request)]


@pytest.mark.parametrize("backend_name", ["nats"])
async def test_retention_removes_the_request_key_with_its_job(
    server: ReelcastServer, stub: Stub, nats_server: NatsServer
) -> None:
    server.host.register(PipelinePlugin(), "pipeline")
    first = await create_and_finish(stub, "order-1")
    kept = await create_and_finish(stub, "order-2")
    both = sorted([first.id, kept.id])
    assert await request_entries(nats_server.url) == (both, both)

    removed = await collect_garbage(server.settings, server.store, now=time.time() + 8 * 24 * 3600)
    assert sorted(removed) == both
    assert await request_entries(nats_server.url) == ([], [])

    # The request id is free again: it creates a new job, not the removed one.
    again = await create_and_finish(stub, "order-1")
    assert again.id != first.id
    assert await request_entries(nats_server.url) == ([again.id], [again.id])
