"""Review before render (``JobSpec.review_script``) end to end on a real ``reelcast serve`` with its bridge
and the built-in stages: the job waits after its script, the owner edits and approves it over REST, and the
edited narration is what the published captions say. The same log is checked on both transports, event by
event: gRPC ``WatchJob`` and the bridge's SSE, across a SIGKILL and a restart, and an expiry."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from grpc import aio

from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from reelcast.plugins.builtin.captions import parse_srt
from tests.bridge.conftest import HANG_TIMEOUT, SseEvent, read_sse
from tests.processes import ServerProcess

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub as Stub

STAGES = ("script", "voice", "visuals", "render", "postprocess")
TITLES = {"script": "Script", "voice": "Voice", "visuals": "Visuals", "render": "Rendering"}
EDITED = "Sea otters crack clams open on flat stones they carry under their arms."
CREATE_BODY = {
    "brief": {"topic": "How otters use tools"},
    "plan": {"targetDurationSeconds": 5},
    "render": {"width": 320, "height": 180, "captions": True},
    "reviewScript": True,
}

S = job_pb2
Q, R, W = S.JOB_STATUS_QUEUED, S.JOB_STATUS_RUNNING, S.JOB_STATUS_AWAITING_REVIEW


def job_event(status: int, message: str) -> tuple[Any, ...]:
    return ("job-status", S.JobStatus.Name(status), message)  # type: ignore[arg-type]


def step_event(stage: str, status: int) -> tuple[Any, ...]:
    return ("step-status", stage, S.StepStatus.Name(status))  # type: ignore[arg-type]


def ran(stage: str) -> list[tuple[Any, ...]]:
    return [step_event(stage, S.STEP_STATUS_RUNNING), step_event(stage, S.STEP_STATUS_SUCCEEDED)]


WAITING = [
    job_event(Q, "Queued"),
    job_event(R, "Running"),
    *ran("script"),
    job_event(W, "Script ready for review"),
]


def grpc_shape(events: list[job_pb2.JobProgress]) -> list[tuple[Any, ...]]:
    """Every event but the (timing-dependent) progress ticks, as (kind, status or stage, ...)."""
    shape: list[tuple[Any, ...]] = []
    for event in events:
        if event.kind == S.EVENT_KIND_JOB_STATUS:
            shape.append(job_event(event.job_status, event.message))
        elif event.kind == S.EVENT_KIND_STEP_STATUS:
            shape.append(step_event(event.stage, event.stage_status))
        elif event.kind == S.EVENT_KIND_JOB_COMPLETED:
            shape.append(("job-completed",))
        elif event.kind == S.EVENT_KIND_JOB_FAILED:
            shape.append(("job-failed", *(error.code for error in event.errors)))
        else:
            assert event.kind == S.EVENT_KIND_STEP_PROGRESS, event
    return shape


def sse_shape(events: list[SseEvent]) -> list[tuple[Any, ...]]:
    """The SSE projection: event names and the seed's status words, progress events left out."""
    return [
        (event.event, event.data.get("step", ""), event.data["status"])
        for event in events
        if event.event != "step-progress"
    ]


