"""``/api/events`` without a job list: the SSE projection of one upstream ``WatchJobs``, every event of the
caller's jobs (including the jobs created after the connection opened), optionally filtered by label and
status.

Each event's ``id:`` is the server's WatchJobs cursor, so the browser's ``Last-Event-ID`` (or
``?lastEventId=``) resumes exactly, like a single job's sequence does; the stream's first frame is that
cursor alone (``id:`` with no data: EventSource records it without dispatching an event), so a connection
dropped before any event still resumes from where it opened. The events are the seed's, with ``jobId``, as
on ``/api/events?jobs=``.

Intentional divergence from the per-job feeds (bridge/upstream.py), which share one upstream per job among
every viewer: this stream is one upstream per connection. Its position and filters are the connection's
own, and the page opens one per tab, so there is little to share, while sharing would need a merged cursor.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
from grpc import aio

from reelcast.bridge.sse import ProjectedEvent
from reelcast.bridge.upstream import FeedEndedError, SubscriberOverflowError, _Subscriber
from reelcast.jobs.v1 import job_pb2, job_service_pb2

log = logging.getLogger(__name__)

WatchJobsCall = aio.UnaryStreamCall[job_service_pb2.WatchJobsRequest, job_service_pb2.WatchJobsResponse]


class FeedEvent(ProjectedEvent):
    """One WatchJobs response as an SSE event: the job's event under the response's cursor."""

    __slots__ = ("cursor",)

    def __init__(self, progress: job_pb2.JobProgress, cursor: str) -> None:
        super().__init__(progress)
        self.cursor = cursor

    @property
    def frame(self) -> bytes:
        if self._frame is None:
            self._frame = self.frame_with_id(self.cursor)
        return self._frame


class OpeningMark(FeedEvent):
    """The stream's first frame: the cursor where it starts, with no event."""

    @property
    def frame(self) -> bytes:
        return b"id: %s\r\n\r\n" % self.cursor.encode()


async def opened(call: WatchJobsCall) -> str:
    """Reads the call's first response (no event: where the stream starts) and returns its cursor. The
    server's refusal (a bad cursor or filter, too many streams) raises here, before the SSE response."""
    first = await call.read()
    if first is aio.EOF:
        raise FeedEndedError("WatchJobs ended before it opened")
    assert isinstance(first, job_service_pb2.WatchJobsResponse)
    return first.cursor


class AllJobsSubscription:
    """What :class:`~reelcast.bridge.eventstream.EventStreamResponse` reads, fed by one open WatchJobs call.
    It never completes: it ends when the upstream breaks (the browser then resumes) or the client leaves."""

    def __init__(self, call: WatchJobsCall, start: str) -> None:
        self.subscriber = _Subscriber()
        self._call = call
        self._backlog: list[ProjectedEvent] = [OpeningMark(job_pb2.JobProgress(), start)]
        self._failure: Exception | None = None
        self._task = asyncio.create_task(self._pump(), name="reelcast-all-jobs")

    async def _pump(self) -> None:
        try:
            while True:
                response = await self._call.read()
                if response is aio.EOF:
                    break
                assert isinstance(response, job_service_pb2.WatchJobsResponse)
                self.subscriber.offer(FeedEvent(response.event, response.cursor))
                self.subscriber.wake()
            self._failure = FeedEndedError("upstream WatchJobs ended")
        except grpc.RpcError as error:
            log.info("upstream WatchJobs failed: %s", getattr(error, "code", lambda: "?")())
            self._failure = FeedEndedError(str(error))
        finally:
            self.subscriber.wake()

    @property
    def complete(self) -> bool:
        return False

    def interrupt(self) -> None:
        self.subscriber.interrupt()

    @property
    def interrupted(self) -> bool:
        return self.subscriber.interrupted

    def wake(self) -> None:
        self.subscriber.wake()

    @property
    def waiting(self) -> bool:
        return self.subscriber.waiting

    async def next_batch(self) -> list[ProjectedEvent] | None:
        """The events that arrived, in order; None when woken with none (a heartbeat is due, or the client
        left). Raises FeedEndedError once the upstream ended, SubscriberOverflowError if the client fell
        too far behind (it resumes from its last id either way)."""
        if self._backlog:
            backlog, self._backlog = self._backlog, []
            return backlog
        if self._failure is not None and not self.subscriber.items:
            raise self._failure
        items = await self.subscriber.take()
        if items is None:
            if self._failure is not None and not self.subscriber.interrupted:
                raise self._failure
            return None
        batch: list[ProjectedEvent] = []
        for item in items:
            if isinstance(item, SubscriberOverflowError):
                self._call.cancel()
                raise item
            if isinstance(item, ProjectedEvent):
                batch.append(item)
        return batch or None

    def close(self) -> None:
        self._call.cancel()
        self._task.cancel()
