"""Events for a stream parked between writes go out straight from the feed that brought them, without waking
the stream's task (bridge/eventstream.py ``EventStreamResponse._write_now``), and nothing changes for the
clients: every subscriber gets every event once, in order, ending with the terminal one on one response,
exactly as WatchJob has them; the terminal event itself still ends the response through the task."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import httpx

from reelcast.bridge.eventstream import StreamClock
from reelcast.bridge.upstream import _Subscriber
from reelcast.server.app import ReelcastServer
from tests.bridge.conftest import HANG_TIMEOUT, create_job, read_sse
from tests.bridge.test_metrics import until
from tests.bridge.test_sse import assert_conformant, signature, watch_all
from tests.stages import PipelinePlugin

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub

SUBSCRIBERS = 5


async def test_live_events_written_straight_from_the_feed_reach_every_subscriber_exactly(
    server: ReelcastServer, client: httpx.AsyncClient, stub: JobServiceAsyncStub
) -> None:
    pipeline = PipelinePlugin(delay=0.02, hold_at="script")
    server.host.register(pipeline, "pipeline")
    job = await create_job(client, **{"X-Correlation-ID": "direct-1"})
    before = StreamClock.direct_writes
    url = f"/api/jobs/{job['jobId']}/events"
    readers = [asyncio.create_task(read_sse(client, url)) for _ in range(SUBSCRIBERS)]
    await until(client, "every subscriber streaming", "reelcast_sse_connections", SUBSCRIBERS, stream="job")
    pipeline.release.set()
    reads = await asyncio.wait_for(asyncio.gather(*readers), HANG_TIMEOUT)
    grpc_events = await watch_all(stub, job["jobId"])

    assert StreamClock.direct_writes > before, "no batch was written straight from the feed"
    for read in reads:
        assert_conformant(read.events, grpc_events, "direct-1")
        assert read.events[-1].event == "job-completed"
    assert len({tuple(signature(read.events)) for read in reads}) == 1


async def test_a_direct_write_that_raises_ends_only_its_own_stream() -> None:
    def broken() -> bool:
        raise OSError("the connection broke mid-write")

    def fine() -> bool:
        return False  # cannot write now: the stream's task takes the events

    loop = asyncio.get_running_loop()
    subscribers = [_Subscriber(), _Subscriber()]
    for subscriber, direct in zip(subscribers, (broken, fine), strict=True):
        subscriber.direct = direct
    takers = [loop.create_task(subscriber.take()) for subscriber in subscribers]
    await asyncio.sleep(0)  # both parked, waiting for events
    for subscriber in subscribers:  # as a feed queues an event, then wakes them one after the other
        subscriber.items.append(object())  # type: ignore[arg-type]  # what is queued does not matter here
        subscriber.wake()
    broken_took, fine_took = await asyncio.wait_for(asyncio.gather(*takers), HANG_TIMEOUT)
    assert broken_took is None and subscribers[0].interrupted  # its response ends; the client resumes
    assert fine_took is not None and len(fine_took) == 1 and not subscribers[1].interrupted
