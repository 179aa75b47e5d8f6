"""The bridge's Starlette app: routes, the correlation-id middleware, error bodies and the gRPC lifespan."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
from grpc import aio
from grpc_health.v1 import health_pb2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reelcast.bridge import channel, login, media, rest, streams, themes, web, webhooks
from reelcast.bridge.auth import AuthMiddleware, credential_fingerprint, credential_var
from reelcast.bridge.eventstream import StreamHandOff
from reelcast.bridge.hosts import HostCheckMiddleware, HostRule
from reelcast.bridge.limits import StreamSlots
from reelcast.bridge.metrics import metrics
from reelcast.bridge.openapi import openapi_document
from reelcast.bridge.problems import ApiError, problem_from_rpc_error, problem_response
from reelcast.bridge.settings import BridgeSettings, split_listen
from reelcast.bridge.state import BridgeState, grpc_metadata
from reelcast.bridge.upstream import UpstreamHub
from reelcast.jobs import errors
from reelcast.jobs.metadata import CORRELATION_ID_HEADER, accept_correlation_id, correlation_id_var
from reelcast.jobs.tracing import TRACEPARENT_HEADER, parse_traceparent, span
from reelcast.jobs.v1 import job_service_pb2_grpc

log = logging.getLogger(__name__)

# Sent with every response. They matter most for HTML (the web page), and cost nothing on JSON, SSE and
# media: nothing may frame the bridge, sniff a type, load from elsewhere, or learn a URL (which may carry a
# stream token) through the Referer header.
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


class CorrelationIdMiddleware:
    """Takes a well-formed ``X-Correlation-ID`` (else generates one), makes it the request's correlation id
    (it then flows into gRPC metadata and the job) and echoes it in the response.

    It is also the last resort for unexpected exceptions: as the outermost handler that knows the id, it
    answers 500 (``E500-INTERNAL``) with the error body instead of letting Starlette print a traceback page;
    the details go to the log only. Being outermost, it also adds the security headers to every response.

    It opens the request's span too (a child of the caller's W3C ``traceparent`` when one came): the gRPC
    calls the request makes carry it on (client/connection.py), named after the route once routing found it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = dict(scope["headers"]).get(CORRELATION_ID_HEADER.encode(), b"").decode("latin-1")
        correlation_id = accept_correlation_id(raw)
        token = correlation_id_var.set(correlation_id)
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [
                    *message.get("headers", []),
                    (CORRELATION_ID_HEADER.encode(), correlation_id.encode()),
                    *SECURITY_HEADERS,
                ]
            await send(message)

        caller = parse_traceparent(
            dict(scope["headers"]).get(TRACEPARENT_HEADER.encode(), b"").decode("latin-1")
        )
        method = scope.get("method", "GET")
        with span(f"{method} {scope['path']}", parent=caller, kind="server") as request_span:
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                log.exception("unhandled error (correlation id %s)", correlation_id)
                if started:
                    raise
                await problem_response(ApiError(errors.INTERNAL), correlation_id)(
                    scope, receive, send_with_id
                )
            finally:
                correlation_id_var.reset(token)
                route = getattr(scope.get("route"), "path", None)
                if route:  # the template, not the path: span names must not hold job ids
                    request_span.update_name(f"{method} {route}")


class BridgeApp(Starlette):
    """Starlette with :class:`~reelcast.bridge.eventstream.StreamHandOff` outside its whole middleware stack
    (Starlette's own error middleware included), so an SSE stream's body runs outside all of it."""

    def build_middleware_stack(self) -> ASGIApp:
        return StreamHandOff(super().build_middleware_stack())


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
    return JSONResponse(openapi_document(auth_required=request.app.state.bridge.settings.auth_required))


