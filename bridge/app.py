"""The bridge's Starlette app: routes, the correlation-id middleware, error bodies and the gRPC lifespan."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from grpc import aio
from grpc_health.v1 import health_pb2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reelcast.bridge import rest, streams, web
from reelcast.bridge.openapi import openapi_document
from reelcast.bridge.problems import ApiError, problem_from_rpc_error, problem_response
from reelcast.bridge.state import BridgeSettings, BridgeState, grpc_metadata
from reelcast.bridge.upstream import UpstreamHub
from reelcast.jobs.v1 import job_service_pb2_grpc
from reelcast.server import errors
from reelcast.server.callcontext import accept_correlation_id, correlation_id_var

log = logging.getLogger(__name__)


class CorrelationIdMiddleware:
    """Takes a well-formed ``X-Correlation-ID`` (else generates one), makes it the request's correlation id
    (it then flows into gRPC metadata and the job) and echoes it in the response.

    It is also the last resort for unexpected exceptions: as the outermost handler that knows the id, it
    answers 500 with the error body instead of letting Starlette print a traceback page.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = dict(scope["headers"]).get(b"x-correlation-id", b"").decode("latin-1")
        correlation_id = accept_correlation_id(raw)
        token = correlation_id_var.set(correlation_id)
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-correlation-id", correlation_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error (correlation id %s)", correlation_id)
            if started:
                raise
            await problem_response(ApiError(errors.INTERNAL), correlation_id)(scope, receive, send_with_id)
        finally:
            correlation_id_var.reset(token)


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return problem_response(exc)


async def _rpc_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, grpc.RpcError)
    return problem_response(problem_from_rpc_error(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error = {404: errors.ROUTE_NOT_FOUND, 405: errors.METHOD_NOT_ALLOWED}.get(exc.status_code)
    problem = ApiError(error or errors.INVALID_REQUEST, headers=dict(exc.headers or {}))
    return problem_response(problem)


async def _openapi(request: Request) -> Response:
    return JSONResponse(openapi_document())


ROUTES = [
    Route("/healthz", rest.healthz, methods=["GET"]),
    Route("/api/openapi.json", _openapi, methods=["GET"]),
    Route("/api/stages", rest.list_stages, methods=["GET"]),
    Route("/api/jobs", rest.list_jobs, methods=["GET"]),
    Route("/api/jobs", rest.create_job, methods=["POST"]),
    Route("/api/jobs/{job_id}", rest.get_job, methods=["GET"]),
    Route("/api/jobs/{job_id}/cancel", rest.cancel_job, methods=["POST"]),
    Route("/api/jobs/{job_id}/output", rest.job_output, methods=["GET"]),
    Route("/api/jobs/{job_id}/thumbnail", rest.job_thumbnail, methods=["GET"]),
    Route("/api/jobs/{job_id}/subtitles", rest.job_subtitles, methods=["GET"]),
    Route("/api/jobs/{job_id}/failure-details", rest.failure_details, methods=["GET"]),
    Route("/api/jobs/{job_id}/events", streams.job_events, methods=["GET"]),
    Route("/api/events", streams.events, methods=["GET"]),
]


def create_app(
    grpc_target: str,
    *,
    heartbeat_seconds: float = 15.0,
    retry_ms: int = 3000,
    linger_seconds: float = 30.0,
    max_stream_jobs: int = 100,
    send_timeout_seconds: float | None = None,
) -> Starlette:
    """The bridge in front of the ``JobService`` at ``grpc_target``. The channel opens in the lifespan, so
    the app must run under a server that sends lifespan events (uvicorn does)."""
    settings = BridgeSettings(
        grpc_target=grpc_target,
        heartbeat_seconds=heartbeat_seconds,
        retry_ms=retry_ms,
        linger_seconds=linger_seconds,
        max_stream_jobs=max_stream_jobs,
        # Operators tune it with REELCAST_SSE_SEND_TIMEOUT (seconds, default 30).
        send_timeout_seconds=send_timeout_seconds
        if send_timeout_seconds is not None
        else float(os.environ.get("REELCAST_SSE_SEND_TIMEOUT") or 30.0),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        channel = aio.insecure_channel(grpc_target)
        jobs = job_service_pb2_grpc.JobServiceStub(channel)
        hub = UpstreamHub(jobs, grpc_metadata, linger_seconds=linger_seconds)
        health_check: aio.UnaryUnaryMultiCallable[
            health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
        ] = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        app.state.bridge = BridgeState(settings, channel, jobs, health_check, hub)
        try:
            yield
        finally:
            await hub.close()
            await channel.close()

    return Starlette(
        routes=[*ROUTES, *web.ROUTES],
        middleware=[Middleware(CorrelationIdMiddleware)],
        exception_handlers={
            ApiError: _problem,
            grpc.RpcError: _rpc_error,
            HTTPException: _http_error,
        },
        lifespan=lifespan,
    )
