"""Free disk space is watched while a stage writes, not only between stages: a stage that fills the disk
is stopped mid-way with E601-LOW_DISK_SPACE."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO

import pytest

from reelcast.jobs.v1 import job_pb2, job_service_pb2
from reelcast.plugins import Stage, StageContext, hookimpl
from reelcast.server.app import ReelcastServer

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub as Stub

CHUNK = 8 * 1024 * 1024
MAX_BYTES = 768 * 1024 * 1024
HEADROOM = 64 * 1024 * 1024


class DiskFillingPlugin:
    """One stage that writes up to ``MAX_BYTES`` in chunks, reporting after each: a render that grows. As a
    coroutine, or as a plain function (run in a worker thread, which checks ``raise_if_cancelled``)."""

    def __init__(self, in_thread: bool) -> None:
        self.in_thread = in_thread
        self.written = 0
        self.ended = threading.Event()

    @hookimpl
    def register_stages(self, register: Callable[[Stage], None]) -> None:
        run = self._fill_in_thread if self.in_thread else self._fill
        register(Stage(name="render", title="Rendering", weight=1.0, order=1, run=run))

    def _write_chunk(self, ctx: StageContext, handle: BinaryIO) -> None:
        handle.write(b"\xa5" * CHUNK)
        handle.flush()
        self.written += CHUNK
        ctx.report(self.written / MAX_BYTES, f"{self.written >> 20} MiB written")

    def _output(self, ctx: StageContext) -> dict[str, Any]:
        return {"output": {"video_path": str(ctx.path("growing.bin")), "size_bytes": self.written}}

    async def _fill(self, ctx: StageContext) -> dict[str, Any]:
        try:
            with ctx.path("growing.bin").open("wb") as handle:
                while self.written < MAX_BYTES:
                    self._write_chunk(ctx, handle)
                    await asyncio.sleep(0.05)
            return self._output(ctx)
        finally:
            self.ended.set()

    def _fill_in_thread(self, ctx: StageContext) -> dict[str, Any]:
        try:
            with ctx.path("growing.bin").open("wb") as handle:
                while self.written < MAX_BYTES:
                    ctx.raise_if_cancelled()
                    self._write_chunk(ctx, handle)
                    time.sleep(0.05)
            return self._output(ctx)
        finally:
            self.ended.set()


@pytest.mark.parametrize("in_thread", [False, True], ids=["coroutine", "thread"])
async def test_a_stage_that_fills_the_disk_is_stopped_mid_stage_with_e601(
    server: ReelcastServer, stub: Stub, in_thread: bool
) -> None:
    plugin = DiskFillingPlugin(in_thread)
    server.host.register(plugin, "filler")
    # The threshold sits just below today's free space: the stage starts, then its writes cross it.
    server.settings.min_free_disk_bytes = shutil.disk_usage(server.settings.data_dir).free - HEADROOM
    spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic="disk"))
    job = (await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec))).job
    try:
        request = job_service_pb2.WatchJobRequest(job_id=job.id)
        events = await asyncio.wait_for(_collect(stub, request), 120)
        # The stage itself stopped writing, in a thread too (not merely the job's record of it).
        assert await asyncio.to_thread(plugin.ended.wait, 60)
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
