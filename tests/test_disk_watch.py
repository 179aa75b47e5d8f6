"""Free disk space is watched while a stage writes, not only between stages: a stage that fills the disk
is stopped mid-way with E601-LOW_DISK_SPACE."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reelcast.jobs.v1 import job_pb2, job_service_pb2
from reelcast.plugins import Stage, StageContext, hookimpl
from reelcast.server.app import ReelcastServer

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub as Stub

CHUNK = 8 * 1024 * 1024
MAX_BYTES = 768 * 1024 * 1024
HEADROOM = 64 * 1024 * 1024


class DiskFillingPlugin:
    """One stage that writes up to ``MAX_BYTES`` in chunks, reporting after each: a render that grows."""

    def __init__(self) -> None:
        self.written = 0

    @hookimpl
    def register_stages(self, register: Callable[[Stage], None]) -> None:
        register(Stage(name="render", title="Rendering", weight=1.0, order=1, run=self._fill))

    async def _fill(self, ctx: StageContext) -> dict[str, Any]:
        chunk = b"\xa5" * CHUNK
        with ctx.path("growing.bin").open("wb") as handle:
            while self.written < MAX_BYTES:
                handle.write(chunk)
                handle.flush()
                self.written += CHUNK
                ctx.report(self.written / MAX_BYTES, f"{self.written >> 20} MiB written")
                await asyncio.sleep(0.05)
        return {"output": {"video_path": str(ctx.path("growing.bin")), "size_bytes": self.written}}


async def test_a_stage_that_fills_the_disk_is_stopped_mid_stage_with_e601(
    server: ReelcastServer, stub: Stub
) -> None:
    plugin = DiskFillingPlugin()
    server.host.register(plugin, "filler")
    # The threshold sits just below today's free space: the stage starts, then its writes cross it.
    server.settings.min_free_disk_bytes = shutil.disk_usage(server.settings.data_dir).free - HEADROOM
    spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic="disk"))
    job = (await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec))).job
    try:
        request = job_service_pb2.WatchJobRequest(job_id=job.id)
        events = await asyncio.wait_for(_collect(stub, request), 120)
    finally:
        shutil.rmtree(server.settings.work_dir(job.id), ignore_errors=True)
    terminal = events[-1]
    assert terminal.kind == job_pb2.EVENT_KIND_JOB_FAILED
    assert [error.code for error in terminal.errors] == ["E601-LOW_DISK_SPACE"]
    assert terminal.errors[0].remediation
    assert terminal.failure.stage == "render"
    # It ran and wrote before it was stopped, and stopped long before it was done.
    assert any(e.kind == job_pb2.EVENT_KIND_STEP_PROGRESS and e.stage == "render" for e in events)
    assert HEADROOM <= plugin.written < MAX_BYTES
    final = (await stub.GetJob(job_service_pb2.GetJobRequest(job_id=job.id))).job
    assert {step.name: step.status for step in final.steps} == {"render": job_pb2.STEP_STATUS_FAILED}


async def _collect(stub: Stub, request: job_service_pb2.WatchJobRequest) -> list[job_pb2.JobProgress]:
    return [event async for event in stub.WatchJob(request)]
