"""User B on user A's job gets NOT_FOUND / 404 and no byte of A's job, on every way in; an admin sees all.
Cursors (Last-Event-ID, the multi-job stream's) never reveal another user's events."""

from __future__ import annotations

from typing import Any

import grpc
import httpx
import pytest
from grpc import aio

from reelcast.bridge.sse import MultiCursor, job_key
from reelcast.jobs.v1 import job_pb2, job_service_pb2
from tests.security.conftest import Secured, bearer, rpc_code

SECRET_TOPIC = "Alice's secret launch plan"


async def _alice_jobs(secured: Secured) -> tuple[job_pb2.Job, job_pb2.Job]:
    """A succeeded job of alice's, and a cancelled (so failed) one."""
    done = await secured.create_job("alice", SECRET_TOPIC)
    cancelled = await secured.create_job("alice", SECRET_TOPIC)
    await secured.stub.CancelJob(
        job_service_pb2.CancelJobRequest(job_id=cancelled.id), metadata=bearer(secured.keys["alice"])
    )
    await secured.finish("alice", done.id)
    await secured.finish("alice", cancelled.id)
    return done, cancelled


async def _drain(stream: Any, into: list[Any]) -> None:
    async for item in stream:
        into.append(item)


def _assert_no_leak(data: bytes | str, *job_ids: str) -> None:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    assert SECRET_TOPIC not in text
    for job_id in job_ids:
        assert job_id not in text


async def test_grpc_calls_on_another_users_job_are_not_found(secured: Secured) -> None:
    done, cancelled = await _alice_jobs(secured)
    bob = bearer(secured.keys["bob"])
    for job in (done, cancelled):
        unary: list[Any] = [
            secured.stub.GetJob(job_service_pb2.GetJobRequest(job_id=job.id), metadata=bob),
            secured.stub.CancelJob(job_service_pb2.CancelJobRequest(job_id=job.id), metadata=bob),
        ]
        for call in unary:
            with pytest.raises(aio.AioRpcError) as failure:
                await call
            assert rpc_code(failure.value) == (grpc.StatusCode.NOT_FOUND, "E003-JOB_NOT_FOUND")
            _assert_no_leak(failure.value.details() or "", job.id)
        streams: list[Any] = [
            secured.stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job.id), metadata=bob),
            secured.stub.WatchJob(
                job_service_pb2.WatchJobRequest(job_id=job.id, after_sequence=3), metadata=bob
            ),
            *(
                secured.stub.ReadJobArtifact(
                    job_service_pb2.ReadJobArtifactRequest(job_id=job.id, kind=kind), metadata=bob
                )
                for kind in (job_service_pb2.ARTIFACT_KIND_VIDEO, job_service_pb2.ARTIFACT_KIND_THUMBNAIL)
            ),
        ]
        for stream in streams:
            received: list[Any] = []
            with pytest.raises(aio.AioRpcError) as failure:
                await _drain(stream, received)
            assert received == []
            assert rpc_code(failure.value) == (grpc.StatusCode.NOT_FOUND, "E003-JOB_NOT_FOUND")
    listed = await secured.stub.ListJobs(job_service_pb2.ListJobsRequest(), metadata=bob)
    assert list(listed.jobs) == []
    # Bob's own job stays his: the cancel above did nothing to alice's job.
    alice_view = await secured.stub.GetJob(
        job_service_pb2.GetJobRequest(job_id=done.id), metadata=bearer(secured.keys["alice"])
    )
    assert alice_view.job.status == job_pb2.JOB_STATUS_SUCCEEDED