def expected_sse(shape: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    words = {"QUEUED": "Queued", "RUNNING": "Running", "AWAITING_REVIEW": "AwaitingReview"}
    steps = {"STEP_STATUS_RUNNING": "Running", "STEP_STATUS_SUCCEEDED": "Succeeded"}
    steps["STEP_STATUS_SKIPPED"] = "Skipped"
    projected: list[tuple[Any, ...]] = []
    for item in shape:
        if item[0] == "job-status":
            projected.append(("job-status", "", words[item[1].removeprefix("JOB_STATUS_")]))
        elif item[0] == "step-status":
            projected.append(("step-status", TITLES.get(item[1], "Postprocessing"), steps[item[2]]))
        elif item[0] == "job-completed":
            projected.append(("job-completed", "", "Succeeded"))
        else:
            projected.append(("job-failed", "", "Failed"))
    return projected


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(
        tmp_path / "data",
        env={"REELCAST_X264_PRESET": "ultrafast", "REELCAST_REVIEW_TIMEOUT": "3600"},
        bridge=True,
        keep_port=True,
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


async def all_events(target: str, job_id: str, after: int = 0) -> list[job_pb2.JobProgress]:
    async with aio.insecure_channel(target) as channel:
        stub: Stub = job_service_pb2_grpc.JobServiceStub(channel)
        request = job_service_pb2.WatchJobRequest(job_id=job_id, after_sequence=after)
        return await asyncio.wait_for(_collect(stub, request), HANG_TIMEOUT)


async def _collect(stub: Stub, request: job_service_pb2.WatchJobRequest) -> list[job_pb2.JobProgress]:
    return [event async for event in stub.WatchJob(request)]


async def wait_for_review(target: str, job_id: str) -> job_pb2.Job:
    """Follows the job over gRPC until it waits for review; returns it as stored then."""
    async with aio.insecure_channel(target) as channel:
        stub: Stub = job_service_pb2_grpc.JobServiceStub(channel)

        async def follow() -> None:
            async for event in stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job_id)):
                assert event.kind not in (S.EVENT_KIND_JOB_FAILED, S.EVENT_KIND_JOB_COMPLETED), event
                if event.job_status == W:
                    return

        await asyncio.wait_for(follow(), HANG_TIMEOUT)
        return (await stub.GetJob(job_service_pb2.GetJobRequest(job_id=job_id))).job


