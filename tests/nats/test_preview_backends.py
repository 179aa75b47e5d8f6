"""The growing preview's path through the server on both backends (SQLite and NATS JetStream,
tests/nats/conftest.py): a stage publishes a file (``StageContext.publish_preview``), the job's log carries
it on a step-progress event, ``Job.preview`` names the latest, ``ReadJobArtifact(PREVIEW)`` serves it (on
NATS from the object store, where the worker put it) only while it is the latest, and the job's completion
clears it. The stage here is this test's own, registered through the real hook; the render stage's previews
are tested in tests/test_segment_render.py and the page's in tests/web/test_preview_page.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from grpc import aio

from reelcast.jobs.status import decode_rpc_error
from reelcast.jobs.v1 import job_pb2, job_service_pb2
from reelcast.plugins import Stage, StageContext, hookimpl
from reelcast.server.app import ReelcastServer
from tests.bridge.conftest import HANG_TIMEOUT

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub as Stub

# Not videos: the server serves a preview's bytes as they are, whatever a stage wrote.
PARTS = [b"first part " * 100, b"first and second parts " * 300]


class PreviewingStage:
    """Publishes two previews, then waits until the test lets it end."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    @hookimpl
    def register_stages(self, register: Callable[[Stage], None]) -> None:
        register(Stage(name="render", title="Rendering", weight=1.0, order=400, run=self._run))

    async def _run(self, ctx: StageContext) -> dict[str, Any]:
        ctx.path("previews").mkdir(parents=True, exist_ok=True)
        for number, data in enumerate(PARTS, start=1):
            ctx.path(f"previews/preview-{number}.mp4").write_bytes(data)
            await ctx.publish_preview(f"previews/preview-{number}.mp4", 2.0 * number, 6.0)
        while not self.release.is_set():
            ctx.report(0.5, "waiting")
            await asyncio.sleep(0.05)
        ctx.path("video.mp4").write_bytes(b"the whole video")
        return {"video": "video.mp4"}


async def _read(stub: Stub, job_id: str, revision: int) -> bytes:
    request = job_service_pb2.ReadJobArtifactRequest(
        job_id=job_id, kind=job_service_pb2.ARTIFACT_KIND_PREVIEW, preview_revision=revision
    )
    return b"".join([chunk.data async for chunk in stub.ReadJobArtifact(request)])


async def _not_found(stub: Stub, job_id: str, revision: int) -> None:
    with pytest.raises(aio.AioRpcError) as refused:
        await _read(stub, job_id, revision)
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    assert decode_rpc_error(refused.value).code == "E005-ARTIFACT_NOT_FOUND"


async def test_a_published_preview_is_an_event_the_jobs_latest_preview_and_readable_until_the_job_completes(
    server: ReelcastServer, stub: Stub
) -> None:
    stage = PreviewingStage()
    server.host.register(stage, "previewing")
    spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic="Otters"))
    job_id = (await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec))).job.id

    async def latest() -> job_pb2.Job:
        return (await stub.GetJob(job_service_pb2.GetJobRequest(job_id=job_id))).job

    async def until_revision(revision: int) -> job_pb2.Job:
        while True:  # polled, as a client of GetJob would
            job = await latest()
            if job.preview.revision >= revision:
                return job
            await asyncio.sleep(0.05)

    job = await asyncio.wait_for(until_revision(2), HANG_TIMEOUT)
    assert job.status == job_pb2.JOB_STATUS_RUNNING
    assert (job.preview.duration_seconds, job.preview.total_seconds) == (4.0, 6.0)
    assert await _read(stub, job_id, 2) == PARTS[1]
    assert await _read(stub, job_id, 0) == PARTS[1]  # the latest
    await _not_found(stub, job_id, 1)  # replaced: never served in place of the longer one

    stage.release.set()
    events = [
        event
        async for event in stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job_id), timeout=HANG_TIMEOUT)
    ]
    published = [event for event in events if event.HasField("preview")]
    assert [event.kind for event in published] == [job_pb2.EVENT_KIND_STEP_PROGRESS] * 2
    assert [event.preview.revision for event in published] == [1, 2]
    assert [event.preview.duration_seconds for event in published] == [2.0, 4.0]
    assert all(event.stage == "render" for event in published)
    assert events[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED
    finished = await latest()
    assert finished.status == job_pb2.JOB_STATUS_SUCCEEDED and not finished.HasField("preview")
    await _not_found(stub, job_id, 0)
