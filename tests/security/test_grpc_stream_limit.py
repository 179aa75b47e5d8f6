"""Open WatchJob streams per user: one past the limit is RESOURCE_EXHAUSTED (E023) with google.rpc.RetryInfo,
other users are unaffected, closing a stream frees its slot, and a bridge's many viewers of one job hold one
upstream stream between them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc import aio

from reelcast.bridge.settings import BridgeSettings
from reelcast.jobs.status import decode_rpc_error
from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from tests.security.conftest import HANG_TIMEOUT, Secured, SecuredFactory, bearer, rpc_code
from tests.stages import PipelinePlugin

LIMIT = 3


class Watcher:
    """One WatchJob stream on its own grpc.aio channel (its own connection), as a separate client would."""

    def __init__(self, secured: Secured, user: str, job_id: str) -> None:
        self.channel = aio.insecure_channel(secured.server.target)
        stub = job_service_pb2_grpc.JobServiceStub(self.channel)
        self.call = stub.WatchJob(
            job_service_pb2.WatchJobRequest(job_id=job_id), metadata=bearer(secured.keys[user])
        )

    async def first_event(self) -> job_pb2.JobProgress:
        """The stream's first event: once it arrived, the server has admitted the stream."""
        event = await asyncio.wait_for(self.call.read(), HANG_TIMEOUT)
        assert isinstance(event, job_pb2.JobProgress), event
        return event

    async def close(self) -> None:
        self.call.cancel()
        await self.channel.close()


@contextlib.asynccontextmanager
async def watchers() -> AsyncIterator[list[Watcher]]:
    opened: list[Watcher] = []
    try:
        yield opened
    finally:
        for watcher in opened:
            await watcher.close()


async def open_watcher(opened: list[Watcher], secured: Secured, user: str, job_id: str) -> Watcher:
    watcher = Watcher(secured, user, job_id)
    opened.append(watcher)
    return watcher


async def test_the_stream_past_the_limit_is_resource_exhausted_with_retry_info_and_a_closed_one_frees_a_slot(
    start_secured: SecuredFactory,
) -> None:
    secured = await start_secured(plugin=PipelinePlugin(hang_at="script"), max_grpc_streams_per_user=LIMIT)
    job = await secured.create_job("alice")
    async with watchers() as opened:
        admitted = [await open_watcher(opened, secured, "alice", job.id) for _ in range(LIMIT)]
        for watcher in admitted:
            assert (await watcher.first_event()).job_id == job.id

        refused = await open_watcher(opened, secured, "alice", job.id)
        with pytest.raises(aio.AioRpcError) as raised:
            await refused.first_event()
        assert rpc_code(raised.value) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "E023-TOO_MANY_STREAMS")
        delay = decode_rpc_error(raised.value).retry_after
        assert delay is not None and delay > 0
        assert f"limit is {LIMIT}" in (raised.value.details() or "")

        # Another user is not affected by alice's streams.
        bobs_job = await secured.create_job("bob")
        bob = await open_watcher(opened, secured, "bob", bobs_job.id)
        assert (await bob.first_event()).job_id == bobs_job.id

        # Closing one of alice's streams gives its slot back (the server sees the cancel shortly after).
        await admitted[0].close()
        for _ in range(100):
            again = await open_watcher(opened, secured, "alice", job.id)
            try:
                await again.first_event()
                break
            except aio.AioRpcError as error:
                refused_code = error.code()
            assert refused_code == grpc.StatusCode.RESOURCE_EXHAUSTED
            await asyncio.sleep(0.05)
        else:
            pytest.fail("closing a stream did not free its slot")

        # Refused streams never took a slot: the allowance is full again, not over it.
        extra = await open_watcher(opened, secured, "alice", job.id)
        with pytest.raises(aio.AioRpcError) as full:
            await extra.first_event()
        assert full.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_a_finished_stream_gives_its_slot_back(start_secured: SecuredFactory) -> None:
    secured = await start_secured(max_grpc_streams_per_user=1)
    job = await secured.create_job("alice")

    for _ in range(LIMIT + 1):  # each read to its terminal event, one after the other
        events = await secured.finish("alice", job.id)
        assert events[0].job_id == job.id


async def test_many_sse_viewers_of_one_job_share_one_upstream_within_the_grpc_limit(
    start_secured: SecuredFactory,
) -> None:
    # The bridge watches a job once per credential and fans it out; its browsers do not each cost a gRPC
    # stream, so an SSE allowance (8) larger than the gRPC one (here 2) still works through one bridge.
    secured = await start_secured(plugin=PipelinePlugin(hang_at="script"), max_grpc_streams_per_user=2)
    job = await secured.create_job("alice")
    alice = secured.http("alice")
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(BridgeSettings().max_sse_connections_per_user):
            response = await stack.enter_async_context(alice.stream("GET", f"/api/jobs/{job.id}/events"))
            assert response.status_code == 200
            lines = response.aiter_lines()
            while not (await asyncio.wait_for(anext(lines), HANG_TIMEOUT)).startswith("event:"):
                pass


async def test_by_default_a_user_gets_256_watch_streams_and_not_one_more(
    start_secured: SecuredFactory,
) -> None:
    secured = await start_secured(plugin=PipelinePlugin(hang_at="script"))
    allowance = secured.server.settings.max_grpc_streams_per_user
    assert allowance == 256  # docs/security.md, docs/configuration.md
    job = await secured.create_job("alice")
    request = job_service_pb2.WatchJobRequest(job_id=job.id)
    calls = [secured.stub.WatchJob(request, metadata=bearer(secured.keys["alice"])) for _ in range(allowance)]
    try:
        firsts = await asyncio.wait_for(asyncio.gather(*(call.read() for call in calls)), HANG_TIMEOUT)
        assert all(isinstance(event, job_pb2.JobProgress) for event in firsts)
        one_more = secured.stub.WatchJob(request, metadata=bearer(secured.keys["alice"]))
        with pytest.raises(aio.AioRpcError) as raised:
            await asyncio.wait_for(one_more.read(), HANG_TIMEOUT)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        for call in calls:
            call.cancel()
