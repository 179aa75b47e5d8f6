"""Many jobs on one connection (/api/events): every job reaches its terminal event, each event names its
job, and the cursor id resumes every job exactly."""

from __future__ import annotations

import random
from collections.abc import Callable

import httpx

from reelcast.server.app import ReelcastServer
from tests.bridge.conftest import SseEvent, create_job, read_sse
from tests.stages import PipelinePlugin


def per_job(events: list[SseEvent]) -> dict[str, list[tuple[str, str]]]:
    """Each job's (event, data) in order, without the multi-stream's jobId."""
    jobs: dict[str, list[tuple[str, str]]] = {}
    for event in events:
        data = {k: v for k, v in event.data.items() if k != "jobId"}
        jobs.setdefault(event.data["jobId"], []).append((event.event, repr(sorted(data.items()))))
    return jobs


async def single_streams(client: httpx.AsyncClient, job_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
    result = {}
    for job_id in job_ids:
        events = (await read_sse(client, f"/api/jobs/{job_id}/events")).events
        result[job_id] = [(e.event, repr(sorted(e.data.items()))) for e in events]
    return result


async def test_one_connection_carries_three_concurrent_jobs_to_their_terminal_events_and_resumes_exactly(
    client: httpx.AsyncClient, server: ReelcastServer
) -> None:
    server.settings.max_concurrent_jobs = 3
    server.host.register(PipelinePlugin(delay=0.03), "pipeline")
    job_ids = [(await create_job(client, f"Job {i}"))["jobId"] for i in range(3)]
    url = "/api/events"
    params = {"jobs": ",".join(job_ids)}

    # A live connection that is cut and resumed at random points, next to an uninterrupted one.
    rng = random.Random(7)
    pieces: list[SseEvent] = []
    cuts = 0
    while True:
        headers = {"Last-Event-ID": pieces[-1].id} if pieces else {}
        want = rng.randint(2, 8)
        piece = await read_sse(client, url, params=params, headers=headers, max_events=want)
        pieces += piece.events
        if len(piece.events) < want:
            break
        cuts += 1
    assert cuts >= 3
    whole = (await read_sse(client, url, params=params)).events

    singles = await single_streams(client, job_ids)
    assert per_job(whole) == singles
    assert per_job(pieces) == singles
    for job_id in job_ids:
        assert singles[job_id][-1][0] == "job-completed"
    assert len(pieces) == len(whole)

    # Replayed cuts, passing the cursor as ?lastEventId= too.
    for cut in rng.sample(range(len(whole) - 1), 8):
        rest = await read_sse(client, url, params={**params, "lastEventId": whole[cut].id})
        assert per_job(whole[: cut + 1] + rest.events) == singles, cut


def finished(*job_ids: str) -> Callable[[list[SseEvent]], bool]:
    """Whether every one of ``job_ids`` has had its terminal event."""
    ends = {"job-completed", "job-failed"}
    return lambda events: {e.data["jobId"] for e in events if e.event in ends} >= set(job_ids)


async def test_without_a_job_list_the_label_filter_keeps_only_jobs_carrying_the_labels(
    client: httpx.AsyncClient, pipeline: PipelinePlugin
) -> None:
    made: list[str] = []

    async def create_both(_start: str) -> None:
        labelled = {"brief": {"topic": "Labelled"}, "labels": {"team": "video"}}
        made.append((await create_job(client, "Unlabelled"))["jobId"])
        made.append((await client.post("/api/jobs", json=labelled)).json()["jobId"])

    until = lambda events: len(made) == 2 and finished(made[1])(events)  # noqa: E731
    read = await read_sse(
        client, "/api/events", params={"label": "team=video"}, on_open=create_both, until=until
    )
    other, wanted = made
    assert other not in {event.data["jobId"] for event in read.events}
    assert set(per_job(read.events)) == {wanted}
    assert per_job(read.events) == await single_streams(client, [wanted])
    response = await client.get("/api/events", params={"label": "team"})
    assert response.status_code == 400


async def test_without_a_job_list_the_stream_carries_jobs_created_after_it_opened_and_resumes_exactly(
    client: httpx.AsyncClient, server: ReelcastServer
) -> None:
    server.host.register(PipelinePlugin(delay=0.01), "pipeline")
    before = (await create_job(client, "Before"))["jobId"]
    await read_sse(client, f"/api/jobs/{before}/events")  # finished before the stream opens
    job_ids: list[str] = []

    async def create_two(_start: str) -> None:
        job_ids.extend([(await create_job(client, f"Job {i}"))["jobId"] for i in range(2)])

    until = lambda events: len(job_ids) == 2 and finished(*job_ids)(events)  # noqa: E731
    whole = await read_sse(client, "/api/events", on_open=create_two, until=until)
    assert whole.start_id.startswith("w1")
    assert per_job(whole.events) == await single_streams(client, job_ids)  # the before job is not there
    assert whole.events[0].data["status"] == "Queued"  # a job's creation is its first event
    # Resumed from the opening id or any event's id (Last-Event-ID, or ?lastEventId=): the rest, exactly.
    rng = random.Random(18)
    starts = [("", whole.start_id)] + [
        (str(cut), whole.events[cut].id) for cut in rng.sample(range(len(whole.events) - 1), 5)
    ]
    for index, (cut, cursor) in enumerate(starts):
        done = len(whole.events) - (int(cut) + 1 if cut else 0)
        location = (
            {"headers": {"Last-Event-ID": cursor}} if index % 2 else {"params": {"lastEventId": cursor}}
        )
        rest = await read_sse(client, "/api/events", max_events=done, **location)  # type: ignore[arg-type]
        head = whole.events[: int(cut) + 1] if cut else []
        assert head + rest.events == whole.events, cut
    junk = await client.get("/api/events", headers={"Last-Event-ID": "not-a-cursor"})
    assert junk.status_code == 400 and junk.json()["errorCode"] == "E009-INVALID_EVENT_ID"
