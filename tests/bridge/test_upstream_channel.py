"""The bridge's channel to the JobService (bridge/channel.py): a unary call that the server takes and never
answers ends at the upstream deadline as a clear E013 error, never a hung browser request; the channel retries
as reelcast.client does, so its CreateJob always carries an idempotency key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from grpc import aio

from reelcast.bridge.app import create_app
from reelcast.bridge.server import serve_app
from reelcast.jobs.v1 import job_service_pb2_grpc
from tests.bridge.conftest import HANG_TIMEOUT

DEADLINE_SECONDS = 1.0


class SilentJobService(job_service_pb2_grpc.JobServiceServicer):
    """Takes every call and never answers (a wedged server): records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.called = asyncio.Event()

    async def _hang(self, name: str, request: Any) -> Any:
        self.calls.append((name, request))
        self.called.set()
        await asyncio.sleep(3600)

    async def CreateJob(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:  # noqa: N802
        return await self._hang("CreateJob", request)

    async def GetJob(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:  # noqa: N802
        return await self._hang("GetJob", request)

    async def ListJobs(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:  # noqa: N802
        return await self._hang("ListJobs", request)

    async def CancelJob(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:  # noqa: N802
        return await self._hang("CancelJob", request)

    async def ListStages(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:  # noqa: N802
        return await self._hang("ListStages", request)

    async def CreateWebhook(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:  # noqa: N802
        return await self._hang("CreateWebhook", request)

    async def ListWebhooks(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:  # noqa: N802
        return await self._hang("ListWebhooks", request)

    async def DeleteWebhook(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:  # noqa: N802
        return await self._hang("DeleteWebhook", request)

    async def RotateWebhookSecret(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:  # noqa: N802
        return await self._hang("RotateWebhookSecret", request)

    async def ReplayWebhook(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:  # noqa: N802
        return await self._hang("ReplayWebhook", request)

    async def ListVoices(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:  # noqa: N802
        return await self._hang("ListVoices", request)

    async def GetCaller(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:  # noqa: N802
        return await self._hang("GetCaller", request)

    async def UpdateJobScript(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:  # noqa: N802
        return await self._hang("UpdateJobScript", request)

    async def ApproveJob(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:  # noqa: N802
        return await self._hang("ApproveJob", request)

    async def ListThemes(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:  # noqa: N802
        return await self._hang("ListThemes", request)

    async def UploadMedia(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:  # noqa: N802
        return await self._hang("UploadMedia", request)

    async def GetMedia(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:  # noqa: N802
        return await self._hang("GetMedia", request)

    async def ListMedia(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:  # noqa: N802
        return await self._hang("ListMedia", request)

    async def DeleteMedia(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:  # noqa: N802
        return await self._hang("DeleteMedia", request)

    async def RetryJob(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:  # noqa: N802
        return await self._hang("RetryJob", request)

    async def DeleteJob(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:  # noqa: N802
        return await self._hang("DeleteJob", request)

    async def WatchJob(  # noqa: N802
        self, request: Any, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        yield await self._hang("WatchJob", request)

    async def WatchJobs(  # noqa: N802
        self, request: Any, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        yield await self._hang("WatchJobs", request)

    async def ReadJobArtifact(  # noqa: N802
        self, request: Any, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        yield await self._hang("ReadJobArtifact", request)


@pytest.fixture
async def silent_service() -> AsyncIterator[tuple[SilentJobService, str]]:
    service = SilentJobService()
    server = aio.server()
    job_service_pb2_grpc.add_JobServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield service, f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=None)


@pytest.fixture
async def bridge_before_silent_service(
    silent_service: tuple[SilentJobService, str],
) -> AsyncIterator[tuple[SilentJobService, httpx.AsyncClient]]:
    service, target = silent_service
    app = create_app(target, auth_required=False, upstream_deadline_seconds=DEADLINE_SECONDS)
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve_app(app, "127.0.0.1:0", stop=stop, on_ready=ready.set_result))
    port = await asyncio.wait_for(ready, HANG_TIMEOUT)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=HANG_TIMEOUT) as client:
            yield service, client
    finally:
        stop.set()
        await asyncio.wait_for(task, HANG_TIMEOUT)


@pytest.mark.parametrize(
    ("method", "path", "rpc"),
    [
        ("GET", "/api/stages", "ListStages"),
        ("GET", "/api/jobs", "ListJobs"),
        ("POST", "/api/jobs", "CreateJob"),
        ("GET", "/api/jobs/job-1", "GetJob"),
        ("POST", "/api/jobs/job-1/cancel", "CancelJob"),
        ("GET", "/api/jobs/job-1/events", "GetJob"),
        ("GET", "/api/voices", "ListVoices"),
        ("GET", "/api/me", "GetCaller"),
    ],
)
async def test_a_unary_call_the_server_never_answers_ends_at_the_deadline_with_e013(
    bridge_before_silent_service: tuple[SilentJobService, httpx.AsyncClient], method: str, path: str, rpc: str
) -> None:
    service, client = bridge_before_silent_service
    body = {"brief": {"topic": "Deadlines"}} if method == "POST" and rpc == "CreateJob" else None
    # Without a deadline the request hangs until httpx gives up (HANG_TIMEOUT) and this raises ReadTimeout.
    response = await client.request(method, path, json=body)
    assert response.status_code == 503, response.text
    problem = response.json()
    assert problem["errorCode"] == "E013-UPSTREAM_UNAVAILABLE"
    assert problem["correlationId"] and problem["remediation"]
    assert [name for name, _request in service.calls] == [rpc], "the call reached the server, unanswered"


async def test_the_bridge_sends_create_job_an_idempotency_key_so_a_retry_creates_no_second_job(
    bridge_before_silent_service: tuple[SilentJobService, httpx.AsyncClient],
) -> None:
    service, client = bridge_before_silent_service
    response = await client.post("/api/jobs", json={"brief": {"topic": "Retried"}})
    assert response.status_code == 503
    [(name, request)] = service.calls
    assert name == "CreateJob" and request.request_id


@pytest.mark.parametrize("seconds", [0.0, -1.0])
def test_a_deadline_that_is_not_positive_is_refused(seconds: float) -> None:
    with pytest.raises(ValueError, match="deadline"):
        create_app("127.0.0.1:1", upstream_deadline_seconds=seconds)
