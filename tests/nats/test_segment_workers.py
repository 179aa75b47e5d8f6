"""The render's segments as subtasks on the NATS work queue (nats/subtasks.py), with real worker processes:
one job's segments render on several workers and join into the video a single render makes (the same frame
count and duration, SSIM of every frame against a single render of the same job's files); a worker
SIGKILLed mid-segment gets its segment rendered again elsewhere; a cancel stops every segment's ffmpeg on
every worker within 3 s."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grpc import aio

from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from reelcast.plugins.host import PluginHost
from reelcast.plugins.testing import StageHarness
from reelcast.server.storage.nats.job_store import NatsJobStore
from reelcast.server.storage.nats.layout import NatsConnection
from reelcast.server.storage.nats.work import NatsJobFiles
from tests.media import FFMPEG, probe, video_frame_times
from tests.nats.natsproc import NatsServer
from tests.nats.processes import ReelcastProcess, server, subtask_results, worker
from tests.test_segment_render import SPEC

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub

HANG_TIMEOUT = 240.0
STARTED = re.compile(r"subtask (segment-\d+) of job (\w+) \(attempt \w+\) started(?! here)")


def _env(preset: str, segments: int) -> dict[str, str]:
    return {
        "REELCAST_NATS_ACK_WAIT": "2",
        "REELCAST_X264_PRESET": preset,
        "REELCAST_RENDER_SEGMENTS": str(segments),
    }


def _pid(process: ReelcastProcess) -> int:
    assert process.process is not None
    return process.process.pid


def _segment_encoders(session: int) -> list[int]:
    """The ffmpeg processes encoding a segment (``segments/NNN.mp4``) in a worker's session."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == session and any(re.match(rb"segments/\d+\.mp4$", part) for part in command):
            found.append(int(entry.name))
    return found


async def _watch(stub: JobServiceAsyncStub, job_id: str) -> list[job_pb2.JobProgress]:
    request = job_service_pb2.WatchJobRequest(job_id=job_id)
    return [event async for event in stub.WatchJob(request, timeout=HANG_TIMEOUT)]


async def _single_render(url: str, job: job_pb2.Job, root: Path) -> Path:
    """The single render (one ffmpeg) of the finished job's own files and checkpoints, run here."""
    connection = NatsConnection([url], 1, 2.0)
    await connection.open(timeout=30)
    try:
        checkpoints = await NatsJobStore(connection).checkpoints(job.id)
        await NatsJobFiles(connection).restore(job.id, root / "work")
    finally:
        await connection.close()
    upstream: dict[str, Any] = {}
    for stage in ("script", "voice", "visuals"):
        upstream.update(checkpoints[stage])
    harness = StageHarness(root / "work", root / "logs", PluginHost.load())
    settings = {"x264_preset": "ultrafast", "segments": 1}
    outcome = await harness.run_async("render", job.spec, upstream, settings=settings)
    return harness.path(outcome.artifacts["video"])


async def _download(stub: JobServiceAsyncStub, job_id: str, target: Path) -> Path:
    request = job_service_pb2.ReadJobArtifactRequest(job_id=job_id, kind=job_service_pb2.ARTIFACT_KIND_VIDEO)
    target.write_bytes(b"".join([chunk.data async for chunk in stub.ReadJobArtifact(request)]))
    return target


NULL = ("-f", "null", "-")


def _assert_decodes_cleanly(video: Path) -> None:
    decode = subprocess.run([FFMPEG, "-v", "error", "-i", str(video), *NULL], capture_output=True)
    assert decode.returncode == 0 and not decode.stderr, decode.stderr


def _frame_ssims(first: Path, second: Path) -> list[float]:
    result = subprocess.run(
        [FFMPEG, "-hide_banner", "-i", str(first), "-i", str(second), "-lavfi", "ssim=stats_file=-", *NULL],
        capture_output=True,
        text=True,
        check=True,
    )
    return [float(value) for value in re.findall(r"All:([\d.]+)", result.stdout)]


@dataclass
class Deployment:
    """An API server and workers on one NATS, with the test's job created through the API server."""

    stub: JobServiceAsyncStub
    workers: list[ReelcastProcess]
    job: job_pb2.Job


