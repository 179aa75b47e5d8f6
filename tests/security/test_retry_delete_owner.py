"""RetryJob and DeleteJob are the owner's: anyone else gets the 404 of a job that does not exist, on gRPC and
REST, and the job is left as it was."""

from __future__ import annotations

import grpc
import pytest
from grpc import aio

from reelcast.jobs.v1 import job_pb2, job_service_pb2
from tests.security.conftest import Secured, SecuredFactory, bearer, rpc_code
from tests.stages import PipelinePlugin


async def test_another_user_cannot_retry_or_delete_a_job_and_gets_404(start_secured: SecuredFactory) -> None:
    secured: Secured = await start_secured(plugin=PipelinePlugin(fail_at="render"))
    job = await secured.create_job("alice")
    assert (await secured.finish("alice", job.id))[-1].job_status == job_pb2.JOB_STATUS_FAILED
    for call in (
        secured.stub.RetryJob(
            job_service_pb2.RetryJobRequest(job_id=job.id), metadata=bearer(secured.keys["bob"])
        ),
        secured.stub.DeleteJob(
            job_service_pb2.DeleteJobRequest(job_id=job.id), metadata=bearer(secured.keys["bob"])
        ),
    ):
        with pytest.raises(aio.AioRpcError) as raised:
            await call
        assert rpc_code(raised.value) == (grpc.StatusCode.NOT_FOUND, "E003-JOB_NOT_FOUND")
    bob = secured.http("bob")
    for method, path in (("POST", f"/api/jobs/{job.id}/retry"), ("DELETE", f"/api/jobs/{job.id}")):
        response = await bob.request(method, path)
        assert response.status_code == 404 and response.json()["errorCode"] == "E003-JOB_NOT_FOUND"
    unchanged = await secured.stub.GetJob(
        job_service_pb2.GetJobRequest(job_id=job.id), metadata=bearer(secured.keys["alice"])
    )
    assert unchanged.job.status == job_pb2.JOB_STATUS_FAILED and unchanged.job.attempt == 1

    alice = secured.http("alice")
    assert (await alice.delete(f"/api/jobs/{job.id}")).status_code == 204
    assert (await alice.get(f"/api/jobs/{job.id}")).status_code == 404
