"""One upstream ``WatchJob`` per job, shared by every SSE subscriber of that job in this bridge process.

A :class:`JobFeed` watches its job from the first event and keeps what it received, so a late subscriber is
served its replay from memory: 200 browsers on one job cost one gRPC stream. Each subscriber reads from its
own bounded queue. Under pressure (the queue half full), consecutive ``step-progress`` events of one step
coalesce: the latest wins and the client's cursor moves to its sequence; status and terminal events are never
dropped. A subscriber that still falls ``QUEUE_SIZE`` behind is disconnected instead of slowing the others or
growing without bound; its browser reconnects with ``Last-Event-ID`` and resumes exactly, so nothing is lost.

A feed outlives its last subscriber by ``linger_seconds`` (a reconnect is then served without a new
upstream), and so does a finished feed (late viewers of a just-finished job replay from memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from reelcast.bridge.sse import is_terminal
from reelcast.jobs.v1 import job_pb2, job_service_pb2

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub

log = logging.getLogger(__name__)

QUEUE_SIZE = 1024
LINGER_SECONDS = 30.0


class FeedEndedError(Exception):
    """The upstream broke before the terminal event (the SSE response then ends; the client resumes)."""


class SubscriberOverflowError(Exception):
    """The subscriber fell ``QUEUE_SIZE`` events behind and was dropped; it resumes by reconnecting."""


@dataclass
class HubCounters:
    """What ``/healthz`` reports: upstream streams open now and opened in total, subscribers now."""

    upstreams_open: int = 0
    upstreams_opened: int = 0
    subscribers: int = 0


_END = object()


def _coalescible(queued: object, item: object) -> bool:
    return (
        isinstance(queued, job_pb2.JobProgress)
        and isinstance(item, job_pb2.JobProgress)
        and queued.kind == item.kind == job_pb2.EVENT_KIND_STEP_PROGRESS
        and queued.job_id == item.job_id
        and queued.stage == item.stage
    )


class _Subscriber:
    """A bounded, coalescing queue between a job's feed and one SSE response."""

    def __init__(self) -> None:
        self.items: deque[object] = deque()
        self.ready = asyncio.Event()
        self.overflowed = False
        self.coalesced = 0

    def offer(self, item: object) -> None:
        if self.overflowed:
            return
        if len(self.items) >= QUEUE_SIZE // 2 and self.items and _coalescible(self.items[-1], item):
            self.items[-1] = item
            self.coalesced += 1
        elif len(self.items) >= QUEUE_SIZE and item is not _END:
            self.overflowed = True
            self.items.clear()  # what it missed is replayed on reconnect; free the memory now
            self.items.append(SubscriberOverflowError())
        else:
            self.items.append(item)
        self.ready.set()

    async def get(self) -> object:
        while not self.items:
            self.ready.clear()
            await self.ready.wait()
        return self.items.popleft()