@contextlib.asynccontextmanager
async def _deployment(
    tmp_path: Path, url: str, *, preset: str, segments: int, workers: int
) -> AsyncIterator[Deployment]:
    env = _env(preset, segments)
    api = server(tmp_path, "server", url, env)
    started = [worker(tmp_path, f"worker{index}", url, env) for index in range(workers)]
    processes = [api, *started]
    try:
        await asyncio.gather(*(asyncio.to_thread(process.start) for process in processes))
        async with aio.insecure_channel(api.address) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            job = (await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=SPEC))).job
            yield Deployment(stub, started, job)
    finally:
        for process in processes:
            process.stop()


async def test_segments_render_on_every_worker_and_join_into_the_single_render(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    async with _deployment(
        tmp_path, nats_server.url, preset="ultrafast", segments=3, workers=2
    ) as deployment:
        stub, workers, job = deployment.stub, deployment.workers, deployment.job
        events = await _watch(stub, job.id)
        assert events[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED, events[-1]
        job = (await stub.GetJob(job_service_pb2.GetJobRequest(job_id=job.id))).job
        parallel = await _download(stub, job.id, tmp_path / "parallel.mp4")
        results = await subtask_results(nats_server.url, job.id)
        assert sorted(results) == ["segment-0", "segment-1", "segment-2"]
        assert {int(result["worker"].rpartition(":")[2]) for result in results.values()} == {
            _pid(each) for each in workers
        }
        single = await _single_render(nats_server.url, job, tmp_path / "single")
        assert len(video_frame_times(parallel)) == len(video_frame_times(single))
        assert abs(probe(parallel).duration - probe(single).duration) <= 0.03
        _assert_decodes_cleanly(parallel)
        ssims = _frame_ssims(parallel, single)
        assert len(ssims) == len(video_frame_times(single))
        assert min(ssims) >= 0.99, sorted(ssims)[:5]


async def test_a_segment_whose_worker_is_killed_renders_again_elsewhere(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    async with _deployment(tmp_path, nats_server.url, preset="veryslow", segments=4, workers=3) as deployment:
        stub, workers, job = deployment.stub, deployment.workers, deployment.job
        watching = asyncio.create_task(_watch(stub, job.id))
        victim, segment = None, ""
        deadline = time.monotonic() + HANG_TIMEOUT
        while victim is None and time.monotonic() < deadline and not watching.done():
            for each in workers:
                started = STARTED.search(each.log())
                if started is not None and _segment_encoders(_pid(each)):
                    victim, segment = each, started.group(1)
            await asyncio.sleep(0.05)
        assert victim is not None, "no worker rendered a segment of another worker's job"
        killed = _pid(victim)
        victim.kill()
        events = await watching
        assert events[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED, events[-1]
        parallel = await _download(stub, job.id, tmp_path / "parallel.mp4")
        results = await subtask_results(nats_server.url, job.id)
        assert sorted(results) == [f"segment-{number}" for number in range(4)]
        assert int(results[segment]["worker"].rpartition(":")[2]) != killed
        _assert_decodes_cleanly(parallel)
        frames = len(video_frame_times(parallel))
        assert abs(frames / 30 - probe(parallel).duration) <= 0.05


async def test_a_cancel_stops_every_segment_on_every_worker_within_3_s(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    async with _deployment(tmp_path, nats_server.url, preset="veryslow", segments=4, workers=2) as deployment:
        stub, workers, job = deployment.stub, deployment.workers, deployment.job
        watching = asyncio.create_task(_watch(stub, job.id))
        deadline = time.monotonic() + HANG_TIMEOUT
        while time.monotonic() < deadline and not watching.done():
            if all(_segment_encoders(_pid(each)) for each in workers):
                break
            await asyncio.sleep(0.05)
        assert all(_segment_encoders(_pid(each)) for each in workers), "segments did not run on both"
        cancelled = time.monotonic()
        await stub.CancelJob(job_service_pb2.CancelJobRequest(job_id=job.id))
        while any(_segment_encoders(_pid(each)) for each in workers):
            assert time.monotonic() - cancelled <= 3.0, "a segment's ffmpeg outlived the cancel by 3 s"
            await asyncio.sleep(0.05)
        events = await watching
        assert events[-1].kind == job_pb2.EVENT_KIND_JOB_FAILED, events[-1]
        assert events[-1].job_status == job_pb2.JOB_STATUS_CANCELLED
