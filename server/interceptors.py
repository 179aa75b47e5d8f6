"""Cross-cutting work of every RPC: the correlation id (taken from metadata or generated, echoed back)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc
from grpc import aio

from reelcast.server.callcontext import CORRELATION_ID_HEADER, accept_correlation_id, correlation_id_var

# Subscripted only for the type checker: grpc's runtime class is not generic.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


def _metadata_value(details: grpc.HandlerCallDetails, key: str) -> str | None:
    for item_key, value in details.invocation_metadata or ():
        if item_key == key:
            return value if isinstance(value, str) else value.decode("utf-8", errors="replace")
    return None


class CorrelationIdInterceptor(aio.ServerInterceptor):
    """Sets ``correlation_id_var`` for the handler and sends it as ``x-correlation-id`` initial metadata.

    The variable is set inside the wrapped handler rather than here, because grpc.aio does not promise
    to run the handler in the interceptor's context.
    """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        correlation_id = accept_correlation_id(_metadata_value(handler_call_details, CORRELATION_ID_HEADER))
        return _wrap(handler, correlation_id)


def _wrap(handler: Handler, correlation_id: str) -> Handler:
    async def begin(context: aio.ServicerContext[Any, Any]) -> None:
        correlation_id_var.set(correlation_id)
        await context.send_initial_metadata(((CORRELATION_ID_HEADER, correlation_id),))

    if handler.unary_unary is not None:
        inner_unary: Any = handler.unary_unary

        async def unary_unary(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
            await begin(context)
            return await inner_unary(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, handler.request_deserializer, handler.response_serializer
        )
    if handler.unary_stream is not None:
        inner_stream: Any = handler.unary_stream

        async def unary_stream(request: Any, context: aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            await begin(context)
            async for response in inner_stream(request, context):
                yield response

        return grpc.unary_stream_rpc_method_handler(
            unary_stream, handler.request_deserializer, handler.response_serializer
        )
    # Streaming-request methods (reflection) need no correlation id of ours.
    return handler
