"""The page follows every job of its user on one stream (/api/events without a job list, WatchJobs): a job
created elsewhere, here through gRPC after the page connected, appears in the list and follows its events
without a reload; one deleted elsewhere leaves the list."""

from __future__ import annotations

import pytest
from grpc import aio
from playwright.async_api import expect

from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from tests.security.conftest import bearer
from tests.web.conftest import Deployment, HeldSnapshot, PageSession

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_job_created_through_grpc_after_the_page_connected_appears_and_updates_live(
    logged_in: PageSession, deployment: Deployment
) -> None:
    page = logged_in.page
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    assert deployment.api_key is not None
    metadata = bearer(deployment.api_key)
    async with aio.insecure_channel(deployment.server.target) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic="Made elsewhere, seen here"))
        job = (await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec), metadata=metadata)).job
        row = page.locator(f'#jobs-list [data-job-id="{job.id}"]')
        await expect(row.locator(".job-topic")).to_have_text("Made elsewhere, seen here")
        # Its later events arrive on the same stream: cancelled through gRPC, the row says so (no render).
        await stub.CancelJob(job_service_pb2.CancelJobRequest(job_id=job.id), metadata=metadata)
        await expect(row.locator(".badge")).to_have_text("Cancelled")
        await stub.DeleteJob(job_service_pb2.DeleteJobRequest(job_id=job.id), metadata=metadata)
        await expect(row).to_have_count(0)


async def test_a_snapshot_answered_after_the_deletion_elsewhere_does_not_bring_the_job_back(
    logged_in: PageSession, deployment: Deployment
) -> None:
    """The page fetches a job's final snapshot when its stream brings the end. A deletion elsewhere that
    arrives before that answer left the answer to put the row back for good (seen in CI). The network holds
    the real answer here until the deletion has reached the page."""
    page = logged_in.page
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    assert deployment.api_key is not None
    metadata = bearer(deployment.api_key)
    snapshot = HeldSnapshot()

    async with aio.insecure_channel(deployment.server.target) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic="Deleted while its snapshot travels"))
        job = (await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec), metadata=metadata)).job
        row = page.locator(f'#jobs-list [data-job-id="{job.id}"]')
        await expect(row.locator(".job-topic")).to_have_text("Deleted while its snapshot travels")
        await page.route(f"**/api/jobs/{job.id}", snapshot.route)
        try:
            await stub.CancelJob(job_service_pb2.CancelJobRequest(job_id=job.id), metadata=metadata)
            await expect(row.locator(".badge")).to_have_text("Cancelled")
            await snapshot.wait_held()
            await stub.DeleteJob(job_service_pb2.DeleteJobRequest(job_id=job.id), metadata=metadata)
            await expect(row).to_have_count(0)
            await snapshot.deliver(page)
            await expect(row).to_have_count(0)
        finally:
            snapshot.release()
            await page.unroute(f"**/api/jobs/{job.id}")
