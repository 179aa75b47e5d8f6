"""A job whose process died after its script's checkpoint and before its review began (the last event is
the script step starting) stops for review when it resumes, instead of rendering an unapproved script."""

from __future__ import annotations

import asyncio
import json

from grpc import aio

from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from reelcast.plugins.builtin import script
from reelcast.plugins.host import PluginHost
from reelcast.server.app import ReelcastServer
from reelcast.server.config import Settings
from reelcast.server.execution.recorder import JobRecorder
from tests.bridge.conftest import HANG_TIMEOUT


def script_only_server(settings: Settings) -> ReelcastServer:
    server = ReelcastServer(settings, host=PluginHost.load(builtins=False))
    server.host.register(script, "script")
    return server


async def test_a_job_that_died_between_its_script_checkpoint_and_its_review_waits_on_resume(
    settings: Settings,
) -> None:
    first = script_only_server(settings)
    await first.start()
    await first.runner.stop()  # no worker: the test plays the attempt that died
    try:
        async with aio.insecure_channel(first.target) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic="Crashed review"), review_script=True)
            job_id = (await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec))).job.id
        job = await first.store.latest_job(job_id)
        assert job is not None
        recorder = JobRecorder(first.store, first.notifier, job)
        job.attempt = 1
        await recorder.job_status(job_pb2.JOB_STATUS_RUNNING, "Running")
        await recorder.step_status("script", job_pb2.STEP_STATUS_RUNNING, "Script started")
        work_dir = settings.work_dir(job_id)
        work_dir.mkdir(parents=True)
        scenes = [
            {"title": "Kept", "narration": "Written before the crash.", "caption": "", "visual_hint": ""}
        ]
        (work_dir / "script.json").write_text(json.dumps({"language": "en", "scenes": scenes}))
        await first.store.save_checkpoint(job_id, "script", {"script": "script.json"})
    finally:
        await first.stop(grace=0.5)

    second = script_only_server(settings)  # the restart
    await second.start()
    try:
        async with aio.insecure_channel(second.target) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)

            async def until_waiting() -> list[job_pb2.JobProgress]:
                events = []
                async for event in stub.WatchJob(
                    job_service_pb2.WatchJobRequest(job_id=job_id, after_sequence=3)
                ):
                    events.append(event)
                    if event.job_status != job_pb2.JOB_STATUS_RUNNING:
                        break
                return events

            events = await asyncio.wait_for(until_waiting(), HANG_TIMEOUT)
            waiting = (await stub.GetJob(job_service_pb2.GetJobRequest(job_id=job_id))).job
    finally:
        await second.stop(grace=0.5)
    assert [(e.kind, e.job_status, e.message) for e in events] == [
        (job_pb2.EVENT_KIND_JOB_STATUS, job_pb2.JOB_STATUS_RUNNING, "Resumed (attempt 2)"),
        (job_pb2.EVENT_KIND_STEP_STATUS, job_pb2.JOB_STATUS_RUNNING, "Script restored from checkpoint"),
        (job_pb2.EVENT_KIND_JOB_STATUS, job_pb2.JOB_STATUS_AWAITING_REVIEW, "Script ready for review"),
    ]
    assert waiting.status == job_pb2.JOB_STATUS_AWAITING_REVIEW
    assert [scene.narration for scene in waiting.review.scenes] == ["Written before the crash."]
