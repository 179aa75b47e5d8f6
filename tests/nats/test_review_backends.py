"""Review before render on both backends (SQLite and NATS JetStream, tests/nats/conftest.py) through the gRPC
RPCs, with the built-in stages: edit and approve, a waiting job that holds no runner slot, cancel while
waiting, and every bad request answered with its catalogue code."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc
import pytest
from grpc import aio

from reelcast.jobs.status import decode_rpc_error
from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from reelcast.plugins.builtin.captions import parse_srt
from reelcast.plugins.host import PluginHost
from reelcast.server.app import ReelcastServer
from reelcast.server.config import Settings
from tests.bridge.conftest import HANG_TIMEOUT
from tests.test_review import EDITED, STAGES, W, finished_after_review, grpc_shape, job_event, step_event

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub as Stub


def small_spec(review: bool = True) -> job_pb2.JobSpec:
    return job_pb2.JobSpec(
        brief=job_pb2.Brief(topic="How otters use tools"),
        plan=job_pb2.Plan(target_duration_seconds=5),
        render=job_pb2.RenderSpec(width=320, height=180, captions=True),
        review_script=review,
    )


@pytest.fixture
async def review_server(settings: Settings) -> AsyncIterator[ReelcastServer]:
    settings.stage_settings = {"render": {"x264_preset": "ultrafast"}}
    server = ReelcastServer(settings, host=PluginHost.load())
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace=0.5)


@pytest.fixture
async def stub(review_server: ReelcastServer) -> AsyncIterator[Stub]:
    async with aio.insecure_channel(review_server.target) as channel:
        yield job_service_pb2_grpc.JobServiceStub(channel)


async def create(stub: Stub, review: bool = True) -> str:
    return (await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=small_spec(review)))).job.id


async def events_until(stub: Stub, job_id: str, status: int | None = None) -> list[job_pb2.JobProgress]:
    """The job's events from the start until one with ``status``, or (None) until its terminal event."""

    async def follow() -> list[job_pb2.JobProgress]:
        events = []
        async for event in stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job_id)):
            events.append(event)
            if status is not None and event.job_status == status:
                break
        return events

    return await asyncio.wait_for(follow(), HANG_TIMEOUT)


async def rejected(call: object) -> tuple[grpc.StatusCode, str, list[str]]:
    with pytest.raises(aio.AioRpcError) as raised:
        await call  # type: ignore[misc]
    details = decode_rpc_error(raised.value)
    return raised.value.code(), details.code, [v.field for v in details.field_violations]


def edited(scenes: object) -> list[job_pb2.Scene]:
    copies = [job_pb2.Scene(title=s.title, narration=s.narration) for s in scenes]  # type: ignore[attr-defined]
    copies[0].narration = EDITED
    return copies


async def test_edit_and_approve_over_grpc_renders_the_edited_narration(stub: Stub) -> None:
    job_id = await create(stub)
    await events_until(stub, job_id, W)
    waiting = (await stub.GetJob(job_service_pb2.GetJobRequest(job_id=job_id))).job
    update = job_service_pb2.UpdateJobScriptRequest(
        job_id=job_id, scenes=edited(waiting.review.scenes), expected_revision=waiting.review.revision
    )
    after_edit = (await stub.UpdateJobScript(update)).job
    assert after_edit.status == W and after_edit.review.revision == 2
    approved = (await stub.ApproveJob(job_service_pb2.ApproveJobRequest(job_id=job_id))).job
    assert approved.status == job_pb2.JOB_STATUS_QUEUED and approved.review.approved

    events = await events_until(stub, job_id)
    assert grpc_shape(events) == finished_after_review(edits=1)
    read = job_service_pb2.ReadJobArtifactRequest(job_id=job_id, kind=job_service_pb2.ARTIFACT_KIND_SUBTITLES)
    srt = b"".join([chunk.data async for chunk in stub.ReadJobArtifact(read)]).decode()
    assert " ".join(EDITED.split()) in " ".join(" ".join(text.split()) for _, _, text in parse_srt(srt))