async def test_an_admin_sees_and_reads_every_users_jobs(secured: Secured) -> None:
    done, _cancelled = await _alice_jobs(secured)
    root = bearer(secured.keys["root"])
    got = await secured.stub.GetJob(job_service_pb2.GetJobRequest(job_id=done.id), metadata=root)
    assert got.job.owner == "alice"
    listed = await secured.stub.ListJobs(job_service_pb2.ListJobsRequest(), metadata=root)
    assert done.id in {job.id for job in listed.jobs}
    events = [
        e async for e in secured.stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=done.id), metadata=root)
    ]
    assert events[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED
    response = await secured.http("root").get(f"/api/jobs/{done.id}")
    assert response.status_code == 200 and response.json()["jobId"] == done.id


async def test_http_routes_on_another_users_job_are_404_without_its_data(secured: Secured) -> None:
    done, cancelled = await _alice_jobs(secured)
    bob = secured.http("bob")
    requests: list[tuple[str, str, dict[str, str]]] = []
    for job in (done, cancelled):
        for suffix in ("", "/output", "/thumbnail", "/subtitles", "/webvtt", "/failure-details", "/events"):
            requests.append(("GET", f"/api/jobs/{job.id}{suffix}", {}))
        requests += [
            ("GET", f"/api/jobs/{job.id}/events", {"Last-Event-ID": "2"}),
            ("GET", f"/api/jobs/{job.id}/events?lastEventId=1", {}),
            ("GET", f"/api/jobs/{job.id}/output", {"Range": "bytes=0-10"}),
            ("POST", f"/api/jobs/{job.id}/cancel", {}),
            ("POST", f"/api/jobs/{job.id}/stream-token", {}),
            ("GET", f"/api/events?jobs={job.id}", {}),
            ("GET", f"/api/events?jobs={job.id}", {"Last-Event-ID": f"{job_key(job.id)}1"}),
        ]
    for method, url, headers in requests:
        response = await bob.request(method, url, headers=headers)
        assert response.status_code == 404, (method, url, response.text)
        assert response.json()["errorCode"] == "E003-JOB_NOT_FOUND"
        _assert_no_leak(response.content, done.id, cancelled.id)
        _assert_no_leak(str(response.headers), done.id, cancelled.id)
    alice = secured.http("alice")
    assert (await alice.get(f"/api/jobs/{cancelled.id}/failure-details")).status_code == 200
    assert (await alice.get(f"/api/jobs/{done.id}/output")).status_code == 200


async def _read_stream(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    until: bytes = b"",
) -> bytes:
    """The stream's bytes until it ends, or until ``until`` is among them (a stream that never ends)."""
    async with client.stream("GET", url, headers=headers, params=params) as response:
        assert response.status_code == 200, await response.aread()
        body = b""
        async for chunk in response.aiter_bytes():
            body += chunk
            if until and until in body:
                break
        return body


async def test_the_multi_job_stream_and_its_cursor_never_carry_another_users_events(secured: Secured) -> None:
    done, cancelled = await _alice_jobs(secured)
    own = await secured.create_job("bob", "Bob's topic")
    await secured.finish("bob", own.id)
    bob = secured.http("bob")
    # A cursor naming alice's jobs (as if bob had guessed their ids) carries nothing of theirs forward.
    forged = MultiCursor({job_key(done.id): 1, job_key(cancelled.id): 1, job_key(own.id): 0}).encode()
    for headers in (None, {"Last-Event-ID": forged}):
        body = await _read_stream(bob, "/api/events", headers, {"jobs": own.id})
        _assert_no_leak(body, done.id, cancelled.id)
        assert own.id.encode() in body
        assert job_key(done.id).encode() not in body and job_key(cancelled.id).encode() not in body
    # The stream of all of bob's jobs, from the beginning of the history, is bob's job only.
    body = await _read_stream(bob, "/api/events", params={"lastEventId": "0"}, until=b"job-completed")
    _assert_no_leak(body, done.id, cancelled.id)
    assert own.id.encode() in body
    # Bob's own single-job stream, resumed from any cursor, is bob's job only.
    body = await _read_stream(bob, f"/api/jobs/{own.id}/events", {"Last-Event-ID": "1"})
    _assert_no_leak(body, done.id, cancelled.id)
    # The admin's multi-job stream shows every user's jobs.
    everything = await _read_stream(
        secured.http("root"),
        "/api/events",
        {"Last-Event-ID": "0"},
        until=f'"jobId":"{own.id}","status":"Succeeded"'.encode(),
    )
    assert done.id.encode() in everything and own.id.encode() in everything
