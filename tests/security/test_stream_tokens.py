"""Stream tokens (``?token=``): signed by the server for one job and one user, short-lived; rejected when
expired, forged, for another job or for another user, and good for nothing but reading their own job."""

from __future__ import annotations

import grpc
import pytest
from grpc import aio

from reelcast.jobs.v1 import job_pb2, job_service_pb2
from reelcast.server.security.auth import StreamTokens, load_or_create_secret
from tests.security.conftest import Secured, rpc_code


async def _token(secured: Secured, user: str, job_id: str) -> str:
    response = await secured.http(user).post(f"/api/jobs/{job_id}/stream-token")
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def _signer(secured: Secured, ttl: float = 600.0) -> StreamTokens:
    """Signs with the server's real secret, so only the claims differ from a token the server issued."""
    return StreamTokens(load_or_create_secret(secured.server.settings.stream_token_secret_path), ttl)


async def test_a_stream_token_opens_its_own_job_for_reading_without_other_credentials(
    secured: Secured,
) -> None:
    job = await secured.create_job("alice")
    other = await secured.create_job("alice")
    await secured.finish("alice", job.id)
    token = await _token(secured, "alice", job.id)
    anonymous = secured.http(None)
    events = await anonymous.get(f"/api/jobs/{job.id}/events", params={"token": token})
    assert events.status_code == 200 and "job-completed" in events.text
    assert (await anonymous.get(f"/api/jobs/{job.id}", params={"token": token})).status_code == 200
    assert (await anonymous.get(f"/api/jobs/{job.id}/output", params={"token": token})).status_code == 200
    # Not for listing, creating, cancelling or the multi-job stream.
    assert (await anonymous.get("/api/jobs", params={"token": token})).status_code == 401
    assert (await anonymous.get("/api/events", params={"token": token})).status_code == 401
    both = {"token": token, "jobs": f"{job.id},{other.id}"}
    assert (await anonymous.get("/api/events", params=both)).status_code == 401
    assert (await anonymous.post(f"/api/jobs/{job.id}/cancel", params={"token": token})).status_code == 401
    with pytest.raises(aio.AioRpcError) as failure:
        await secured.stub.CreateJob(
            job_service_pb2.CreateJobRequest(spec=job_pb2.JobSpec(brief=job_pb2.Brief(topic="x"))),
            metadata=(("authorization", f"StreamToken {token}"),),
        )
    assert rpc_code(failure.value)[0] == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(aio.AioRpcError) as failure:  # nor for asking who it acts as
        await secured.stub.GetCaller(
            job_service_pb2.GetCallerRequest(), metadata=(("authorization", f"StreamToken {token}"),)
        )
    assert rpc_code(failure.value)[0] == grpc.StatusCode.UNAUTHENTICATED


async def test_stream_tokens_are_rejected_when_expired_forged_or_for_another_job_or_user(
    secured: Secured,
) -> None:
    alice_job = await secured.create_job("alice")
    other_alice_job = await secured.create_job("alice")
    bob_job = await secured.create_job("bob")
    for user, job in (("alice", alice_job), ("alice", other_alice_job), ("bob", bob_job)):
        await secured.finish(user, job.id)
    good = await _token(secured, "alice", alice_job.id)
    signer = _signer(secured)
    alice_key, bob_key = secured.key_ids["alice"], secured.key_ids["bob"]
    payload, _, signature = good.partition(".")
    rejected = {
        "expired": _signer(secured, ttl=-1).issue("alice", alice_key, alice_job.id),
        "forged signature": f"{payload}.{signature[::-1]}",
        "other secret": StreamTokens(b"x" * 32, 600).issue("alice", alice_key, alice_job.id),
        "garbage": "not-a-token",
        "for another job": await _token(secured, "alice", other_alice_job.id),
        "bob's token for bob's job": await _token(secured, "bob", bob_job.id),
        "signed for bob with alice's key": signer.issue("bob", alice_key, alice_job.id),
        "signed for bob with bob's key": signer.issue("bob", bob_key, alice_job.id),
    }
    anonymous = secured.http(None)
    for reason, token in rejected.items():
        for suffix in ("", "/events", "/output"):
            response = await anonymous.get(f"/api/jobs/{alice_job.id}{suffix}", params={"token": token})
            assert response.status_code in (401, 404), (reason, suffix, response.status_code)
            assert alice_job.id not in response.text
    assert (
        await anonymous.get(f"/api/jobs/{alice_job.id}/events", params={"token": good})
    ).status_code == 200


async def test_another_user_cannot_get_a_token_for_a_job_that_is_not_theirs(secured: Secured) -> None:
    job = await secured.create_job("alice")
    response = await secured.http("bob").post(f"/api/jobs/{job.id}/stream-token")
    assert response.status_code == 404