async def test_a_waiting_job_holds_no_slot_and_cancelling_it_ends_it_like_a_queued_job(
    settings: Settings, stub: Stub
) -> None:
    assert settings.max_concurrent_jobs == 1
    waiting_id = await create(stub)
    await events_until(stub, waiting_id, W)
    other = await events_until(stub, await create(stub, review=False))
    assert other[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED  # it ran on the only slot meanwhile
    still = (await stub.GetJob(job_service_pb2.GetJobRequest(job_id=waiting_id))).job
    assert still.status == W

    await stub.CancelJob(job_service_pb2.CancelJobRequest(job_id=waiting_id))
    events = await events_until(stub, waiting_id)
    skipped = [step_event(stage, job_pb2.STEP_STATUS_SKIPPED) for stage in STAGES[1:]]
    assert grpc_shape(events)[-len(skipped) - 2 :] == [
        job_event(W, "Script ready for review"),
        *skipped,
        ("job-failed", "E311-CANCELLED"),
    ]
    assert events[-1].job_status == job_pb2.JOB_STATUS_CANCELLED


async def test_bad_review_requests_get_catalogue_errors(stub: Stub) -> None:
    missing = job_service_pb2.ApproveJobRequest(job_id="0" * 32)
    assert (await rejected(stub.ApproveJob(missing)))[:2] == (grpc.StatusCode.NOT_FOUND, "E003-JOB_NOT_FOUND")

    job_id = await create(stub)
    early = await rejected(stub.ApproveJob(job_service_pb2.ApproveJobRequest(job_id=job_id)))
    # Approving before the script is written: the job is Queued or Running, not waiting.
    assert early[:2] == (grpc.StatusCode.FAILED_PRECONDITION, "E015-JOB_NOT_AWAITING_REVIEW")
    await events_until(stub, job_id, W)
    scenes = (await stub.GetJob(job_service_pb2.GetJobRequest(job_id=job_id))).job.review.scenes

    def update(revision: int, new: list[job_pb2.Scene]) -> object:
        request = job_service_pb2.UpdateJobScriptRequest(
            job_id=job_id, scenes=new, expected_revision=revision
        )
        return stub.UpdateJobScript(request)

    stale = await rejected(update(0, edited(scenes)))
    assert stale[:2] == (grpc.StatusCode.ABORTED, "E016-REVIEW_REVISION_STALE")
    blank = [*edited(scenes), job_pb2.Scene(title="Blank", narration="   ")]
    invalid = await rejected(update(1, blank))
    field = f"scenes[{len(scenes)}].narration"
    assert invalid == (grpc.StatusCode.INVALID_ARGUMENT, "E001-INVALID_SPEC", [field])
    empty = await rejected(update(1, []))
    assert empty == (grpc.StatusCode.INVALID_ARGUMENT, "E001-INVALID_SPEC", ["scenes"])
    too_long = await rejected(
        stub.ApproveJob(
            job_service_pb2.ApproveJobRequest(job_id=job_id, scenes=[job_pb2.Scene(narration="word " * 3000)])
        )
    )
    assert too_long[:3] == (grpc.StatusCode.INVALID_ARGUMENT, "E001-INVALID_SPEC", ["scenes[0].narration"])
    # None of the refused requests changed the job: its script is still revision 1, waiting.
    job = (await stub.GetJob(job_service_pb2.GetJobRequest(job_id=job_id))).job
    assert job.status == W and job.review.revision == 1 and list(job.review.scenes) == list(scenes)

    await stub.ApproveJob(job_service_pb2.ApproveJobRequest(job_id=job_id))
    twice = await rejected(stub.ApproveJob(job_service_pb2.ApproveJobRequest(job_id=job_id)))
    assert twice[:2] == (grpc.StatusCode.FAILED_PRECONDITION, "E015-JOB_NOT_AWAITING_REVIEW")
    late_edit = await rejected(update(1, edited(scenes)))
    assert late_edit[:2] == (grpc.StatusCode.FAILED_PRECONDITION, "E015-JOB_NOT_AWAITING_REVIEW")
    assert (await events_until(stub, job_id))[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED


async def test_a_waiting_job_handed_to_a_worker_again_stays_waiting(
    review_server: ReelcastServer, stub: Stub
) -> None:
    """As when the worker that stopped it for review died before it finished its claim: the job comes back
    from the work queue, and the worker leaves it waiting instead of rendering an unapproved script."""
    job_id = await create(stub)
    await events_until(stub, job_id, W)
    before = (await stub.GetJob(job_service_pb2.GetJobRequest(job_id=job_id))).job
    await review_server.runner.queue.put(job_id, before.last_sequence + 100)  # a message of its own
    # One worker takes jobs in order: once this later job is done, the stale message was handled.
    assert (await events_until(stub, await create(stub, review=False)))[
        -1
    ].kind == job_pb2.EVENT_KIND_JOB_COMPLETED
    after = (await stub.GetJob(job_service_pb2.GetJobRequest(job_id=job_id))).job
    assert after.status == W and after.last_sequence == before.last_sequence
