"""The SSE stream of one job: the seed's wire format, ids equal to WatchJob sequences, exact resume,
heartbeats, headers, resync, and one shared upstream for many subscribers."""

from __future__ import annotations

import asyncio
import itertools
import random
import sqlite3
import time
from typing import TYPE_CHECKING, Any

import httpx

from reelcast.jobs.v1 import job_pb2, job_service_pb2
from reelcast.server.app import ReelcastServer
from tests.bridge.conftest import HANG_TIMEOUT, BridgeFactory, SseEvent, create_job, read_sse
from tests.stages import PipelinePlugin

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub

EVENT_FOR_KIND = {
    job_pb2.EVENT_KIND_JOB_STATUS: "job-status",
    job_pb2.EVENT_KIND_STEP_STATUS: "step-status",
    job_pb2.EVENT_KIND_STEP_PROGRESS: "step-progress",
    job_pb2.EVENT_KIND_JOB_COMPLETED: "job-completed",
    job_pb2.EVENT_KIND_JOB_FAILED: "job-failed",
}
# The seed's fields of each event and their JSON types.
SEED_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "job-status": {"status": str, "correlationId": str},
    "step-status": {"step": str, "status": str, "correlationId": str},
    "step-progress": {
        "step": str,
        "progressPct": (int, float),
        "correlationId": str,
        "jobProgressPct": (int, float),
    },
    "job-completed": {"status": str, "output": dict, "correlationId": str},
    "job-failed": {"status": str, "errors": list, "correlationId": str},
}
JOB_WORDS = {"Queued", "Running", "Succeeded", "Failed"}
STEP_WORDS = {"Pending", "Running", "Succeeded", "Failed", "Skipped", "Cancelled"}


def signature(events: list[SseEvent]) -> list[tuple[str, str, str]]:
    return [(e.id, e.event, repr(sorted(e.data.items()))) for e in events]


async def watch_all(stub: JobServiceAsyncStub, job_id: str) -> list[job_pb2.JobProgress]:
    return [e async for e in stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job_id))]


def assert_conformant(
    events: list[SseEvent], grpc_events: list[job_pb2.JobProgress], correlation_id: str
) -> None:
    """Every event has the seed's name and fields with the right JSON types, and the ids are the WatchJob
    sequences of the same job, one to one."""
    assert [e.id for e in events] == [str(p.sequence) for p in grpc_events]
    assert [e.event for e in events] == [EVENT_FOR_KIND[p.kind] for p in grpc_events]
    ids = [int(e.id) for e in events]
    assert ids == sorted(set(ids))
    for event, progress in zip(events, grpc_events, strict=True):
        for name, kind in SEED_FIELDS[event.event].items():
            assert isinstance(event.data[name], kind), (event, name)
        assert event.data["correlationId"] == correlation_id
        if event.event == "job-status":
            assert event.data["status"] in JOB_WORDS
        if event.event == "step-status":
            assert event.data["status"] in STEP_WORDS
            assert event.data["step"] == progress.stage_title
        if event.event == "step-progress":
            assert 0 <= event.data["progressPct"] <= 100
            assert event.data["progressPct"] == round(progress.stage_percent, 2)
            assert event.data["jobProgressPct"] == round(progress.job_percent, 2)
    last = events[-1]
    assert last.event == "job-completed"
    assert last.data["status"] == "Succeeded"
    assert isinstance(last.data["output"]["videoPath"], str)
    assert isinstance(last.data["output"]["sizeBytes"], int)
    assert last.data["output"]["sizeBytes"] > 0


async def test_events_have_the_seed_names_and_fields_and_ids_equal_watchjob_sequences(
    client: httpx.AsyncClient, stub: JobServiceAsyncStub, pipeline: PipelinePlugin
) -> None:
    job = await create_job(client, **{"X-Correlation-ID": "conformance-1"})
    live = await read_sse(client, f"/api/jobs/{job['jobId']}/events")
    grpc_events = await watch_all(stub, job["jobId"])

    assert_conformant(live.events, grpc_events, "conformance-1")
    steps = {e.data["step"] for e in live.events if e.event == "step-status"}
    assert steps == {"Script", "Voice", "Visuals", "Rendering", "Postprocessing"}

    replay = await read_sse(client, f"/api/jobs/{job['jobId']}/events")  # finished: replays and closes
    assert signature(replay.events) == signature(live.events)


