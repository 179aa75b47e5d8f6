"""Per-user limits: open SSE connections (429 + Retry-After), job creation rate (429 / RESOURCE_EXHAUSTED),
queued plus running jobs, request and message sizes, and the spec's bounds."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import httpx
import pytest
from grpc import aio

from reelcast.jobs.status import decode_rpc_error
from reelcast.jobs.v1 import job_pb2, job_service_pb2
from tests.security.conftest import SecuredFactory, bearer, rpc_code
from tests.stages import PipelinePlugin


async def _open_stream(
    stack: contextlib.AsyncExitStack, client: httpx.AsyncClient, url: str
) -> httpx.Response:
    response = await stack.enter_async_context(client.stream("GET", url))
    return response


async def test_the_ninth_sse_connection_gets_429_and_closing_one_admits_another(
    start_secured: SecuredFactory,
) -> None:
    secured = await start_secured(plugin=PipelinePlugin(hang_at="script"))
    job = await secured.create_job("alice")
    alice = secured.http("alice")
    url = f"/api/jobs/{job.id}/events"
    async with contextlib.AsyncExitStack() as outer:
        streams = []
        for _ in range(7):
            stack = await outer.enter_async_context(contextlib.AsyncExitStack())
            streams.append((stack, await _open_stream(stack, alice, url)))
        last = contextlib.AsyncExitStack()
        # The eighth on the multi-job stream: the allowance is per user, across both endpoints.
        multi = await _open_stream(last, alice, f"/api/events?jobs={job.id}")
        assert multi.status_code == 200
        assert all(response.status_code == 200 for _, response in streams)
        refused = await alice.get(url)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) > 0
        assert refused.json()["errorCode"] == "E023-TOO_MANY_STREAMS"
        # Another user is not affected by alice's streams.
        other = await secured.create_job("bob")
        async with secured.http("bob").stream("GET", f"/api/jobs/{other.id}/events") as bobs:
            assert bobs.status_code == 200
        await last.aclose()
        for _ in range(50):
            async with alice.stream("GET", url) as admitted:
                if admitted.status_code == 200:
                    break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("closing a stream did not free its slot")


async def test_job_creation_is_rate_limited_per_user_on_grpc_and_http(start_secured: SecuredFactory) -> None:
    secured = await start_secured(job_create_burst=3, job_create_rate_per_minute=1.0)
    for _ in range(3):
        await secured.create_job("alice")
    with pytest.raises(aio.AioRpcError) as failure:
        await secured.create_job("alice")
    assert rpc_code(failure.value) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "E021-RATE_LIMITED")
    assert (decode_rpc_error(failure.value).retry_after or 0) > 0
    response = await secured.http("alice").post("/api/jobs", json={"brief": {"topic": "x"}})
    assert response.status_code == 429 and response.json()["errorCode"] == "E021-RATE_LIMITED"
    assert int(response.headers["retry-after"]) >= 1
    # Bob has his own bucket.
    assert (await secured.http("bob").post("/api/jobs", json={"brief": {"topic": "x"}})).status_code == 201


async def test_queued_plus_running_jobs_per_user_are_capped(start_secured: SecuredFactory) -> None:
    secured = await start_secured(plugin=PipelinePlugin(hang_at="script"), max_active_jobs_per_user=2)
    first = await secured.create_job("alice")
    await secured.create_job("alice")
    with pytest.raises(aio.AioRpcError) as failure:
        await secured.create_job("alice")
    assert rpc_code(failure.value) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "E022-TOO_MANY_ACTIVE_JOBS")
    response = await secured.http("alice").post("/api/jobs", json={"brief": {"topic": "x"}})
    assert response.status_code == 429 and "retry-after" in response.headers
    await secured.stub.CancelJob(
        job_service_pb2.CancelJobRequest(job_id=first.id), metadata=bearer(secured.keys["alice"])
    )
    await secured.finish("alice", first.id)
    await secured.create_job("alice")


async def test_bodies_and_messages_are_size_capped(start_secured: SecuredFactory) -> None:
    secured = await start_secured(grpc_max_message_bytes=64 * 1024)
    big = {"brief": {"topic": "x", "goal": "y" * 70_000}}
    response = await secured.http("alice").post("/api/jobs", json=big)
    assert response.status_code == 413 and response.json()["errorCode"] == "E008-BODY_TOO_LARGE"
    spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic="x", goal="y" * 100_000))
    with pytest.raises(aio.AioRpcError) as failure:
        await secured.stub.CreateJob(
            job_service_pb2.CreateJobRequest(spec=spec), metadata=bearer(secured.keys["alice"])
        )
    assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"plan": {"targetDurationSeconds": 601}}, "plan.targetDurationSeconds"),
        ({"render": {"width": 3840, "height": 2162}}, "render.height"),
        ({"render": {"width": 4096, "height": 2160}}, "render.width"),
        ({"brief": {"topic": "x" * 501}}, "brief.topic"),
        ({"script": [{"narration": "n"}] * 101}, "script"),
        ({"script": [{"narration": "n" * 2001}]}, "script[0].narration"),
    ],
)
async def test_specs_beyond_the_bounds_are_refused(
    start_secured: SecuredFactory, body: dict[str, object], field: str
) -> None:
    secured = await start_secured()
    payload = {"brief": {"topic": "x"}, **body}
    response = await secured.http("alice").post("/api/jobs", json=payload)
    assert response.status_code == 400, response.text
    assert field in {v["field"] for v in response.json()["violations"]}


async def test_the_largest_allowed_spec_is_accepted(start_secured: SecuredFactory) -> None:
    secured = await start_secured(plugin=PipelinePlugin(hang_at="script"))
    for width, height in ((3840, 2160), (2160, 3840)):
        payload = {
            "brief": {"topic": "x" * 500},
            "plan": {"targetDurationSeconds": 600},
            "render": {"width": width, "height": height},
        }
        response = await secured.http("alice").post("/api/jobs", json=payload)
        assert response.status_code == 201, response.text


async def test_resource_quotas_are_per_user_and_answer_429_with_usage_over_http(
    start_secured: SecuredFactory,
) -> None:
    secured = await start_secured(max_queued_render_seconds_per_user=60.0, max_stored_bytes_per_user=10)
    alice = secured.http("alice")
    long_job = {"brief": {"topic": "x"}, "plan": {"targetDurationSeconds": 61}}
    refused = await alice.post("/api/jobs", json=long_job)
    assert refused.status_code == 429, refused.text
    body = refused.json()
    assert body["errorCode"] == "E061-RENDER_TIME_QUOTA_EXCEEDED"
    assert "limit of 60 s" in body["detail"] and body["remediation"] and body["correlationId"]
    assert int(refused.headers["retry-after"]) >= 1

    finished = await secured.create_job("alice")
    await secured.finish("alice", finished.id)
    refused = await alice.post("/api/jobs", json={"brief": {"topic": "x"}})
    assert refused.status_code == 429, refused.text
    assert refused.json()["errorCode"] == "E062-STORAGE_QUOTA_EXCEEDED"
    assert "retry-after" not in refused.headers  # waiting frees nothing: deleting does
    # Bob's quotas are his own.
    assert (await secured.http("bob").post("/api/jobs", json={"brief": {"topic": "x"}})).status_code == 201
    assert (await alice.delete(f"/api/jobs/{finished.id}")).status_code == 204
    assert (await alice.post("/api/jobs", json={"brief": {"topic": "x"}})).status_code == 201
