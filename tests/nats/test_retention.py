"""Retention on NATS removes a job's request-id key with the job: the requests bucket does not grow with every
job ever created, and the request id is free again afterwards."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import pytest
from nats.js.errors import KeyNotFoundError

from reelcast.jobs.v1 import job_pb2, job_service_pb2
from reelcast.server.app import ReelcastServer
from reelcast.server.storage.nats.layout import NatsConnection
from reelcast.server.storage.retention import collect_garbage
from tests.nats.natsproc import NatsServer
from tests.stages import PipelinePlugin

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub as Stub


async def request_entries(url: str, keys_or_jobs: list[str]) -> list[str | None]:
    """For each ``job:<id>``, the request key its ``request.<id>`` state entry leads to; for each ``key:<k>``,
    the job id the requests bucket holds under that key; None where there is no entry. Direct reads of known
    keys, not a listing: a KV listing is a watch that can miss entries on a loaded machine."""
    connection = NatsConnection([url], replicas=1, ack_wait_seconds=30)
    await connection.open()
    try:
        found: list[str | None] = []
        for item in keys_or_jobs:
            kind, _, name = item.partition(":")
            bucket = connection.layout.state if kind == "job" else connection.layout.requests
            try:
                entry = await bucket.get(f"request.{name}" if kind == "job" else name)
                found.append((entry.value or b"").decode())
            except KeyNotFoundError:
                found.append(None)
        return found
    finally:
        await connection.close()


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
    first_key, kept_key = await request_entries(nats_server.url, [f"job:{first.id}", f"job:{kept.id}"])
    assert first_key and kept_key and first_key != kept_key
    stored = await request_entries(nats_server.url, [f"key:{first_key}", f"key:{kept_key}"])
    assert stored == [first.id, kept.id]

    removed = await collect_garbage(server.settings, server.store, now=time.time() + 8 * 24 * 3600)
    assert sorted(removed) == sorted([first.id, kept.id])
    left = [f"job:{first.id}", f"job:{kept.id}", f"key:{first_key}", f"key:{kept_key}"]
    assert await request_entries(nats_server.url, left) == [None, None, None, None]

    # The request id is free again: it creates a new job, not the removed one, under the same key.
    again = await create_and_finish(stub, "order-1")
    assert again.id != first.id
    assert await request_entries(nats_server.url, [f"job:{again.id}", f"key:{first_key}"]) == [
        first_key,
        again.id,
    ]