async def test_first_ping_comes_at_once_with_retry_and_later_pings_at_the_interval(
    start_bridge: BridgeFactory, server: ReelcastServer
) -> None:
    server.host.register(PipelinePlugin(hang_at="script"), "pipeline")
    url = await start_bridge(heartbeat_seconds=0.5, retry_ms=1500)
    async with httpx.AsyncClient(base_url=url, timeout=HANG_TIMEOUT) as client:
        job = await create_job(client)
        started = time.monotonic()
        arrivals: list[float] = []
        async with client.stream("GET", f"/api/jobs/{job['jobId']}/events") as response:
            lines = response.aiter_lines()
            first = await asyncio.wait_for(anext(lines), HANG_TIMEOUT)
            assert first == ": ping"
            assert time.monotonic() - started < 1.0
            assert await anext(lines) == "retry: 1500"
            async for line in lines:
                if line == ": ping":
                    arrivals.append(time.monotonic())
                    if len(arrivals) == 4:
                        break
        await client.post(f"/api/jobs/{job['jobId']}/cancel")
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    # Never faster than configured; the upper bound only guards against a missing heartbeat.
    assert all(gap >= 0.45 for gap in gaps), gaps
    assert all(gap < 3.0 for gap in gaps), gaps


async def test_headers_forbid_caching_and_buffering_and_the_stream_is_never_compressed(
    client: httpx.AsyncClient, pipeline: PipelinePlugin
) -> None:
    job = await create_job(client)
    read = await read_sse(
        client,
        f"/api/jobs/{job['jobId']}/events",
        headers={"Accept-Encoding": "gzip, deflate, br", "X-Correlation-ID": "hdr-7"},
    )
    assert read.headers is not None
    assert read.headers["content-type"].startswith("text/event-stream")
    assert read.headers["cache-control"] == "no-store"
    assert read.headers["x-accel-buffering"] == "no"
    assert "content-encoding" not in read.headers
    assert read.headers["x-correlation-id"] == "hdr-7"
    assert read.first_line == ": ping"
    assert read.retry == 3000


async def _resume_chain(
    client: httpx.AsyncClient, url: str, rng: random.Random, use_header: bool, max_cut: int = 3
) -> tuple[list[SseEvent], int]:
    """Reads ``url`` in pieces, dropping the connection after 1..max_cut events each time and resuming from
    the last id received, until the stream ends by itself. Returns the concatenation and the cut count."""
    events: list[SseEvent] = []
    cuts = 0
    while True:
        headers, params = {}, {}
        if events:
            if use_header:
                headers["Last-Event-ID"] = events[-1].id
            else:
                params["lastEventId"] = events[-1].id
        want = rng.randint(1, max_cut)
        piece = await read_sse(client, url, headers=headers, params=params, max_events=want)
        events += piece.events
        if len(piece.events) < want:
            return events, cuts
        cuts += 1


async def test_resume_after_random_cuts_equals_the_uninterrupted_stream_live_and_replayed(
    client: httpx.AsyncClient, server: ReelcastServer
) -> None:
    server.host.register(PipelinePlugin(delay=0.05), "pipeline")
    job = await create_job(client)
    url = f"/api/jobs/{job['jobId']}/events"
    rng = random.Random(20241128)
    reference_task = asyncio.create_task(read_sse(client, url))
    live_header, live_cuts_header = await _resume_chain(client, url, rng, use_header=True)
    reference = (await reference_task).events
    assert reference[-1].event == "job-completed"
    assert signature(live_header) == signature(reference)
    assert live_cuts_header >= 5

    # Now at 20+ random cut points of the finished job, with each way of passing the cursor.
    for use_header in (True, False):
        for cut in rng.sample(range(len(reference)), 22):
            cursor = reference[cut].id
            headers = {"Last-Event-ID": cursor} if use_header else {}
            params = {} if use_header else {"lastEventId": cursor}
            rest = await read_sse(client, url, headers=headers, params=params)
            assert signature(reference[: cut + 1] + rest.events) == signature(reference), (use_header, cut)
        chained, cuts = await _resume_chain(client, url, rng, use_header=use_header)
        assert signature(chained) == signature(reference)
        assert cuts >= 5


