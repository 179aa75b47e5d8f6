"""Reliability: stalls, retention, disk space, restarts mid-job, attempts and graceful shutdown."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from grpc import aio

from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from reelcast.server.app import ReelcastServer
from reelcast.server.storage.retention import collect_garbage
from tests.processes import ALL_BUILTINS, ServerProcess
from tests.stages import PipelinePlugin

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub as Stub


def spec(topic: str = "reliability") -> job_pb2.JobSpec:
    return job_pb2.JobSpec(brief=job_pb2.Brief(topic=topic))


async def run_to_end(stub: Stub, topic: str = "reliability") -> list[job_pb2.JobProgress]:
    job = (await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec(topic)))).job
    request = job_service_pb2.WatchJobRequest(job_id=job.id)
    return await asyncio.wait_for(_collect(stub, request), 60)


async def _collect(stub: Stub, request: job_service_pb2.WatchJobRequest) -> list[job_pb2.JobProgress]:
    return [event async for event in stub.WatchJob(request)]


def child_sleep_processes() -> list[int]:
    """PIDs of `sleep` processes whose parent is this test process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        if name == "sleep" and parent == os.getpid():
            found.append(int(entry.name))
    return found


async def test_a_stalled_stage_is_stopped_and_fails_with_e305(server: ReelcastServer, stub: Stub) -> None:
    server.settings.stall_timeout_seconds = 1.0
    server.host.register(PipelinePlugin(hang_at="render"), "pipeline")
    events = await run_to_end(stub)
    terminal = events[-1]
    assert terminal.kind == job_pb2.EVENT_KIND_JOB_FAILED
    assert [error.code for error in terminal.errors] == ["E305-JOB_STALLED"]
    assert terminal.failure.stage == "render"
    assert terminal.failure.suggested_actions
    for _ in range(50):  # the hung subprocess is killed, not left behind
        if not child_sleep_processes():
            break
        await asyncio.sleep(0.1)
    assert child_sleep_processes() == []


async def test_a_stage_that_keeps_reporting_is_not_stalled(server: ReelcastServer, stub: Stub) -> None:
    server.settings.stall_timeout_seconds = 0.5
    server.host.register(PipelinePlugin(delay=0.1), "pipeline")  # each stage runs ~0.4 s, reporting
    events = await run_to_end(stub)
    assert events[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED


async def test_low_disk_space_fails_the_next_stage_with_e601(server: ReelcastServer, stub: Stub) -> None:
    server.settings.min_free_disk_bytes = 1 << 62
    server.host.register(PipelinePlugin(), "pipeline")
    events = await run_to_end(stub)
    assert [error.code for error in events[-1].errors] == ["E601-LOW_DISK_SPACE"]
    assert events[-1].errors[0].remediation


async def test_retention_deletes_expired_jobs_and_leaves_live_ones(
    server: ReelcastServer, stub: Stub
) -> None:
    server.host.register(PipelinePlugin(), "pipeline")
    finished = await run_to_end(stub, "old")
    finished_id = finished[-1].job_id
    work_dir = server.settings.work_dir(finished_id)
    log = server.settings.ffmpeg_logs_dir / f"{finished_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("ffmpeg log\n")
    assert work_dir.exists()
    await server.runner.stop()
    live = (await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec("live")))).job

    assert await collect_garbage(server.settings, server.store) == []  # not expired yet
    removed = await collect_garbage(server.settings, server.store, now=time.time() + 8 * 24 * 3600)

    assert removed == [finished_id]
    assert await server.store.get_job(finished_id) is None
    assert await server.store.events_after(finished_id, 0, 10) == []
    assert not work_dir.exists()
    assert not log.exists()
    assert (await server.store.get_job(live.id)) is not None


def test_gc_command_removes_expired_jobs(tmp_path: Path) -> None:
    async def prepare() -> str:
        from reelcast.plugins.host import PluginHost
        from reelcast.server.config import Settings

        server = ReelcastServer(
            Settings(data_dir=tmp_path / "data", grpc_listen="127.0.0.1:0"),
            host=PluginHost.load(builtins=False),
        )
        server.host.register(PipelinePlugin(), "pipeline")
        await server.start()
        try:
            async with aio.insecure_channel(server.target) as channel:
                events = await run_to_end(job_service_pb2_grpc.JobServiceStub(channel))
                return events[-1].job_id
        finally:
            await server.stop(grace=0.5)

    job_id = asyncio.run(prepare())
    assert (tmp_path / "data" / "jobs" / job_id).exists()
    command = [
        sys.executable,
        "-m",
        "reelcast.cli",
        "gc",
        "--data-dir",
        str(tmp_path / "data"),
        "--older-than",
        "0",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    assert "removed 1 finished job" in result.stdout
    assert not (tmp_path / "data" / "jobs" / job_id).exists()


@pytest.fixture
def slow_plugin_server(installed_sample_plugin: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(
        tmp_path / "data",
        env={
            "PYTHONPATH": str(installed_sample_plugin),
            "REELCAST_DISABLED_PLUGINS": ALL_BUILTINS,
            "REELCAST_SAMPLE_DELAY": "0.6",
            "REELCAST_SHUTDOWN_GRACE": "0.2",
        },
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


async def _start_and_wait_running(target: str) -> str:
    async with aio.insecure_channel(target) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        job = (await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec()))).job
        async for event in stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job.id)):
            if event.kind == job_pb2.EVENT_KIND_STEP_PROGRESS:
                return job.id
    raise AssertionError("the job never reported progress")


