"""Worker crash: a worker SIGKILLed mid-render (with its ffmpeg) loses its claim when its heartbeats stop;
another worker resumes the job from its last checkpoint, and a resuming client sees one gapless log with
one end."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from grpc import aio

from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from tests.media import decode_exit_code
from tests.nats.natsproc import NatsServer
from tests.nats.processes import server, worker


async def test_a_worker_killed_mid_render_is_replaced_from_the_last_checkpoint(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    env = {"REELCAST_NATS_ACK_WAIT": "2"}
    api = server(tmp_path, "server", nats_server.url, env)
    workers = [worker(tmp_path, f"worker{index}", nats_server.url, env) for index in range(2)]
    processes = [api, *workers]
    try:
        await asyncio.gather(*(asyncio.to_thread(process.start) for process in processes))
        async with aio.insecure_channel(api.address) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            spec = job_pb2.JobSpec(
                brief=job_pb2.Brief(topic="Worker crash: otters"),
                plan=job_pb2.Plan(target_duration_seconds=3),
                render=job_pb2.RenderSpec(width=320, height=180),
            )
            job = (await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec))).job
            seen: list[job_pb2.JobProgress] = []
            request = job_service_pb2.WatchJobRequest(job_id=job.id)
            async for event in stub.WatchJob(request):
                seen.append(event)
                if event.stage == "render" and event.stage_status == job_pb2.STEP_STATUS_RUNNING:
                    break
            owner = next(each for each in workers if f"job {job.id} claimed" in each.log())
            owner.kill()
            # The client resumes after the last event it saw, on the same server.
            resumed = job_service_pb2.WatchJobRequest(job_id=job.id, after_sequence=seen[-1].sequence)
            async for event in stub.WatchJob(resumed, timeout=120):
                seen.append(event)

            sequences = [event.sequence for event in seen]
            assert sequences == list(range(1, len(sequences) + 1))
            terminal = [
                e for e in seen if e.kind in (job_pb2.EVENT_KIND_JOB_COMPLETED, job_pb2.EVENT_KIND_JOB_FAILED)
            ]
            assert [event.kind for event in terminal] == [job_pb2.EVENT_KIND_JOB_COMPLETED]
            # The other worker took over from the visuals checkpoint: only render and postprocess ran again.
            survivor = next(each for each in workers if each is not owner)
            assert re.search(rf"job {job.id} claimed \(redelivered: True\)", survivor.log())
            second = [e for e in seen if e.attempt == 2 and e.kind == job_pb2.EVENT_KIND_STEP_STATUS]
            rerun = {e.stage for e in second if e.stage_status == job_pb2.STEP_STATUS_RUNNING}
            assert rerun == {"render", "postprocess"}

            # The output comes from the object store through the API server, which never had the file.
            video = tmp_path / "video.mp4"
            chunks = stub.ReadJobArtifact(
                job_service_pb2.ReadJobArtifactRequest(
                    job_id=job.id, kind=job_service_pb2.ARTIFACT_KIND_VIDEO
                )
            )
            video.write_bytes(b"".join([chunk.data async for chunk in chunks]))
            assert video.stat().st_size > 1000
            assert decode_exit_code(video) == 0
    finally:
        for process in processes:
            process.stop()