async def create(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post("/api/jobs", json=CREATE_BODY)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert body["spec"]["reviewScript"] is True and body["review"] is None
    return body


def edited_scenes(review: dict[str, Any]) -> list[dict[str, Any]]:
    scenes = [dict(scene) for scene in review["scenes"]]
    scenes[0]["narration"] = EDITED
    scenes[0]["caption"] = ""  # the caption follows the narration
    return scenes


async def published_captions(client: httpx.AsyncClient, job_id: str) -> str:
    response = await client.get(f"/api/jobs/{job_id}/subtitles")
    assert response.status_code == 200, response.text
    return " ".join(" ".join(text.split()) for _, _, text in parse_srt(response.text))


def finished_after_review(edits: int) -> list[tuple[Any, ...]]:
    edited = [job_event(W, f"Script edited (revision {n + 2})") for n in range(edits)]
    rest = [step for stage in STAGES[1:] for step in ran(stage)]
    return [
        *WAITING,
        *edited,
        job_event(Q, "Approved"),
        job_event(R, "Resumed after review"),
        *rest,
        ("job-completed",),
    ]


async def test_a_reviewed_job_waits_is_edited_approved_and_speaks_the_edited_narration(
    serve: ServerProcess,
) -> None:
    async with httpx.AsyncClient(base_url=serve.http_base, timeout=HANG_TIMEOUT) as client:
        job_id = (await create(client))["jobId"]
        # One SSE connection follows the whole job: the wait, the edit, the approval and the render.
        watching = asyncio.create_task(read_sse(client, f"/api/jobs/{job_id}/events"))
        waiting = await wait_for_review(serve.target, job_id)
        assert waiting.review.revision == 1 and not waiting.review.approved
        assert waiting.review.expire_time.seconds > waiting.create_time.seconds + 3000
        assert EDITED not in [scene.narration for scene in waiting.review.scenes]

        shown = (await client.get(f"/api/jobs/{job_id}")).json()
        assert shown["status"] == "AwaitingReview"
        assert shown["review"]["revision"] == 1 and shown["review"]["approved"] is False
        assert [s["narration"] for s in shown["review"]["scenes"]] == [
            s.narration for s in waiting.review.scenes
        ]
        first_narration = shown["review"]["scenes"][0]["narration"]

        body = {"scenes": edited_scenes(shown["review"]), "expectedRevision": 1}
        edited = await client.put(f"/api/jobs/{job_id}/script", json=body)
        assert edited.status_code == 200, edited.text
        assert edited.json()["review"]["revision"] == 2
        assert edited.json()["review"]["scenes"][0]["narration"] == EDITED
        approved = await client.post(f"/api/jobs/{job_id}/approve")
        assert approved.status_code == 200, approved.text
        assert approved.json()["status"] == "Queued" and approved.json()["review"]["approved"] is True

        sse = (await watching).events
        captions = await published_captions(client, job_id)

    events = await all_events(serve.target, job_id)
    assert [event.sequence for event in events] == list(range(1, len(events) + 1))
    expected = finished_after_review(edits=1)
    assert grpc_shape(events) == expected
    assert [event.id for event in sse] == [str(event.sequence) for event in events]
    assert sse_shape(sse) == expected_sse(expected)
    assert {event.attempt for event in events[1:]} == {1}  # the wait is no interruption
    assert " ".join(EDITED.split()) in captions
    assert " ".join(first_narration.split()) not in captions


async def test_a_job_waiting_for_review_survives_sigkill_and_finishes_when_approved_after_restart(
    serve: ServerProcess,
) -> None:
    async with httpx.AsyncClient(base_url=serve.http_base, timeout=HANG_TIMEOUT) as client:
        job_id = (await create(client))["jobId"]
        waiting = await wait_for_review(serve.target, job_id)
        before = (
            await read_sse(client, f"/api/jobs/{job_id}/events", max_events=waiting.last_sequence)
        ).events
    serve.kill()
    serve.start()
    async with httpx.AsyncClient(base_url=serve.http_base, timeout=HANG_TIMEOUT) as client:
        shown = (await client.get(f"/api/jobs/{job_id}")).json()
        assert shown["status"] == "AwaitingReview" and shown["lastEventId"] == str(waiting.last_sequence)
        resuming = asyncio.create_task(
            read_sse(client, f"/api/jobs/{job_id}/events", headers={"Last-Event-ID": before[-1].id})
        )
        await asyncio.sleep(0.5)  # the resumed stream is open before the approval
        approved = await client.post(
            f"/api/jobs/{job_id}/approve", json={"scenes": edited_scenes(shown["review"])}
        )
        assert approved.status_code == 200, approved.text
        after = (await resuming).events
        captions = await published_captions(client, job_id)

    events = await all_events(serve.target, job_id)
    expected = [*WAITING, job_event(Q, "Approved"), *finished_after_review(edits=0)[len(WAITING) + 1 :]]
    assert grpc_shape(events) == expected
    sse = before + after
    assert [event.id for event in sse] == [str(event.sequence) for event in events]
    assert sse_shape(sse) == expected_sse(expected)
    assert " ".join(EDITED.split()) in captions


async def test_a_review_nobody_approves_expires_and_the_job_fails_with_e703(tmp_path: Path) -> None:
    process = ServerProcess(tmp_path / "data", env={"REELCAST_REVIEW_TIMEOUT": "2"}, bridge=True)
    process.start()
    try:
        async with httpx.AsyncClient(base_url=process.http_base, timeout=HANG_TIMEOUT) as client:
            job_id = (await create(client))["jobId"]
            sse = (await read_sse(client, f"/api/jobs/{job_id}/events")).events
            late = await client.post(f"/api/jobs/{job_id}/approve")
            failure = (await client.get(f"/api/jobs/{job_id}/failure-details")).json()
        events = await all_events(process.target, job_id)
    finally:
        process.stop()
    skipped = [step_event(stage, S.STEP_STATUS_SKIPPED) for stage in STAGES[1:]]
    expected = [*WAITING, *skipped, ("job-failed", "E703-REVIEW_EXPIRED")]
    assert grpc_shape(events) == expected
    assert [event.id for event in sse] == [str(event.sequence) for event in events]
    assert sse_shape(sse) == expected_sse(expected)
    assert [error["code"] for error in sse[-1].data["errors"]] == ["E703-REVIEW_EXPIRED"]
    assert sse[-1].data["errors"][0]["remediation"]
    assert failure["errorCode"] == "E703-REVIEW_EXPIRED"
    assert late.status_code == 409 and late.json()["errorCode"] == "E015-JOB_NOT_AWAITING_REVIEW"