async def _follow(target: str, job_id: str, after: int) -> list[job_pb2.JobProgress]:
    async with aio.insecure_channel(target) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        request = job_service_pb2.WatchJobRequest(job_id=job_id, after_sequence=after)
        return await asyncio.wait_for(_collect(stub, request), 60)


async def test_a_job_killed_mid_stage_resumes_after_restart(slow_plugin_server: ServerProcess) -> None:
    job_id = await _start_and_wait_running(slow_plugin_server.target)
    before = await _follow_until_cut(slow_plugin_server.target, job_id)
    slow_plugin_server.kill()
    slow_plugin_server.start()
    after = await _follow(slow_plugin_server.target, job_id, before[-1].sequence)
    combined = before + after
    assert [event.sequence for event in combined] == list(range(1, len(combined) + 1))
    assert combined[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED
    assert sum(event.kind in (4, 5) for event in combined) == 1
    assert any(event.attempt == 2 and "Resumed" in event.message for event in after)
    percents = [event.job_percent for event in combined]
    assert percents == sorted(percents)


async def _follow_until_cut(target: str, job_id: str) -> list[job_pb2.JobProgress]:
    events: list[job_pb2.JobProgress] = []
    async with aio.insecure_channel(target) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        async for event in stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job_id)):
            events.append(event)
            if event.kind == job_pb2.EVENT_KIND_STEP_PROGRESS:
                return events
    return events


async def test_a_job_interrupted_too_often_fails_with_e701(
    installed_sample_plugin: Path,
    tmp_path: Path,
) -> None:
    process = ServerProcess(
        tmp_path / "data",
        env={
            "PYTHONPATH": str(installed_sample_plugin),
            "REELCAST_DISABLED_PLUGINS": ALL_BUILTINS,
            "REELCAST_SAMPLE_DELAY": "0.6",
            "REELCAST_MAX_ATTEMPTS": "1",
        },
    )
    process.start()
    try:
        job_id = await _start_and_wait_running(process.target)
        process.kill()
        process.start()
        events = await _follow(process.target, job_id, 0)
        assert events[-1].kind == job_pb2.EVENT_KIND_JOB_FAILED
        assert [error.code for error in events[-1].errors] == ["E701-INTERRUPTED"]
    finally:
        process.stop()


async def test_sigterm_mid_job_exits_zero_and_the_job_resumes(slow_plugin_server: ServerProcess) -> None:
    job_id = await _start_and_wait_running(slow_plugin_server.target)
    assert slow_plugin_server.terminate() == 0
    slow_plugin_server.start()
    events = await _follow(slow_plugin_server.target, job_id, 0)
    assert events[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED
    assert [event.sequence for event in events] == list(range(1, len(events) + 1))


async def test_sigterm_during_a_render_exits_zero_and_the_render_resumes(tmp_path: Path) -> None:
    from tests.media import decode_exit_code

    # A slow preset keeps ffmpeg busy long enough to be interrupted mid-render.
    process = ServerProcess(
        tmp_path / "data", env={"REELCAST_X264_PRESET": "veryslow", "REELCAST_SHUTDOWN_GRACE": "0.2"}
    )
    process.start()
    try:
        async with aio.insecure_channel(process.target) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            render_spec = job_pb2.JobSpec(
                brief=job_pb2.Brief(topic="Graceful shutdown"),
                plan=job_pb2.Plan(target_duration_seconds=10),
                render=job_pb2.RenderSpec(width=640, height=360),
            )
            job = (await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=render_spec))).job
            async for event in stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job.id)):
                if event.stage == "render" and event.kind == job_pb2.EVENT_KIND_STEP_PROGRESS:
                    break
        assert await asyncio.to_thread(process.terminate) == 0
        process.start()
        events = await _follow(process.target, job.id, 0)
        assert events[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED
        assert [event.sequence for event in events] == list(range(1, len(events) + 1))
        resumed = [e for e in events if e.attempt == 2 and e.kind == job_pb2.EVENT_KIND_STEP_STATUS]
        assert resumed[0].stage == "render", "the resumed attempt starts at the interrupted stage"
        assert decode_exit_code(Path(events[-1].output.video_path)) == 0
    finally:
        process.stop()
