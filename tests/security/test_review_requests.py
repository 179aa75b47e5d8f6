"""The review routes with authentication on: another user's waiting job is NOT_FOUND / 404 for its script and
its approval, and bad REST input gets its catalogue code and field, never a 500."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from grpc import aio

from reelcast.jobs.v1 import job_pb2, job_service_pb2
from reelcast.plugins.builtin import script
from tests.bridge.conftest import HANG_TIMEOUT
from tests.security.conftest import Secured, SecuredFactory, bearer, rpc_code


async def waiting_job(secured: Secured, user: str) -> job_pb2.Job:
    spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic="Alice's secret otters"), review_script=True)
    metadata = bearer(secured.keys[user])
    job = (await secured.stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec), metadata=metadata)).job

    async def follow() -> None:
        watch = job_service_pb2.WatchJobRequest(job_id=job.id)
        async for event in secured.stub.WatchJob(watch, metadata=metadata):
            if event.job_status == job_pb2.JOB_STATUS_AWAITING_REVIEW:
                return

    await asyncio.wait_for(follow(), HANG_TIMEOUT)
    got = await secured.stub.GetJob(job_service_pb2.GetJobRequest(job_id=job.id), metadata=metadata)
    return got.job


@pytest.fixture
async def secured(start_secured: SecuredFactory) -> Secured:
    # Only the built-in script stage: a job waits for review as soon as its script is written.
    return await start_secured(plugin=script)


async def test_another_users_waiting_job_cannot_be_edited_or_approved(secured: Secured) -> None:
    job = await waiting_job(secured, "alice")
    bob = bearer(secured.keys["bob"])
    scenes = [job_pb2.Scene(narration="Bob's words")]
    calls: list[Any] = [
        secured.stub.UpdateJobScript(
            job_service_pb2.UpdateJobScriptRequest(job_id=job.id, scenes=scenes, expected_revision=1),
            metadata=bob,
        ),
        secured.stub.ApproveJob(job_service_pb2.ApproveJobRequest(job_id=job.id), metadata=bob),
    ]
    for call in calls:
        with pytest.raises(aio.AioRpcError) as failure:
            await call
        assert rpc_code(failure.value) == (grpc.StatusCode.NOT_FOUND, "E003-JOB_NOT_FOUND")
    body = {"scenes": [{"narration": "Bob's words"}], "expectedRevision": 1}
    for response in (
        await secured.http("bob").put(f"/api/jobs/{job.id}/script", json=body),
        await secured.http("bob").post(f"/api/jobs/{job.id}/approve"),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["errorCode"] == "E003-JOB_NOT_FOUND"
        assert "secret" not in response.text
    alice = (await secured.http("alice").get(f"/api/jobs/{job.id}")).json()
    assert alice["status"] == "AwaitingReview" and alice["review"]["revision"] == 1


async def test_bad_review_requests_over_rest_get_their_catalogue_code(secured: Secured) -> None:
    job = await waiting_job(secured, "alice")
    alice = secured.http("alice")
    url = f"/api/jobs/{job.id}/script"
    good = [{"title": "One", "narration": "Otters hold hands while they sleep."}]

    async def problem(response: Any, status: int, code: str) -> list[str]:
        assert response.status_code == status, response.text
        assert response.json()["errorCode"] == code and response.json()["remediation"]
        assert response.json()["correlationId"]
        return [violation["field"] for violation in response.json().get("violations", [])]

    stale = await alice.put(url, json={"scenes": good, "expectedRevision": 7})
    await problem(stale, 409, "E016-REVIEW_REVISION_STALE")
    blank = await alice.put(url, json={"scenes": [{"narration": " "}], "expectedRevision": 1})
    assert await problem(blank, 400, "E001-INVALID_SPEC") == ["scenes[0].narration"]
    no_revision = await alice.put(url, json={"scenes": good})
    assert await problem(no_revision, 400, "E001-INVALID_SPEC") == ["expectedRevision"]
    not_json = await alice.put(url, content=b"{", headers={"Content-Type": "application/json"})
    await problem(not_json, 400, "E002-INVALID_REQUEST")
    text = await alice.put(url, content=b"scenes", headers={"Content-Type": "text/plain"})
    await problem(text, 415, "E012-UNSUPPORTED_MEDIA_TYPE")
    wrong_type = await alice.post(f"/api/jobs/{job.id}/approve", json={"scenes": "all of them"})
    assert await problem(wrong_type, 400, "E001-INVALID_SPEC") == ["scenes"]

    edited = await alice.put(url, json={"scenes": good, "expectedRevision": 1})
    assert edited.status_code == 200 and edited.json()["review"]["revision"] == 2
    approved = await alice.post(f"/api/jobs/{job.id}/approve")
    assert approved.status_code == 200 and approved.json()["review"]["approved"] is True
    again = await alice.post(f"/api/jobs/{job.id}/approve")
    await problem(again, 409, "E015-JOB_NOT_AWAITING_REVIEW")
    events = await secured.finish("alice", job.id)
    assert events[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED
