"""One upstream ``WatchJob`` per job, shared by every SSE subscriber of that job in this bridge process.

A :class:`JobFeed` watches its job from the first event and keeps what it received, so a late subscriber is
served its replay from memory: 200 browsers on one job cost one gRPC stream. Each SSE response reads from its
own bounded queue (all its jobs' events in one) and takes everything waiting at each wake-up. Under pressure
(the queue half full), consecutive ``step-progress`` events of one step coalesce: the latest wins and the
client's cursor moves to its sequence; status and terminal events are never dropped. A subscriber that still
falls ``QUEUE_SIZE`` behind is disconnected instead of slowing the others or growing without bound; its
browser reconnects with ``Last-Event-ID`` and resumes exactly, so nothing is lost.

A feed outlives its last subscriber by ``linger_seconds`` (a reconnect is then served without a new
upstream), and so does a finished feed (late viewers of a just-finished job replay from memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import grpc

from reelcast.bridge.metrics import UPSTREAM_STREAMS
from reelcast.bridge.sse import ProjectedEvent
from reelcast.jobs.v1 import job_pb2, job_service_pb2

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub

log = logging.getLogger(__name__)

QUEUE_SIZE = 1024
LINGER_SECONDS = 30.0
# A feed wakes its subscribers at once for an event after a quiet spell (the usual case: progress every few
# hundred milliseconds). Events closer together wait for a wake-up that carries all of them: the window grows
# with the subscribers (their writes are the cost it saves) within these bounds.
QUIET_SECONDS = 0.05
MIN_WAKE_WINDOW = 0.002
MAX_WAKE_WINDOW = 0.015
WAKE_WINDOW_PER_SUBSCRIBER = 0.00001


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


class _Ended:
    """Queued after a feed's last event: the feed finished (its terminal event came first) or broke."""

    __slots__ = ("feed",)

    def __init__(self, feed: JobFeed) -> None:
        self.feed = feed


def _coalescible(queued: object, item: ProjectedEvent) -> bool:
    return (
        isinstance(queued, ProjectedEvent)
        and queued.kind == item.kind == job_pb2.EVENT_KIND_STEP_PROGRESS
        and queued.job_id == item.job_id
        and queued.stage == item.stage
    )


class _Subscriber:
    """A bounded, coalescing queue between the feeds of one SSE response and that response.

    The response takes everything queued at once (:meth:`take`) and writes it in one send. Feeds queue
    events at once but, within a burst, wake their subscribers once per window (``MIN_WAKE_WINDOW`` to
    ``MAX_WAKE_WINDOW``): one wake-up and one socket write then carry many events instead of one each (the
    write, a system call, is the cost that counts).
    """

    # Slots and a list, not a deque: an idle stream holds one of these for its whole life, and a deque
    # allocates a 64-item block (760 bytes) at birth (docs/benchmarks.md, idle connections).
    __slots__ = ("_waiter", "coalesced", "direct", "interrupted", "items", "overflowed")

    def __init__(self) -> None:
        self.items: list[ProjectedEvent | _Ended | SubscriberOverflowError] = []
        self._waiter: asyncio.Future[None] | None = None
        self.interrupted = False
        self.overflowed = False
        self.coalesced = 0
        # Set by a response that can write at once (bridge/eventstream.py): tried before waking its task.
        self.direct: Callable[[], bool] | None = None

    def offer(self, item: ProjectedEvent | _Ended) -> None:
        """Queues ``item``; the feed wakes the subscriber (:meth:`wake`) when it sees fit."""
        if self.overflowed:
            return
        items = self.items
        if isinstance(item, _Ended):
            items.append(item)
        elif len(items) >= QUEUE_SIZE // 2 and items and _coalescible(items[-1], item):
            items[-1] = item
            self.coalesced += 1
        elif len(items) >= QUEUE_SIZE:
            self.overflowed = True
            items.clear()  # what it missed is replayed on reconnect; free the memory now
            items.append(SubscriberOverflowError())
        else:
            items.append(item)

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        # Events for a response parked between writes: written right here when it can, without a task
        # switch (a future, a wake-up and the response's coroutines, per subscriber per event).
        direct = self.direct
        if direct is not None and self.items and not self.interrupted:
            try:
                if direct():
                    return
            except Exception:
                # Never let one connection break the feed that its neighbours share. What it had taken
                # may be unwritten, so its response ends unfinished: its client resumes exactly, with
                # Last-Event-ID, from the last event that it did get.
                log.exception("a direct SSE write failed; that stream ends and its client resumes")
                self.interrupted = True
        waiter.set_result(None)

    def interrupt(self) -> None:
        """The client went away: the response stops waiting."""
        self.interrupted = True
        self.wake()

    async def take(self) -> list[ProjectedEvent | _Ended | SubscriberOverflowError] | None:
        """Everything queued, waiting for something; None if woken with nothing queued (a heartbeat is due,
        or the client went away)."""
        if not self.items:
            if self.interrupted:
                return None
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
            if not self.items or self.interrupted:
                return None
        taken, self.items = self.items, []
        return taken

    @property
    def waiting(self) -> bool:
        return self._waiter is not None


