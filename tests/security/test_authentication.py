"""Without valid credentials every RPC is UNAUTHENTICATED and every route 401, with the error body; health,
reflection and the login routes stay open. Sessions, security headers and CORS."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from starlette.routing import Route

from reelcast.bridge import web
from reelcast.bridge.app import ROUTES
from reelcast.jobs.v1 import job_pb2, job_service_pb2
from tests.security.conftest import Secured, SecuredFactory, bearer, rpc_code

JOB_ID = "0123456789abcdef"
RPCS = [
    ("CreateJob", job_service_pb2.CreateJobRequest(spec=job_pb2.JobSpec(brief=job_pb2.Brief(topic="x")))),
    ("GetJob", job_service_pb2.GetJobRequest(job_id=JOB_ID)),
    ("ListJobs", job_service_pb2.ListJobsRequest()),
    ("CancelJob", job_service_pb2.CancelJobRequest(job_id=JOB_ID)),
    ("ListStages", job_service_pb2.ListStagesRequest()),
    ("ListVoices", job_service_pb2.ListVoicesRequest()),
    ("GetCaller", job_service_pb2.GetCallerRequest()),
]
STREAMING_RPCS = [
    ("WatchJob", job_service_pb2.WatchJobRequest(job_id=JOB_ID)),
    (
        "ReadJobArtifact",
        job_service_pb2.ReadJobArtifactRequest(job_id=JOB_ID, kind=job_service_pb2.ARTIFACT_KIND_VIDEO),
    ),
]
BAD_CREDENTIALS = [
    (),
    (("authorization", "Bearer rck_00000000_" + "A" * 43),),
    (("authorization", "Basic dXNlcjpwYXNz"),),
    (("authorization", "Bearer "),),
]
OPEN_ROUTES = {"/", "/healthz", "/api/openapi.json", "/login", "/api/session"}


@pytest.mark.parametrize("metadata", BAD_CREDENTIALS, ids=["none", "unknown-key", "basic", "empty"])
async def test_every_rpc_without_a_valid_key_is_unauthenticated(
    secured: Secured, metadata: tuple[tuple[str, str], ...]
) -> None:
    for name, request in RPCS:
        with pytest.raises(aio.AioRpcError) as failure:
            await getattr(secured.stub, name)(request, metadata=metadata)
        assert rpc_code(failure.value) == (grpc.StatusCode.UNAUTHENTICATED, "E020-UNAUTHENTICATED"), name
    for name, request in STREAMING_RPCS:
        with pytest.raises(aio.AioRpcError) as failure:
            async for _ in getattr(secured.stub, name)(request, metadata=metadata):
                pass
        assert rpc_code(failure.value) == (grpc.StatusCode.UNAUTHENTICATED, "E020-UNAUTHENTICATED"), name


async def test_health_and_reflection_stay_open(secured: Secured) -> None:
    async with aio.insecure_channel(secured.server.target) as channel:
        health: Any = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflection: Any = reflection_pb2_grpc.ServerReflectionStub(channel)  # type: ignore[arg-type]
        responses = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = [s.name async for r in responses for s in r.list_services_response.service]
        assert "reelcast.jobs.v1.JobService" in names


async def test_a_valid_key_is_accepted_and_the_user_reported(secured: Secured) -> None:
    call = secured.stub.ListStages(
        job_service_pb2.ListStagesRequest(), metadata=bearer(secured.keys["alice"])
    )
    await call
    assert ("x-reelcast-user", "alice") in tuple(await call.initial_metadata())


async def test_get_caller_names_the_user_of_a_key_or_session_and_whether_it_is_an_admin(
    secured: Secured,
) -> None:
    for user, admin in (("alice", False), ("bob", False), ("root", True)):
        reply = await secured.stub.GetCaller(
            job_service_pb2.GetCallerRequest(), metadata=bearer(secured.keys[user])
        )
        assert (reply.caller.user, reply.caller.admin) == (user, admin)
    browser = secured.http(None)
    opened = await browser.post("/api/session", json={"apiKey": secured.keys["root"]})
    session = opened.cookies["reelcast_session"]
    reply = await secured.stub.GetCaller(
        job_service_pb2.GetCallerRequest(), metadata=(("authorization", f"Session {session}"),)
    )
    assert (reply.caller.user, reply.caller.admin) == ("root", True)


async def test_every_route_without_credentials_is_401_with_the_error_body(secured: Secured) -> None:
    client = secured.http(None)
    checked = 0
    for route in [*ROUTES, *web.ROUTES]:
        if not isinstance(route, Route) or route.path in OPEN_ROUTES:
            continue
        path = route.path.replace("{job_id}", JOB_ID)
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue
            for headers in ({}, {"Authorization": "Bearer rck_00000000_" + "A" * 43}, {"Authorization": "x"}):
                response = await client.request(method, path, headers=headers, json={"brief": {"topic": "x"}})
                assert response.status_code == 401, (method, path, headers, response.text)
                body = response.json()
                assert body["errorCode"] == "E020-UNAUTHENTICATED"
                assert body["status"] == 401 and body["correlationId"] and body["title"] and body["type"]
                assert response.headers["www-authenticate"].startswith("Bearer")
                checked += 1
    assert checked >= 30
    health = await client.get("/healthz")
    assert health.status_code == 200


async def test_a_session_cookie_is_httponly_strict_and_logout_ends_it(secured: Secured) -> None:
    client = secured.http(None)
    refused = await client.post("/api/session", json={"apiKey": "rck_00000000_" + "B" * 43})
    assert refused.status_code == 401
    opened = await client.post("/api/session", json={"apiKey": secured.keys["alice"]})
    assert opened.status_code == 201 and opened.json() == {"user": "alice"}
    cookie = opened.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert secured.keys["alice"] not in cookie
    assert (await client.get("/api/jobs")).status_code == 200
    cross_site = await client.post(
        "/api/jobs", json={"brief": {"topic": "x"}}, headers={"Origin": "https://evil.example"}
    )
    assert cross_site.status_code == 403 and cross_site.json()["errorCode"] == "E024-ORIGIN_NOT_ALLOWED"
    closed = await client.delete("/api/session")
    assert closed.status_code == 204
    assert (await client.get("/api/jobs")).status_code == 401


async def test_every_response_carries_the_security_headers_and_cors_is_off(secured: Secured) -> None:
    client = secured.http("alice")
    for path in ("/healthz", "/api/jobs", f"/api/jobs/{JOB_ID}", "/no-such-route"):
        response = await client.get(path, headers={"Origin": "https://evil.example"})
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert "access-control-allow-origin" not in response.headers
    preflight = await client.options(
        "/api/jobs", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers


async def test_cors_answers_only_allow_listed_origins(start_secured: SecuredFactory) -> None:
    secured = await start_secured(bridge={"cors_origins": ("https://app.example",)})
    client = secured.http("alice")
    allowed = await client.get("/api/jobs", headers={"Origin": "https://app.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    other = await client.get("/api/jobs", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


async def test_the_web_page_itself_is_open_and_sent_with_its_security_headers(secured: Secured) -> None:
    page = await secured.http(None).get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
