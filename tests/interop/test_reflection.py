"""Reflection and health: a client that knows nothing but the server's address finds JobService, builds a
CreateJobRequest from the descriptors the server sends, creates a job, and sees health SERVING. Reflection is
served as v1alpha (grpcio-reflection's client) and as v1 (``buf curl --reflect-protocol grpc-v1``, and a raw
call with no generated v1 code).

The reflection client is grpc's synchronous one, so it runs in a worker thread while the server under test
keeps the event loop."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
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


BUF = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "buf"
V1_METHOD = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"


async def buf_curl(*arguments: str) -> str:
    """Runs ``buf curl`` told to speak reflection v1 only (no fallback to v1alpha) and returns its stdout."""
    assert BUF.exists(), "run `make node_modules/.installed` (buf comes from @bufbuild/buf)"
    process = await asyncio.create_subprocess_exec(
        str(BUF),
        "curl",
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        "--reflect-protocol",
        "grpc-v1",
        *arguments,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


async def test_buf_curl_speaking_only_reflection_v1_lists_and_calls_job_service(
    server: ReelcastServer,
) -> None:
    server.host.register(PipelinePlugin(), "pipeline")
    base = f"http://{server.target}"

    methods = (await buf_curl("--list-methods", base)).split()
    stages = json.loads(await buf_curl("-d", "{}", f"{base}/{SERVICE}/ListStages"))

    assert f"{SERVICE}/CreateJob" in methods
    assert f"{SERVICE}/WatchJob" in methods
    assert f"{SERVICE}/ListVoices" in methods
    assert f"{SERVICE}/GetCaller" in methods
    assert "grpc.reflection.v1.ServerReflection/ServerReflectionInfo" in methods
    assert [stage["name"] for stage in stages["stages"]] == [
        "script",
        "voice",
        "visuals",
        "render",
        "postprocess",
    ]


async def test_a_raw_reflection_v1_call_lists_both_reflection_versions(server: ReelcastServer) -> None:
    # ServerReflectionRequest{list_services: ""} written by hand (field 7, length 0): no generated v1 code.
    list_services = b"\x3a\x00"
    async with aio.insecure_channel(server.target) as channel:
        reflect: aio.StreamStreamMultiCallable[bytes, bytes] = channel.stream_stream(V1_METHOD)
        call = reflect(iter([list_services]), timeout=10)
        replies = [reply async for reply in call]

    # v1 and v1alpha share every message and field number; only the package differs, so the v1alpha class
    # reads a v1 reply.
    reply = reflection_pb2.ServerReflectionResponse.FromString(replies[0])
    names = {service.name for service in reply.list_services_response.service}
    assert {
        SERVICE,
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= names