class JobFeed:
    """The shared upstream of one job: its events so far, and the subscribers following it."""

    def __init__(self, hub: UpstreamHub, job_id: str, key: tuple[str, str]) -> None:
        self.hub = hub
        self.job_id = job_id
        self.key = key
        self.events: list[ProjectedEvent] = []
        self.subscribers: set[_Subscriber] = set()
        self.finished = False  # the terminal event arrived
        self.failure: BaseException | None = None  # the upstream broke
        # The user the server named when it let this credential see the job (set by the stream endpoints).
        self.caller: str | None = None
        self.task = asyncio.create_task(self._pump(), name=f"reelcast-feed-{job_id}")
        self._linger: asyncio.TimerHandle | None = None
        self._last_event_at = 0.0
        self._wake_handle: asyncio.TimerHandle | None = None

    @property
    def closed(self) -> bool:
        return self.finished or self.failure is not None

    async def _pump(self) -> None:
        counters = self.hub.counters
        counters.upstreams_open += 1
        counters.upstreams_opened += 1
        UPSTREAM_STREAMS.inc()
        call = self.hub.stub.WatchJob(
            job_service_pb2.WatchJobRequest(job_id=self.job_id, after_sequence=0),
            metadata=self.hub.metadata(),
        )
        try:
            async for progress in call:
                event = ProjectedEvent(progress)
                self.events.append(event)
                for subscriber in self.subscribers:
                    subscriber.offer(event)
                # Not the end yet: the server goes on past an attempt's terminal event when the job was
                # retried, and it ends the call after the last one.
                self.finished = event.terminal
                self._wake_soon()
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
            UPSTREAM_STREAMS.dec()
            ended = _Ended(self)
            for subscriber in list(self.subscribers):
                subscriber.offer(ended)
            self._wake_now()
            if self.failure is not None:
                self.hub.forget(self)  # a broken feed must not serve later subscribers
            else:
                self.schedule_linger()

    def _wake_soon(self) -> None:
        """Wakes the subscribers now after a quiet spell, else once the window of this burst closes."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        quiet = now - self._last_event_at >= QUIET_SECONDS
        self._last_event_at = now
        if self._wake_handle is not None:
            return
        if quiet:
            self._wake_now()
            return
        window = MIN_WAKE_WINDOW + WAKE_WINDOW_PER_SUBSCRIBER * len(self.subscribers)
        self._wake_handle = loop.call_at(now + min(window, MAX_WAKE_WINDOW), self._wake_now)

    def _wake_now(self) -> None:
        if self._wake_handle is not None:
            self._wake_handle.cancel()
            self._wake_handle = None
        for subscriber in self.subscribers:
            subscriber.wake()

    def replay_after(self, after_sequence: int) -> list[ProjectedEvent]:
        """What a subscriber with cursor ``after_sequence`` is owed from memory.

        The first event may be a RESYNC (history was trimmed server side): a cursor older than it gets it,
        exactly as ``WatchJob`` itself would answer.
        """
        if self.events and self.events[0].kind == job_pb2.EVENT_KIND_RESYNC:
            if after_sequence < self.events[0].sequence:
                return list(self.events)
            return [e for e in self.events[1:] if e.sequence > after_sequence]
        return [e for e in self.events if e.sequence > after_sequence]

    def follow(self, after_sequence: int) -> Subscription:
        """Every event after ``after_sequence`` up to the terminal one, in batches (:class:`Subscription`)."""
        return Subscription([(self, after_sequence)])

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


class Subscription:
    """One SSE response following one or more feeds (several on ``/api/events``) through one queue.

    :meth:`next_batch` returns, in order per job, every event after each feed's cursor up to its terminal one:
    first the backlog from memory, then live events as they arrive, as many per batch as are waiting. It
    raises :class:`FeedEndedError` (after delivering what came before) when a feed broke, and
    :class:`SubscriberOverflowError` when the subscriber fell too far behind; the client then resumes
    exactly with ``Last-Event-ID``.
    """

    # Slotted: an idle stream holds its subscription for its whole life.
    __slots__ = ("_backlog", "_cursors", "_failure", "_open", "_overflowed", "_registered", "subscriber")

    def __init__(self, feeds: list[tuple[JobFeed, int]]) -> None:
        self.subscriber = _Subscriber()
        self._cursors: dict[str, int] = {}
        self._open: set[str] = set()  # jobs whose terminal event has not been delivered
        self._backlog: list[ProjectedEvent] = []
        self._failure: FeedEndedError | None = None
        self._overflowed: SubscriberOverflowError | None = None
        self._registered: list[JobFeed] = []
        # Snapshots and registrations happen without an await between them: no event can fall in a gap.
        for feed, after in feeds:
            cursor, done = after, False
            for event in feed.replay_after(after):
                self._backlog.append(event)
                cursor = event.sequence
                if event.terminal:
                    done = True
                    break
            self._cursors[feed.job_id] = cursor
            if done:
                continue
            if feed.failure is not None:
                self._failure = self._failure or FeedEndedError(str(feed.failure))
            elif not feed.finished:
                self._open.add(feed.job_id)
                feed.subscribers.add(self.subscriber)
                feed.hub.counters.subscribers += 1
                feed.cancel_linger()
                self._registered.append(feed)

    @property
    def complete(self) -> bool:
        """Every job's terminal event was delivered: the stream is over."""
        return not self._backlog and not self._open and self._failure is None

    def interrupt(self) -> None:
        """The client went away: a pending :meth:`next_batch` returns None at once."""
        self.subscriber.interrupt()

    @property
    def interrupted(self) -> bool:
        return self.subscriber.interrupted

    def wake(self) -> None:
        """Ends a pending :meth:`next_batch` with None (a heartbeat is due)."""
        self.subscriber.wake()

    @property
    def waiting(self) -> bool:
        return self.subscriber.waiting

    def take_now(self) -> list[ProjectedEvent] | None:
        """What :meth:`next_batch` would return at once when that is live events only, none of them
        terminal (so the stream goes on): the queued ones past each cursor, taken. None, taking nothing,
        for anything else (a backlog, a break, an overflow, an end): the response's task handles those."""
        if self._backlog or self._failure is not None:
            return None
        items = self.subscriber.items
        for item in items:
            if not isinstance(item, ProjectedEvent) or item.terminal:
                return None
        self.subscriber.items = []
        cursors, still_open = self._cursors, self._open
        batch: list[ProjectedEvent] = []
        for event in cast(list[ProjectedEvent], items):  # every one checked above
            job_id = event.job_id
            if job_id in still_open and event.sequence > cursors[job_id]:
                batch.append(event)
                cursors[job_id] = event.sequence
        return batch

    def write_directly(self, write: Callable[[], bool] | None) -> None:
        """Lets ``write`` (which calls :meth:`take_now`) deliver events without waking the response's task;
        None stops it."""
        self.subscriber.direct = write

    async def next_batch(self) -> list[ProjectedEvent] | None:
        """The events owed now, in order per job (the backlog first); None if woken without any (a heartbeat
        is due, see :meth:`wake`) or the client went away; ``[]`` once :attr:`complete`."""
        if self._backlog:
            backlog, self._backlog = self._backlog, []
            return backlog
        if self._failure is not None:
            raise self._overflowed or self._failure
        cursors, still_open = self._cursors, self._open
        while still_open:
            items = await self.subscriber.take()
            if items is None:
                return None
            batch: list[ProjectedEvent] = []
            for item in items:
                if isinstance(item, ProjectedEvent):
                    job_id = item.job_id
                    if job_id not in still_open or item.sequence <= cursors[job_id]:
                        continue  # already in the backlog
                    batch.append(item)
                    cursors[job_id] = item.sequence
                    if item.terminal:
                        still_open.discard(job_id)
                elif isinstance(item, _Ended):
                    if item.feed.failure is not None and item.feed.job_id in still_open:
                        # What came before the break goes out first; the next call raises.
                        self._failure = FeedEndedError(str(item.feed.failure))
                        break
                else:
                    self._failure = FeedEndedError("subscriber overflowed")
                    self._overflowed = item
                    break
            if batch:
                return batch
            if self._failure is not None:
                raise self._overflowed or self._failure
        return []

    def close(self) -> None:
        """Leaves every feed (idempotent)."""
        registered, self._registered = self._registered, []
        for feed in registered:
            if self.subscriber in feed.subscribers:
                feed.subscribers.discard(self.subscriber)
                feed.hub.counters.subscribers -= 1
                if not feed.subscribers:
                    feed.schedule_linger()


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

    def feed(self, job_id: str, last_sequence: int = 0) -> JobFeed:
        """The job's shared feed for the current credential, opening its upstream if there is none, or if the
        one there ended before ``last_sequence`` (the job's last event as the server reports it now: a
        retried job's log went on)."""
        key = (job_id, self.credential())
        existing = self.feeds.get(key)
        if existing is not None and _serves(existing, last_sequence - 1):
            return existing
        created = JobFeed(self, job_id, key)
        self.feeds[key] = created
        return created

    def live_feed(self, job_id: str, after_sequence: int = 0) -> JobFeed | None:
        """The job's feed for the current credential if one exists, has not broken and can serve a cursor at
        ``after_sequence``."""
        existing = self.feeds.get((job_id, self.credential()))
        return existing if existing is not None and _serves(existing, after_sequence) else None

    def forget_job(self, job_id: str) -> None:
        """Drops the job's feeds of every credential (it was retried: a lingering feed holds its old end)."""
        for key in [key for key in self.feeds if key[0] == job_id]:
            feed = self.feeds.pop(key)
            if not feed.subscribers:
                feed.cancel_linger()
                feed.task.cancel()

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


def _serves(feed: JobFeed, after_sequence: int) -> bool:
    """Whether ``feed`` can serve a cursor at ``after_sequence``: it has not broken, and a finished one holds
    an event past the cursor (or the cursor is not past 0). Past a finished feed's end, only the server knows
    whether the job went on (a retry)."""
    if feed.failure is not None:
        return False
    return not (
        after_sequence > 0 and feed.finished and feed.events and feed.events[-1].sequence <= after_sequence
    )


def channel_metadata(correlation_id: str) -> tuple[tuple[str, str], ...]:
    return (("x-correlation-id", correlation_id),)