class JobFeed:
    """The shared upstream of one job: its events so far, and the subscribers following it."""

    def __init__(self, hub: UpstreamHub, job_id: str, key: tuple[str, str]) -> None:
        self.hub = hub
        self.job_id = job_id
        self.key = key
        self.events: list[job_pb2.JobProgress] = []
        self.subscribers: set[_Subscriber] = set()
        self.finished = False  # the terminal event arrived
        self.failure: BaseException | None = None  # the upstream broke
        self.task = asyncio.create_task(self._pump(), name=f"reelcast-feed-{job_id}")
        self._linger: asyncio.TimerHandle | None = None

    @property
    def closed(self) -> bool:
        return self.finished or self.failure is not None

    async def _pump(self) -> None:
        counters = self.hub.counters
        counters.upstreams_open += 1
        counters.upstreams_opened += 1
        call = self.hub.stub.WatchJob(
            job_service_pb2.WatchJobRequest(job_id=self.job_id, after_sequence=0),
            metadata=self.hub.metadata(),
        )
        try:
            async for progress in call:
                self.events.append(progress)
                for subscriber in list(self.subscribers):
                    subscriber.offer(progress)
                if is_terminal(progress):
                    self.finished = True
                    break
            if not self.finished:
                self.failure = FeedEndedError("upstream ended before the terminal event")
        except asyncio.CancelledError:
            self.failure = FeedEndedError("bridge closing")
            raise
        except grpc.RpcError as error:
            self.failure = error
            log.info("upstream WatchJob(%s) failed: %s", self.job_id, getattr(error, "code", lambda: "?")())
        finally:
            call.cancel()
            counters.upstreams_open -= 1
            for subscriber in list(self.subscribers):
                subscriber.offer(_END)
            if self.failure is not None:
                self.hub.forget(self)  # a broken feed must not serve later subscribers
            else:
                self.schedule_linger()

    def replay_after(self, after_sequence: int) -> list[job_pb2.JobProgress]:
        """What a subscriber with cursor ``after_sequence`` is owed from memory.

        The first event may be a RESYNC (history was trimmed server side): a cursor older than it gets it,
        exactly as ``WatchJob`` itself would answer.
        """
        if self.events and self.events[0].kind == job_pb2.EVENT_KIND_RESYNC:
            if after_sequence < self.events[0].sequence:
                return list(self.events)
            return [e for e in self.events[1:] if e.sequence > after_sequence]
        return [e for e in self.events if e.sequence > after_sequence]

    async def follow(self, after_sequence: int) -> AsyncGenerator[job_pb2.JobProgress]:
        """Every event after ``after_sequence`` up to the terminal one. Raises the upstream's error, or
        :class:`SubscriberOverflowError`, if the stream cannot continue exactly."""
        subscriber = _Subscriber()
        # Snapshot and registration happen without an await between them: no event can fall in the gap.
        backlog = self.replay_after(after_sequence)
        closed, failure = self.closed, self.failure
        if not closed:
            self.subscribers.add(subscriber)
            self.hub.counters.subscribers += 1
            self.cancel_linger()
        try:
            cursor = after_sequence
            for progress in backlog:
                yield progress
                cursor = progress.sequence
                if is_terminal(progress):
                    return
            if closed:
                if failure is not None:
                    raise FeedEndedError(str(failure))
                return
            while True:
                item = await subscriber.get()
                if item is _END:
                    if self.failure is not None:
                        raise FeedEndedError(str(self.failure))
                    return
                if isinstance(item, SubscriberOverflowError):
                    raise item
                assert isinstance(item, job_pb2.JobProgress)
                if item.sequence <= cursor:
                    continue  # already in the backlog
                yield item
                cursor = item.sequence
                if is_terminal(item):
                    return
        finally:
            if subscriber in self.subscribers:
                self.subscribers.discard(subscriber)
                self.hub.counters.subscribers -= 1
                if not self.subscribers:
                    self.schedule_linger()

    def schedule_linger(self) -> None:
        if self.subscribers or self._linger is not None:
            return
        loop = asyncio.get_running_loop()
        self._linger = loop.call_later(self.hub.linger_seconds, self._expire)

    def cancel_linger(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None

    def _expire(self) -> None:
        self._linger = None
        if self.subscribers:
            return
        self.hub.forget(self)
        if not self.task.done():
            self.task.cancel()


class UpstreamHub:
    """The feeds of one bridge process, keyed by job id and the credential they watch with.

    Intentional divergence from one feed per job: a feed's upstream runs with the credential of the request
    that opened it, so sharing it across credentials would let one caller's stream live on another's
    authority (an admin's, say) and outlive the revocation of its own key. Per credential, each caller's
    stream ends when its own key is revoked, and the many viewers of one caller still share one upstream.
    """

    def __init__(
        self,
        stub: JobServiceAsyncStub,
        metadata: Callable[[], tuple[tuple[str, str], ...]],
        linger_seconds: float = LINGER_SECONDS,
        credential: Callable[[], str] = lambda: "",
    ) -> None:
        self.stub = stub
        self.metadata = metadata
        self.linger_seconds = linger_seconds
        self.credential = credential
        self.counters = HubCounters()
        self.feeds: dict[tuple[str, str], JobFeed] = {}

    def feed(self, job_id: str) -> JobFeed:
        """The job's shared feed for the current credential, opening its upstream if there is none."""
        key = (job_id, self.credential())
        existing = self.feeds.get(key)
        if existing is not None and existing.failure is None:
            return existing
        created = JobFeed(self, job_id, key)
        self.feeds[key] = created
        return created

    def forget(self, feed: JobFeed) -> None:
        if self.feeds.get(feed.key) is feed:
            del self.feeds[feed.key]

    async def close(self) -> None:
        """Ends every feed: their subscribers' streams end and browsers reconnect elsewhere or later."""
        feeds = list(self.feeds.values())
        self.feeds.clear()
        for feed in feeds:
            feed.cancel_linger()
            feed.task.cancel()
        for feed in feeds:
            with contextlib.suppress(asyncio.CancelledError):
                await feed.task


def channel_metadata(correlation_id: str) -> tuple[tuple[str, str], ...]:
    return (("x-correlation-id", correlation_id),)
