"""Remote cancel: a job cancelled through server A runs on a worker the client never talked to; its ffmpeg is
gone within 3 s and the job ends Cancelled."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from grpc import aio

from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from tests.nats.natsproc import NatsServer
from tests.nats.processes import server, worker


def ffmpeg_pids_of(job_id: str) -> list[int]:
    """ffmpeg processes whose command line names the job's work dir."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            command
            and b"ffmpeg" in Path(command[0].decode(errors="replace")).name.encode()
            and any(job_id.encode() in part for part in command)
        ):
            found.append(int(entry.name))
    return found


async def test_cancel_through_one_server_stops_ffmpeg_on_another_machines_worker(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    servers = [server(tmp_path, f"server{index}", nats_server.url, {}) for index in range(2)]
    runner = worker(tmp_path, "worker", nats_server.url, {})
    processes = [*servers, runner]
    try:
        await asyncio.gather(*(asyncio.to_thread(process.start) for process in processes))
        async with aio.insecure_channel(servers[1].address) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            spec = job_pb2.JobSpec(
                brief=job_pb2.Brief(topic="Remote cancel: a long film about otters"),
                plan=job_pb2.Plan(target_duration_seconds=60),
                render=job_pb2.RenderSpec(width=640, height=360),
            )
            job = (await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec))).job
            async for event in stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job.id)):
                if event.kind == job_pb2.EVENT_KIND_STEP_PROGRESS and event.stage == "render":
                    break
            assert ffmpeg_pids_of(job.id), "the render's ffmpeg should be running"
        async with aio.insecure_channel(servers[0].address) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            await stub.CancelJob(job_service_pb2.CancelJobRequest(job_id=job.id))
            cancelled_at = time.monotonic()
            while ffmpeg_pids_of(job.id) and time.monotonic() - cancelled_at < 3.0:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            assert not ffmpeg_pids_of(job.id), "ffmpeg still running 3 s after the cancel"
            events = [
                e async for e in stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job.id), timeout=30)
            ]
            assert events[-1].kind == job_pb2.EVENT_KIND_JOB_FAILED
            assert events[-1].job_status == job_pb2.JOB_STATUS_CANCELLED
            assert events[-1].errors[0].code == "E311-CANCELLED"
    finally:
        for process in processes:
            process.stop()
