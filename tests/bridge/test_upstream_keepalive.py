"""The bridge's channel pings its upstream (bridge/channel.py): at the pace the server accepts, so the server
never strikes it out with GOAWAY ``too_many_pings``, and often enough that a connection gone silent (no FIN,
no RST: a crashed host, a NAT that forgot it) ends its streams instead of holding them for ever."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc import aio

from reelcast.bridge.channel import KEEPALIVE_TIMEOUT_SECONDS, MIN_KEEPALIVE_SECONDS, open_channel
from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from reelcast.server.app import ReelcastServer
from tests.bridge.test_upstream_channel import SilentJobService
from tests.client.proxy import CuttingProxy
from tests.stages import PipelinePlugin

# The bridge's fastest allowed pace, so that a few pings fit in a test.
KEEPALIVE_SECONDS = MIN_KEEPALIVE_SECONDS
# gRPC's server sends GOAWAY on the third ping it finds too early (two strikes are allowed).
PINGS_TO_STRIKE_OUT = 3


class FreezingProxy(CuttingProxy):
    """:class:`CuttingProxy` that can also go silent: after :meth:`freeze` it forwards nothing and closes
    nothing, as a network path that died without telling either side."""

    frozen = False

    # An instance method where the base has a static one: it reads the proxy's ``frozen``.
    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:  # type: ignore[override]
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if not self.frozen:
                    writer.write(data)
                    await writer.drain()

    def freeze(self) -> None:
        self.frozen = True


async def test_the_server_accepts_the_bridges_keepalive_pings_on_a_quiet_stream(
    server: ReelcastServer,
) -> None:
    server.host.register(PipelinePlugin(hang_at="script"), "pipeline")  # one report, then a minute of quiet
    channel = open_channel(server.target, None, keepalive_seconds=KEEPALIVE_SECONDS)
    try:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic="Quiet"))
        job = (await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec, request_id="quiet-1"))).job
        call = stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job.id))
        while True:
            event = await asyncio.wait_for(call.read(), 30)
            assert isinstance(event, job_pb2.JobProgress), event
            if event.message == "hanging":
                break
        # Quiet for more pings than gRPC's default enforcement tolerates: its GOAWAY too_many_pings would end
        # the stream with UNAVAILABLE.
        read = asyncio.ensure_future(call.read())
        done, _ = await asyncio.wait({read}, timeout=KEEPALIVE_SECONDS * (PINGS_TO_STRIKE_OUT + 0.5))
        assert not done, f"the stream ended: {read.exception() or read.result()}"
        call.cancel()
        await stub.CancelJob(job_service_pb2.CancelJobRequest(job_id=job.id))
    finally:
        await channel.close()


@pytest.fixture
async def silent_service_behind_a_proxy() -> AsyncIterator[tuple[SilentJobService, FreezingProxy]]:
    service = SilentJobService()
    server = aio.server()
    job_service_pb2_grpc.add_JobServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    proxy = FreezingProxy(f"127.0.0.1:{port}")
    await proxy.start()
    try:
        yield service, proxy
    finally:
        await proxy.close()
        await server.stop(grace=None)


async def test_a_stream_on_a_connection_gone_silent_fails_instead_of_waiting_for_ever(
    silent_service_behind_a_proxy: tuple[SilentJobService, FreezingProxy],
) -> None:
    service, proxy = silent_service_behind_a_proxy
    channel = open_channel(proxy.target, None, keepalive_seconds=KEEPALIVE_SECONDS)
    try:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        # A quiet stream, as WatchJob is during a long stage: the server never sends on it.
        call = stub.WatchJob(job_service_pb2.WatchJobRequest(job_id="job-1"))
        await asyncio.wait_for(service.called.wait(), 30)  # the stream is open on the server
        proxy.freeze()
        # Keepalive notices within one interval and one ping timeout; generous room for a loaded machine.
        hang_timeout = 3 * (KEEPALIVE_SECONDS + KEEPALIVE_TIMEOUT_SECONDS)
        with pytest.raises(aio.AioRpcError) as failed:
            await asyncio.wait_for(call.read(), hang_timeout)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await channel.close()
