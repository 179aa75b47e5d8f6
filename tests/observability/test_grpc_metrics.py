"""The gRPC metrics interceptor on an in-process server: every kind of handler is counted when it ends, with
the status its client got, and handlers that write with ``context.write`` (health's Watch) still work."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import REGISTRY

from reelcast.jobs.v1 import job_service_pb2, job_service_pb2_grpc
from reelcast.plugins.host import PluginHost
from reelcast.server.app import ReelcastServer
from reelcast.server.config import Settings


def _count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_health_watch_streams_through_the_interceptors_and_counts_as_cancelled_when_left(
    server: ReelcastServer,
) -> None:
    labels = {"grpc_type": "server_stream", "grpc_service": "grpc.health.v1.Health", "grpc_method": "Watch"}
    before = _count("reelcast_grpc_server_handled_total", **labels, grpc_code="CANCELLED")
    started = _count("reelcast_grpc_server_started_total", **labels)
    async with aio.insecure_channel(server.target) as channel:
        health: Any = health_pb2_grpc.HealthStub(channel)  # the stubs are typed for sync channels
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        first = await asyncio.wait_for(watch.read(), 10)
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()
    assert _count("reelcast_grpc_server_started_total", **labels) == started + 1
    for _ in range(100):  # the server learns of the cancel asynchronously
        if _count("reelcast_grpc_server_handled_total", **labels, grpc_code="CANCELLED") == before + 1:
            break
        await asyncio.sleep(0.05)
    assert _count("reelcast_grpc_server_handled_total", **labels, grpc_code="CANCELLED") == before + 1


async def test_reflection_a_bidirectional_stream_is_counted_ok_when_it_ends(server: ReelcastServer) -> None:
    labels = {
        "grpc_type": "bidi_stream",
        "grpc_service": "grpc.reflection.v1alpha.ServerReflection",
        "grpc_method": "ServerReflectionInfo",
    }
    before = _count("reelcast_grpc_server_handled_total", **labels, grpc_code="OK")
    async with aio.insecure_channel(server.target) as channel:
        stub: Any = reflection_pb2_grpc.ServerReflectionStub(channel)  # type: ignore[arg-type]
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        responses = [response async for response in stub.ServerReflectionInfo(iter([request]))]
    names = {service.name for service in responses[0].list_services_response.service}
    assert "reelcast.jobs.v1.JobService" in names
    assert _count("reelcast_grpc_server_handled_total", **labels, grpc_code="OK") == before + 1


async def test_a_call_refused_by_authentication_is_counted_with_unauthenticated(
    settings: Settings, bare_host: PluginHost
) -> None:
    settings.auth_required = True
    secured = ReelcastServer(settings, host=bare_host)
    await secured.start()
    labels = {"grpc_type": "unary", "grpc_service": "reelcast.jobs.v1.JobService", "grpc_method": "ListJobs"}
    before = _count("reelcast_grpc_server_handled_total", **labels, grpc_code="UNAUTHENTICATED")
    try:
        async with aio.insecure_channel(secured.target) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            with pytest.raises(aio.AioRpcError) as refused:
                await stub.ListJobs(job_service_pb2.ListJobsRequest())
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await secured.stop(grace=0.5)
    assert _count("reelcast_grpc_server_handled_total", **labels, grpc_code="UNAUTHENTICATED") == before + 1
