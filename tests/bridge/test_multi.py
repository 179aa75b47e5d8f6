"""Many jobs on one connection (/api/events): every job reaches its terminal event, each event names its
job, and the cursor id resumes every job exactly."""

from __future__ import annotations

import random

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


async def test_without_a_job_list_the_label_filter_keeps_only_jobs_carrying_the_labels(
    client: httpx.AsyncClient, pipeline: PipelinePlugin
) -> None:
    labelled = {"brief": {"topic": "Labelled"}, "labels": {"team": "video"}}
    wanted = (await client.post("/api/jobs", json=labelled)).json()["jobId"]
    other = (await create_job(client, "Unlabelled"))["jobId"]
    events = (await read_sse(client, "/api/events", params={"label": "team=video"})).events
    assert set(per_job(events)) == {wanted}
    assert other not in {event.data["jobId"] for event in events}
    response = await client.get("/api/events", params={"label": "team"})
    assert response.status_code == 400


async def test_without_a_job_list_the_stream_carries_the_callers_jobs_listed_at_connect_time(
    client: httpx.AsyncClient, pipeline: PipelinePlugin
) -> None:
    job_ids = [(await create_job(client, f"Job {i}"))["jobId"] for i in range(2)]
    events = (await read_sse(client, "/api/events")).events
    assert set(per_job(events)) == set(job_ids)
    assert per_job(events) == await single_streams(client, job_ids)
    # Resuming from the last id: every job is marked finished, so nothing is replayed.
    again = await read_sse(client, "/api/events", headers={"Last-Event-ID": events[-1].id})
    assert again.events == []
