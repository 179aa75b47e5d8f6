"""Server reflection under both protocol names: ``grpc.reflection.v1`` and ``grpc.reflection.v1alpha``.

Clients differ in which one they speak: grpcurl and ``buf curl`` try v1 first, older tools know v1alpha only.
grpcio-reflection ships generated code for v1alpha alone. The v1 protocol is v1alpha under a new package name:
the same messages, fields and numbers (grpc's own reflection.proto files differ in nothing else). So v1 is
served by the same servicer, and the v1 descriptor that reflection itself describes is derived from the
v1alpha one by renaming its package, rather than vendoring a second copy of grpc's proto and its generated
code.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc import aio
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha_pb2
from grpc_reflection.v1alpha._async import ReflectionServicer

V1ALPHA_PACKAGE = "grpc.reflection.v1alpha"
V1_PACKAGE = "grpc.reflection.v1"
V1ALPHA_SERVICE = f"{V1ALPHA_PACKAGE}.ServerReflection"
V1_SERVICE = f"{V1_PACKAGE}.ServerReflection"
SERVICE_NAMES = (V1_SERVICE, V1ALPHA_SERVICE)


def _v1_file() -> descriptor_pb2.FileDescriptorProto:
    """grpc/reflection/v1/reflection.proto, rebuilt from the v1alpha file by renaming the package."""
    file = descriptor_pb2.FileDescriptorProto()
    v1alpha_pb2.DESCRIPTOR.CopyToProto(file)
    file.name = "grpc/reflection/v1/reflection.proto"
    file.package = V1_PACKAGE
    old, new = f".{V1ALPHA_PACKAGE}.", f".{V1_PACKAGE}."

    def rename(messages: Iterable[descriptor_pb2.DescriptorProto]) -> None:
        for message in messages:
            for field in message.field:
                if field.HasField("type_name"):  # set only for message and enum fields
                    field.type_name = field.type_name.replace(old, new)
            rename(message.nested_type)

    rename(file.message_type)
    for service in file.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old, new)
            method.output_type = method.output_type.replace(old, new)
    return file


def _register_v1_descriptor(pool: descriptor_pool.DescriptorPool) -> None:
    try:
        pool.FindServiceByName(V1_SERVICE)
    except KeyError:
        pool.Add(_v1_file())


def enable_reflection(service_names: Iterable[str], server: aio.Server) -> None:
    """Serves reflection v1 and v1alpha on ``server``, describing ``service_names`` and both reflection
    services (like grpcio-reflection's ``enable_server_reflection``, which serves v1alpha only)."""
    pool = descriptor_pool.Default()
    _register_v1_descriptor(pool)
    servicer = ReflectionServicer((*service_names, *SERVICE_NAMES), pool=pool)
    # Same wire format, so v1 requests decode with the v1alpha classes and v1alpha replies are v1 replies.
    method = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=v1alpha_pb2.ServerReflectionRequest.FromString,
        response_serializer=v1alpha_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": method})
            for name in SERVICE_NAMES
        ]
    )
