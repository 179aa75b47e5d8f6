"""The SSE response: writes a :class:`~reelcast.bridge.upstream.Subscription`'s batches as pre-framed bytes,
with the ``: ping`` heartbeat, the send timeout and the client's disconnect.

Intentional divergence from sse-starlette's ``EventSourceResponse`` (which frames the page's other needs
fine): per connection it runs four tasks in an anyio task group, and per send a cancel scope and a lock. At
1,000 connections that machinery was a quarter of the bridge's CPU while they connected, and most of the cost
of each write after. Here one task writes (batches, heartbeats) and one small task listens for the
disconnect, and one :class:`StreamClock` per event loop sends every stream's heartbeats and enforces every
send timeout (a timer per wait and per send cost more than the write at 100,000 events/s). The wire format is
the same bytes: ``: ping`` comments, ``retry:`` on the first one, events
framed by :class:`~reelcast.bridge.sse.ProjectedEvent`, and the headers ``Cache-Control: no-store``,
``Connection: keep-alive``, ``X-Accel-Buffering: no``.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable
from typing import Protocol

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from reelcast.bridge.metrics import CONNECTIONS_BY_KIND
from reelcast.bridge.sse import ProjectedEvent, ping_frame
from reelcast.bridge.upstream import FeedEndedError, SubscriberOverflowError


class EventSource(Protocol):
    """What a stream writes from: :class:`~reelcast.bridge.upstream.Subscription` (per-job feeds) or
    :class:`~reelcast.bridge.alljobs.AllJobsSubscription` (WatchJobs)."""

    @property
    def complete(self) -> bool: ...
    @property
    def interrupted(self) -> bool: ...
    @property
    def waiting(self) -> bool: ...
    async def next_batch(self) -> list[ProjectedEvent] | None: ...
    def interrupt(self) -> None: ...
    def wake(self) -> None: ...
    def close(self) -> None: ...


PING = ping_frame()
SSE_HEADERS = {"Cache-Control": "no-store", "Connection": "keep-alive", "X-Accel-Buffering": "no"}


class SendTimeoutError(TimeoutError):
    """A write to the client took longer than the send timeout: the client is dropped (it resumes with
    ``Last-Event-ID``), so a client that stopped reading cannot hold server memory."""


class StreamClock:
    """The one timer of all open streams on an event loop: wakes a stream idle for its heartbeat interval (it
    then writes ``: ping``) and cancels a send stuck past its timeout. It ticks while streams are open, at a
    fifth of the shortest interval (at most once a second), so a heartbeat is never early and at most that
    much late."""

    def __init__(self) -> None:
        self.streams: set[EventStreamResponse] = set()
        self._task: asyncio.Task[None] | None = None

    def add(self, stream: EventStreamResponse) -> None:
        self.streams.add(stream)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._tick(), name="reelcast-sse-clock")

    def discard(self, stream: EventStreamResponse) -> None:
        self.streams.discard(stream)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while self.streams:
            shortest = min(min(s.heartbeat_seconds, s.send_timeout_seconds) for s in self.streams)
            await asyncio.sleep(min(1.0, max(0.01, shortest / 5)))
            now = loop.time()
            for stream in list(self.streams):
                stream.check(now)


_CLOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, StreamClock] = weakref.WeakKeyDictionary()


def _clock() -> StreamClock:
    loop = asyncio.get_running_loop()
    clock = _CLOCKS.get(loop)
    if clock is None:
        clock = _CLOCKS[loop] = StreamClock()
    return clock


class EventStreamResponse(Response):
    media_type = "text/event-stream"

    def __init__(
        self,
        subscription: EventSource,
        encode: Callable[[list[ProjectedEvent]], bytes],
        *,
        kind: str,
        retry_ms: int,
        heartbeat_seconds: float,
        send_timeout_seconds: float,
    ) -> None:
        self.subscription = subscription
        self.encode = encode
        self.kind = kind
        self.first = ping_frame(retry_ms)
        self.heartbeat_seconds = heartbeat_seconds
        self.send_timeout_seconds = send_timeout_seconds
        self.status_code = 200
        self.background = None
        self.init_headers(SSE_HEADERS)
        self._task: asyncio.Task[object] | None = None
        self._last_write = 0.0
        self._sending_since: float | None = None
        self._timed_out = False

    def check(self, now: float) -> None:
        """Called by the clock: a heartbeat is due, or a send has waited too long."""
        if self._sending_since is not None:
            if now - self._sending_since > self.send_timeout_seconds and self._task is not None:
                self._timed_out = True
                self._task.cancel()
        elif now - self._last_write >= self.heartbeat_seconds and self.subscription.waiting:
            self.subscription.wake()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        subscription = self.subscription
        start = {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        if scope["method"] == "HEAD":  # headers as for GET, no stream (it would never end)
            subscription.close()
            await send(start)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        gauge = CONNECTIONS_BY_KIND[self.kind]
        gauge.inc()

        async def listen_for_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            subscription.interrupt()

        loop = asyncio.get_running_loop()
        listener = loop.create_task(listen_for_disconnect())
        self._task = asyncio.current_task()
        clock = _clock()
        clock.add(self)
        try:
            await self._send(send, start)
            await self._send(send, {"type": "http.response.body", "body": self.first, "more_body": True})
            while True:
                try:
                    batch = await subscription.next_batch()
                except (FeedEndedError, SubscriberOverflowError):
                    break  # the response ends; the client resumes from its last id
                if subscription.interrupted:
                    return
                if batch is not None and not batch:
                    break  # every terminal event delivered
                body = PING if batch is None else self.encode(batch)
                # The batch that completes the stream also ends the response: one write, not two.
                more = not subscription.complete
                await self._send(send, {"type": "http.response.body", "body": body, "more_body": more})
                if not more:
                    return
            if not subscription.interrupted:
                await self._send(send, {"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            clock.discard(self)
            subscription.close()
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            gauge.dec()

    async def _send(self, send: Send, message: dict[str, object]) -> None:
        loop = asyncio.get_running_loop()
        self._sending_since = loop.time()
        try:
            await send(message)
        except asyncio.CancelledError:
            if not self._timed_out:
                raise
            if self._task is not None:
                self._task.uncancel()
            raise SendTimeoutError(f"an SSE write took over {self.send_timeout_seconds} s") from None
        finally:
            self._sending_since = None
        self._last_write = loop.time()
