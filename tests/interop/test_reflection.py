"""Reflection and health: a client that knows nothing but the server's address finds JobService, builds a
CreateJobRequest from the descriptors the server sends, creates a job, and sees health SERVING.

The reflection client is grpc's synchronous one, so it runs in a worker thread while the server under test
keeps the event loop."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from reelcast.server.app import ReelcastServer
from tests.stages import PipelinePlugin

SERVICE = "reelcast.jobs.v1.JobService"


def create_job_by_reflection(target: str, topic: str) -> tuple[list[str], dict[str, Any], bool]:
    """Lists the services, then calls CreateJob with request and response classes built only from reflected
    descriptors. Returns the services, the response as JSON, and whether the classes came from a pool
    other than the default one (where the generated reelcast code registers itself)."""
    with grpc.insecure_channel(target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = list(database.get_services())
        pool = descriptor_pool.DescriptorPool(database)
        method = pool.FindServiceByName(SERVICE).FindMethodByName("CreateJob")
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        request = request_class()
        json_format.ParseDict({"spec": {"brief": {"topic": topic}}, "requestId": "reflected-1"}, request)
        create_job: grpc.UnaryUnaryMultiCallable[Any, Any] = channel.unary_unary(
            f"/{SERVICE}/{method.name}",
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        response = create_job(request, timeout=30)
        private_pool = request_class.DESCRIPTOR.file.pool is not descriptor_pool.Default()
        return services, json_format.MessageToDict(response), private_pool


async def test_create_job_from_reflected_descriptors_only(server: ReelcastServer) -> None:
    server.host.register(PipelinePlugin(), "pipeline")

    services, response, private_pool = await asyncio.to_thread(
        create_job_by_reflection, server.target, "Reflected"
    )

    assert SERVICE in services
    assert "grpc.health.v1.Health" in services
    assert private_pool, "the request class must come from the reflected descriptors"
    job = response["job"]
    assert job["spec"]["brief"]["topic"] == "Reflected"
    assert job["status"] in ("JOB_STATUS_QUEUED", "JOB_STATUS_RUNNING")
    assert [step["name"] for step in job["steps"]] == ["script", "voice", "visuals", "render", "postprocess"]
    stored = await server.store.get_job(job["id"])
    assert stored is not None and stored.spec.brief.topic == "Reflected"


async def test_health_reports_serving_for_the_server_and_for_job_service(server: ReelcastServer) -> None:
    async with aio.insecure_channel(server.target) as channel:
        health: Any = health_pb2_grpc.HealthStub(channel)  # the stubs declare no methods on HealthStub
        for service in ("", SERVICE):
            response = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert response.status == health_pb2.HealthCheckResponse.SERVING, service
