"""RetryJob with the real stages and ffmpeg: a job failed in its render runs again from its checkpoints."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from grpc import StatusCode, aio
from grpc_status import rpc_status

from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from reelcast.jobs.validation import with_defaults
from reelcast.plugins.host import PluginHost
from reelcast.server.app import ReelcastServer
from reelcast.server.config import Settings

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub

SKIPPED_ON_RETRY = ("script", "voice", "visuals")


def _settings(data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "grpc_listen": "127.0.0.1:0",
        "progress_min_interval_seconds": 0.0,
        "x264_preset": "ultrafast",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def _spec() -> job_pb2.JobSpec:
    return with_defaults(
        job_pb2.JobSpec(
            brief=job_pb2.Brief(topic="Lighthouses"),
            plan=job_pb2.Plan(target_duration_seconds=3),
            render=job_pb2.RenderSpec(width=320, height=180),
        )
    )


async def _watch(stub: JobServiceAsyncStub, job_id: str, after: int) -> list[job_pb2.JobProgress]:
    request = job_service_pb2.WatchJobRequest(job_id=job_id, after_sequence=after)
    return [event async for event in stub.WatchJob(request)]


async def _fail_then_retry(
    data_dir: Path,
) -> tuple[list[job_pb2.JobProgress], list[job_pb2.JobProgress], job_pb2.Job, list[aio.AioRpcError]]:
    # The render fails from configuration (an encoder ffmpeg does not have), as test_builtin_failures does.
    failing = ReelcastServer(
        _settings(data_dir, ffmpeg_extra_args=("-c:v", "no_such_encoder")), host=PluginHost.load()
    )
    await failing.start()
    try:
        async with aio.insecure_channel(failing.target) as channel:
            stub: JobServiceAsyncStub = job_service_pb2_grpc.JobServiceStub(channel)
            created = await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=_spec()))
            first_run = await _watch(stub, created.job.id, 0)
    finally:
        await failing.stop(grace=0.5)
    refusals: list[aio.AioRpcError] = []
    # The same data dir with the configuration fixed: the retry must succeed.
    fixed = ReelcastServer(_settings(data_dir), host=PluginHost.load())
    await fixed.start()
    try:
        async with aio.insecure_channel(fixed.target) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            retried = await stub.RetryJob(job_service_pb2.RetryJobRequest(job_id=created.job.id))
            assert retried.job.status == job_pb2.JOB_STATUS_QUEUED
            second_run = await _watch(stub, created.job.id, first_run[-1].sequence)
            final = (await stub.GetJob(job_service_pb2.GetJobRequest(job_id=created.job.id))).job
            for job_id in (created.job.id, "no-such-job"):
                try:
                    await stub.RetryJob(job_service_pb2.RetryJobRequest(job_id=job_id))
                except aio.AioRpcError as refused:
                    refusals.append(refused)
    finally:
        await fixed.stop(grace=0.5)
    return first_run, second_run, final, refusals


@pytest.fixture(scope="module")
def retried_job(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[list[job_pb2.JobProgress], list[job_pb2.JobProgress], job_pb2.Job, list[aio.AioRpcError]]:
    return asyncio.run(_fail_then_retry(tmp_path_factory.mktemp("retry") / "data"))


def test_a_job_failed_in_rendering_retries_from_its_checkpoints_and_succeeds(retried_job) -> None:  # type: ignore[no-untyped-def]
    first_run, second_run, final, _ = retried_job
    assert first_run[-1].kind == job_pb2.EVENT_KIND_JOB_FAILED
    assert first_run[-1].failure.stage == "render"
    assert second_run[0].kind == job_pb2.EVENT_KIND_JOB_RETRIED
    assert second_run[0].job_status == job_pb2.JOB_STATUS_QUEUED
    assert second_run[0].attempt == 2
    assert second_run[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED
    assert final.status == job_pb2.JOB_STATUS_SUCCEEDED and final.attempt == 2
    assert not final.errors and not final.HasField("failure")
    # The stages that succeeded before are skipped: the new run writes nothing about them.
    assert not [
        event
        for event in second_run
        if event.stage in SKIPPED_ON_RETRY and event.kind == job_pb2.EVENT_KIND_STEP_STATUS
    ]
    render_steps = [e for e in second_run if e.stage == "render" and e.kind == job_pb2.EVENT_KIND_STEP_STATUS]
    assert render_steps[0].stage_status == job_pb2.STEP_STATUS_RUNNING
    assert all(event.attempt == 2 for event in second_run)


def test_a_retried_job_continues_its_sequence_with_no_gap(retried_job) -> None:  # type: ignore[no-untyped-def]
    first_run, second_run, final, _ = retried_job
    sequences = [event.sequence for event in first_run + second_run]
    assert sequences == list(range(1, len(sequences) + 1))
    assert final.last_sequence == sequences[-1]


def test_retrying_a_succeeded_job_is_e060_and_an_unknown_one_e003(retried_job) -> None:  # type: ignore[no-untyped-def]
    _, _, _, refusals = retried_job
    assert [refused.code() for refused in refusals] == [StatusCode.FAILED_PRECONDITION, StatusCode.NOT_FOUND]
    assert "E060-JOB_NOT_RETRYABLE" in str(rpc_status.from_call(refusals[0]))
    assert "E003-JOB_NOT_FOUND" in str(rpc_status.from_call(refusals[1]))