async def test_header_cursor_wins_over_the_query_cursor(
    client: httpx.AsyncClient, pipeline: PipelinePlugin
) -> None:
    job = await create_job(client)
    url = f"/api/jobs/{job['jobId']}/events"
    full = (await read_sse(client, url)).events
    resumed = await read_sse(
        client, url, headers={"Last-Event-ID": full[5].id}, params={"lastEventId": full[1].id}
    )
    assert signature(resumed.events) == signature(full[6:])


async def test_a_cursor_older_than_the_kept_history_gets_a_resync_snapshot_then_the_rest(
    client: httpx.AsyncClient, server: ReelcastServer, pipeline: PipelinePlugin
) -> None:
    job = await create_job(client)
    url = f"/api/jobs/{job['jobId']}/events"
    full = (await read_sse(client, url)).events
    # Trim the history as retention would: drop the oldest ten events from the server's log.
    with sqlite3.connect(server.settings.database_path) as db:
        db.execute("DELETE FROM events WHERE job_id = ? AND sequence <= 10", (job["jobId"],))
    other = await create_app_client(server)
    try:
        read = await read_sse(other, url, headers={"Last-Event-ID": "3"})
    finally:
        await other.aclose()
    first = read.events[0]
    assert first.event == "resync"
    assert first.id == "10"
    assert first.data["job"]["jobId"] == job["jobId"]
    assert first.data["job"]["status"] == "Succeeded"
    assert first.data["correlationId"] == job["correlationId"]
    assert signature(read.events[1:]) == signature(full[10:])


async def create_app_client(server: ReelcastServer) -> httpx.AsyncClient:
    """A bridge of its own (a fresh upstream that sees the trimmed log) and a client for it."""
    from reelcast.bridge.app import create_app
    from reelcast.bridge.server import serve_app

    app = create_app(server.target)
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve_app(app, "127.0.0.1:0", stop=stop, on_ready=ready.set_result))
    port = await asyncio.wait_for(ready, HANG_TIMEOUT)
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=HANG_TIMEOUT)
    original_close = client.aclose

    async def close() -> None:
        await original_close()
        stop.set()
        await asyncio.wait_for(task, HANG_TIMEOUT)

    client.aclose = close  # type: ignore[method-assign]
    return client


async def test_two_hundred_subscribers_share_exactly_one_upstream(
    client: httpx.AsyncClient, server: ReelcastServer
) -> None:
    server.host.register(PipelinePlugin(hang_at="voice"), "pipeline")
    job = await create_job(client)
    url = f"/api/jobs/{job['jobId']}/events"
    readers = [asyncio.create_task(read_sse(client, url)) for _ in range(200)]
    deadline = time.monotonic() + HANG_TIMEOUT
    health: dict[str, Any] = {}
    while time.monotonic() < deadline:
        health = (await client.get("/healthz")).json()
        if health["subscribers"] == 200:
            break
        await asyncio.sleep(0.1)
    assert health["subscribers"] == 200
    assert health["upstreamsOpen"] == 1
    assert health["upstreamsOpened"] == 1

    cancel = await client.post(f"/api/jobs/{job['jobId']}/cancel")
    assert cancel.status_code == 202
    reads = await asyncio.gather(*readers)
    reference = signature(reads[0].events)
    assert all(signature(r.events) == reference for r in reads)
    last = reads[0].events[-1]
    assert last.event == "job-failed"
    assert last.data["status"] == "Failed"
    assert [e["code"] for e in last.data["errors"]] == ["E311-CANCELLED"]
    assert (await client.get("/healthz")).json()["upstreamsOpened"] == 1
