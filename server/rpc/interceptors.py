"""Cross-cutting work of every RPC: metrics, correlation id, authentication, the last-resort error guard.

:class:`MetricsInterceptor` goes first (outermost), so that it counts every call, refused ones included,
with the status the client got. :class:`CallContextInterceptor` does the rest, in this order, inside the
wrapped handler (grpc.aio does not promise to run the handler in the interceptor's context, so ContextVars
are set there), for unary-request methods and for reflection's request stream alike:

1. the correlation id: taken from ``x-correlation-id`` if well formed, else generated; sent back in initial
   metadata;
2. authentication (when an :class:`Authenticator` is given): ``authorization`` metadata becomes the caller's
   identity in ``caller_var``/``admin_var``; without a valid credential the call is UNAUTHENTICATED. Health
   and reflection stay open. A stream re-checks its key every ``recheck_seconds`` and ends UNAUTHENTICATED
   once the key is revoked (or its session ended). ``x-reelcast-session`` opens or closes a browser session
   (server/security/auth.py);
3. a request message that does not parse (corrupt wire format, a string that is not UTF-8) is
   ``E002-INVALID_REQUEST``: grpc would log the parse error with a traceback and answer UNKNOWN;
4. an unexpected exception becomes ``E500-INTERNAL`` with the correlation id. Its details go to the server
   log only: grpc's default would send the exception's text to the client.

A unary call (and UploadMedia) runs in a server span named after the method, a child of the caller's W3C
``traceparent`` metadata when it sent one (reelcast.jobs.tracing). Streams get none: a WatchJob lasts as long
as its job, and a span that stays open for hours is what a trace should not hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc
from google.protobuf.message import DecodeError
from grpc import aio

from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.jobs.metadata import (
    AUTHORIZATION_HEADER,
    CORRELATION_ID_HEADER,
    SESSION_HEADER,
    USER_HEADER,
    accept_correlation_id,
    correlation_id_var,
)
from reelcast.jobs.tracing import TRACEPARENT_HEADER, SpanReference, parse_traceparent, span
from reelcast.server.metrics import GRPC_HANDLED, GRPC_HANDLING, GRPC_STARTED
from reelcast.server.rpc.abort import abort
from reelcast.server.security.auth import TOKEN_METHODS, Authenticator, Principal, principal_var
from reelcast.server.security.callcontext import admin_var, caller_var

log = logging.getLogger(__name__)

# Subscripted only for the type checker: grpc's runtime class is not generic.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Context: TypeAlias = "aio.ServicerContext[Any, Any]"
_END = object()
OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.", "/grpc.reflection.v1.")


class _MalformedRequest:
    """What a request message that does not parse becomes, so that its handler can refuse it as bad input: a
    deserializer that raises is grpc's own business (a logged traceback and UNKNOWN with the error's text)."""

    def __init__(self, problem: str) -> None:
        self.problem = problem


def _malformed(request: _MalformedRequest) -> ReelcastError:
    return ReelcastError(errors.INVALID_REQUEST, f"The request does not parse: {request.problem}")


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None
    parse = deserializer

    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as error:
            return _MalformedRequest(str(error))

    return deserialize


def _metadata_value(details: grpc.HandlerCallDetails, key: str) -> str | None:
    for item_key, value in details.invocation_metadata or ():
        if item_key == key:
            return value if isinstance(value, str) else value.decode("utf-8", errors="replace")
    return None


class CallContextInterceptor(aio.ServerInterceptor):
    """Correlation id, authentication (unless ``authenticator`` is None) and the error guard."""

    def __init__(self, authenticator: Authenticator | None = None, recheck_seconds: float = 1.0) -> None:
        self.authenticator = authenticator
        self.recheck_seconds = recheck_seconds

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        correlation_id = accept_correlation_id(_metadata_value(handler_call_details, CORRELATION_ID_HEADER))
        method = handler_call_details.method or ""
        is_open = method.startswith(OPEN_SERVICES)
        call = _Call(
            self,
            method.rsplit("/", 1)[-1],
            correlation_id,
            None if is_open else _metadata_value(handler_call_details, AUTHORIZATION_HEADER),
            authenticate=self.authenticator is not None and not is_open,
            session_request=_metadata_value(handler_call_details, SESSION_HEADER),
            span_name=method.lstrip("/"),
            caller_span=parse_traceparent(_metadata_value(handler_call_details, TRACEPARENT_HEADER)),
        )
        return call.wrap(handler)


class _Call:
    """One call's identity work, shared by the unary and streaming wrappers."""

    def __init__(
        self,
        owner: CallContextInterceptor,
        method: str,
        correlation_id: str,
        authorization: str | None,
        authenticate: bool,
        session_request: str | None = None,
        span_name: str = "",
        caller_span: SpanReference | None = None,
    ) -> None:
        self.owner = owner
        self.span_name = span_name
        self.caller_span = caller_span
        self.method = method
        self.correlation_id = correlation_id
        self.authorization = authorization
        self.authenticate = authenticate
        self.session_request = session_request

    async def begin(self, request: Any, context: Context) -> Principal | None:
        correlation_id_var.set(self.correlation_id)
        metadata = [(CORRELATION_ID_HEADER, self.correlation_id)]
        principal = None
        if self.authenticate:
            assert self.owner.authenticator is not None
            principal = await self.owner.authenticator.authenticate(self.authorization)
            if principal is not None and principal.job_id is not None:
                # A stream token opens only its own job, and only for reading.
                job_id = getattr(request, "job_id", None)
                if self.method not in TOKEN_METHODS or job_id != principal.job_id:
                    principal = None
            if principal is None:
                await context.send_initial_metadata(metadata)
                await abort(context, ReelcastError(errors.UNAUTHENTICATED))
            caller_var.set(principal.user)
            admin_var.set(principal.admin)
            principal_var.set(principal)
            metadata.append((USER_HEADER, principal.user))
            if self.session_request == "open":
                session = await self.owner.authenticator.open_session(principal)
                if session is not None:
                    metadata.append((SESSION_HEADER, session))
            elif self.session_request == "close":
                await self.owner.authenticator.close_session(principal)
        await context.send_initial_metadata(metadata)
        if isinstance(request, _MalformedRequest):
            await abort(context, _malformed(request))
        return principal

    async def internal_error(self, context: Context, unexpected: Exception) -> None:
        log.error(
            "unexpected error in %s (correlation id %s)",
            self.method,
            self.correlation_id,
            exc_info=unexpected,
        )
        await abort(context, ReelcastError(errors.INTERNAL))

    def wrap(self, handler: Handler) -> Handler:
        if handler.unary_unary is not None:
            inner_unary: Any = handler.unary_unary

            async def unary_unary(request: Any, context: Context) -> Any:
                with span(self.span_name, parent=self.caller_span, kind="server"):
                    await self.begin(request, context)
                    try:
                        return await inner_unary(request, context)
                    except (aio.AbortError, asyncio.CancelledError):
                        raise
                    except Exception as unexpected:
                        await self.internal_error(context, unexpected)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, _tolerant(handler.request_deserializer), handler.response_serializer
            )
        if handler.unary_stream is not None:
            inner_stream: Any = handler.unary_stream

            async def unary_stream(request: Any, context: Context) -> AsyncIterator[Any]:
                principal = await self.begin(request, context)
                started = inner_stream(request, context)
                if not inspect.isasyncgen(started):
                    # A handler that writes with ``context.write`` (health's Watch) is a coroutine.
                    try:
                        await started
                    except (aio.AbortError, asyncio.CancelledError):
                        raise
                    except Exception as unexpected:
                        await self.internal_error(context, unexpected)
                    return
                responses = started
                try:
                    if principal is None:
                        async for response in responses:
                            yield response
                    else:
                        async for response in self._while_valid(principal, responses, context):
                            yield response
                except (aio.AbortError, asyncio.CancelledError):
                    raise
                except Exception as unexpected:
                    await self.internal_error(context, unexpected)
                finally:
                    await responses.aclose()

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, _tolerant(handler.request_deserializer), handler.response_serializer
            )
        if handler.stream_unary is not None:  # UploadMedia
            inner_client_stream: Any = handler.stream_unary

            async def stream_unary(requests: AsyncIterator[Any], context: Context) -> Any:
                with span(self.span_name, parent=self.caller_span, kind="server"):
                    await self.begin(None, context)
                    try:
                        return await inner_client_stream(self._parsed(requests, context), context)
                    except (aio.AbortError, asyncio.CancelledError):
                        raise
                    except Exception as unexpected:
                        await self.internal_error(context, unexpected)

            return grpc.stream_unary_rpc_method_handler(
                stream_unary, _tolerant(handler.request_deserializer), handler.response_serializer
            )
        if handler.stream_stream is not None:  # reflection (open to all)
            inner_bidi: Any = handler.stream_stream

            async def stream_stream(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
                await self.begin(None, context)
                responses = inner_bidi(self._parsed(requests, context), context)
                try:
                    async for response in responses:
                        yield response
                finally:
                    await responses.aclose()

            return grpc.stream_stream_rpc_method_handler(
                stream_stream, _tolerant(handler.request_deserializer), handler.response_serializer
            )
        return handler

    @staticmethod
    async def _parsed(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
        """The requests; a message that does not parse ends the call with ``E002-INVALID_REQUEST``."""
        async for request in requests:
            if isinstance(request, _MalformedRequest):
                await abort(context, _malformed(request))
            yield request

    async def _while_valid(
        self, principal: Principal, responses: AsyncIterator[Any], context: Context
    ) -> AsyncIterator[Any]:
        """``responses`` while the principal's key stays valid: a revoked key's stream ends within about
        ``recheck_seconds``, with UNAUTHENTICATED, even while the stream waits for its next event."""
        authenticator = self.owner.authenticator
        assert authenticator is not None
        iterator = aiter(responses)
        pending: asyncio.Future[Any] | None = None
        loop = asyncio.get_running_loop()
        recheck = self.owner.recheck_seconds
        last_check = loop.time()
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(iterator, _END))
                timeout = max(0.0, last_check + recheck - loop.time())
                done, _ = await asyncio.wait({pending}, timeout=timeout)
                if loop.time() - last_check >= recheck:
                    if not await authenticator.still_valid(principal):
                        await abort(context, ReelcastError(errors.UNAUTHENTICATED, "The key was revoked."))
                    last_check = loop.time()
                if not done:
                    continue
                response = pending.result()
                pending = None
                if response is _END:
                    return
                yield response
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending  # also retrieves an exception it may have finished with


class MetricsInterceptor(aio.ServerInterceptor):
    """Counts and times every RPC as go-grpc-prometheus does: ``reelcast_grpc_server_started_total`` when a
    call starts, ``reelcast_grpc_server_handled_total`` with its status code and
    ``reelcast_grpc_server_handling_seconds`` when it ends (a stream when its last message went, or when it
    was cancelled)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        service, _, method = (handler_call_details.method or "").lstrip("/").rpartition("/")
        return _measured(handler, service, method)


class _Measurement:
    def __init__(self, grpc_type: str, service: str, method: str) -> None:
        self.labels = {"grpc_type": grpc_type, "grpc_service": service, "grpc_method": method}
        GRPC_STARTED.labels(**self.labels).inc()
        self.started = time.monotonic()

    def done(self, context: Context, failure: BaseException | None = None) -> None:
        code = _status_code(context, failure)
        GRPC_HANDLED.labels(**self.labels, grpc_code=code.name).inc()
        GRPC_HANDLING.labels(**self.labels).observe(time.monotonic() - self.started)


def _status_code(context: Context, failure: BaseException | None) -> grpc.StatusCode:
    """The status the client gets: what the handler set or aborted with; CANCELLED when the call was
    cancelled; UNKNOWN (grpc's own answer) for an exception that escaped."""
    if isinstance(failure, (asyncio.CancelledError, GeneratorExit)):
        return grpc.StatusCode.CANCELLED
    try:
        code: grpc.StatusCode | None = context.code()  # None until the handler sets or aborts with one
    except Exception:  # a context without this (experimental) method: fall back to the outcome
        code = None
    if code is not None:
        return code
    return grpc.StatusCode.OK if failure is None else grpc.StatusCode.UNKNOWN


async def _drain(result: Any) -> AsyncGenerator[Any, None]:
    """A streaming handler's responses, whether it yields them or writes them with ``context.write``."""
    if inspect.isasyncgen(result):
        try:
            async for response in result:
                yield response
        finally:
            await result.aclose()
    else:
        await result


def _measured_unary_response(inner: Any, grpc_type: str, service: str, method: str) -> Any:
    """Wraps a handler that answers with one message (unary or client-streaming) in a measurement."""

    async def measured(request: Any, context: Context) -> Any:
        measurement = _Measurement(grpc_type, service, method)
        try:
            response = await inner(request, context)
        except BaseException as failure:
            measurement.done(context, failure)
            raise
        measurement.done(context)
        return response

    return measured


def _measured(handler: Handler, service: str, method: str) -> Handler:
    request_deserializer = handler.request_deserializer
    response_serializer = handler.response_serializer
    if handler.unary_unary is not None:
        unary_unary = _measured_unary_response(handler.unary_unary, "unary", service, method)
        return grpc.unary_unary_rpc_method_handler(unary_unary, request_deserializer, response_serializer)
    if handler.stream_unary is not None:
        stream_unary = _measured_unary_response(handler.stream_unary, "client_stream", service, method)
        return grpc.stream_unary_rpc_method_handler(stream_unary, request_deserializer, response_serializer)
    streaming: Any = handler.unary_stream if handler.unary_stream is not None else handler.stream_stream
    grpc_type = "server_stream" if handler.unary_stream is not None else "bidi_stream"

    async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
        measurement = _Measurement(grpc_type, service, method)
        responses = _drain(streaming(request, context))
        failure: BaseException | None = None
        try:
            async for response in responses:
                yield response
        except BaseException as caught:
            failure = caught
            raise
        finally:
            await responses.aclose()
            measurement.done(context, failure)

    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(stream, request_deserializer, response_serializer)
    return grpc.stream_stream_rpc_method_handler(stream, request_deserializer, response_serializer)