ROUTES = [
    Route("/healthz", rest.healthz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/api/openapi.json", _openapi, methods=["GET"]),
    Route("/login", login.login, methods=["GET"]),
    Route("/api/session", login.open_session, methods=["POST"]),
    Route("/api/session", login.close_session, methods=["DELETE"]),
    Route("/api/jobs/{job_id}/stream-token", login.stream_token, methods=["POST"]),
    Route("/api/stages", rest.list_stages, methods=["GET"]),
    Route("/api/themes", themes.list_themes, methods=["GET"]),
    Route("/api/themes/{name}/preview.png", themes.theme_preview, methods=["GET"]),
    Route("/api/jobs", rest.list_jobs, methods=["GET"]),
    Route("/api/jobs", rest.create_job, methods=["POST"]),
    Route("/api/jobs/{job_id}", rest.get_job, methods=["GET"]),
    Route("/api/jobs/{job_id}", rest.delete_job, methods=["DELETE"]),
    Route("/api/jobs/{job_id}/cancel", rest.cancel_job, methods=["POST"]),
    Route("/api/jobs/{job_id}/retry", rest.retry_job, methods=["POST"]),
    Route("/api/jobs/{job_id}/script", rest.update_script, methods=["PUT"]),
    Route("/api/jobs/{job_id}/approve", rest.approve_job, methods=["POST"]),
    Route("/api/jobs/{job_id}/output", rest.job_output, methods=["GET"]),
    Route("/api/jobs/{job_id}/thumbnail", rest.job_thumbnail, methods=["GET"]),
    Route("/api/jobs/{job_id}/subtitles", rest.job_subtitles, methods=["GET"]),
    Route("/api/jobs/{job_id}/webvtt", rest.job_webvtt, methods=["GET"]),
    Route("/api/jobs/{job_id}/preview", rest.job_preview, methods=["GET"]),
    Route("/api/jobs/{job_id}/failure-details", rest.failure_details, methods=["GET"]),
    Route("/api/jobs/{job_id}/events", streams.job_events, methods=["GET"]),
    Route("/api/events", streams.events, methods=["GET"]),
    Route("/api/media", media.upload_media, methods=["POST"]),
    Route("/api/media", media.list_media, methods=["GET"]),
    Route("/api/media/{mediaId}", media.get_media, methods=["GET"]),
    Route("/api/media/{mediaId}", media.delete_media, methods=["DELETE"]),
    Route("/api/webhooks", webhooks.list_webhooks, methods=["GET"]),
    Route("/api/webhooks", webhooks.create_webhook, methods=["POST"]),
    Route("/api/webhooks/{webhookId}", webhooks.delete_webhook, methods=["DELETE"]),
    Route("/api/webhooks/{webhookId}/rotate-secret", webhooks.rotate_webhook_secret, methods=["POST"]),
    Route("/api/webhooks/{webhookId}/replay", webhooks.replay_webhook, methods=["POST"]),
]


def create_app(settings: BridgeSettings | str, /, **overrides: Any) -> Starlette:
    """The bridge in front of the ``JobService`` at ``settings.grpc_target``. The channel opens in the
    lifespan, so the app must run under a server that sends lifespan events (uvicorn does).

    ``settings`` are the bridge's (bridge/settings.py), or the gRPC target alone: then the rest comes from the
    ``REELCAST_*`` variables, as for a bridge that another program embeds (and secure by default, as the
    server's settings are). ``overrides`` replace single fields of them (``heartbeat_seconds=0.5``)."""
    if isinstance(settings, str):
        settings = dataclasses.replace(BridgeSettings.from_env(), grpc_target=settings)
    settings = dataclasses.replace(settings, **overrides)
    channel.check_channel_settings(settings.upstream_deadline_seconds, settings.upstream_keepalive_seconds)
    grpc_target = settings.grpc_target

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        upstream = channel.open_channel(
            grpc_target,
            settings.grpc_root_certificates(),
            deadline_seconds=settings.upstream_deadline_seconds,
            keepalive_seconds=settings.upstream_keepalive_seconds,
        )
        jobs = job_service_pb2_grpc.JobServiceStub(upstream)
        hub = UpstreamHub(
            jobs,
            grpc_metadata,
            linger_seconds=settings.linger_seconds,
            credential=lambda: credential_fingerprint(credential_var.get()),
        )
        health_check: aio.UnaryUnaryMultiCallable[
            health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
        ] = upstream.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        app.state.bridge = BridgeState(
            settings,
            upstream,
            jobs,
            health_check,
            hub,
            StreamSlots(settings.max_sse_connections_per_user),
        )
        try:
            yield
        finally:
            await hub.close()
            await upstream.close()

    middleware = [
        Middleware(CorrelationIdMiddleware),
        Middleware(
            HostCheckMiddleware, rule=HostRule(split_listen(settings.http_listen)[0], settings.allowed_hosts)
        ),
    ]
    if settings.cors_origins:  # CORS is off unless an allow-list is configured
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_credentials=True,
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "X-Correlation-ID"],
                expose_headers=["X-Correlation-ID", "Retry-After", "Location"],
            )
        )
    middleware.append(
        Middleware(
            AuthMiddleware,
            required=settings.auth_required,
            allowed_origins=settings.cors_origins,
        )
    )
    routes = [route for route in ROUTES if settings.metrics_route or getattr(route, "path", "") != "/metrics"]
    app = BridgeApp(
        routes=[*routes, *web.ROUTES],
        middleware=middleware,
        exception_handlers={
            ApiError: _problem,
            grpc.RpcError: _rpc_error,
            HTTPException: _http_error,
        },
        lifespan=lifespan,
    )
    # serve_app reads the HTTP server's own settings (TLS, head cap, request timeout) from here.
    app.state.settings = settings
    return app
