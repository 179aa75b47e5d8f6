"""The SSE response: writes a :class:`~reelcast.bridge.upstream.Subscription`'s batches as pre-framed bytes,
with the ``: ping`` heartbeat, the send timeout and the client's disconnect.

Intentional divergence from sse-starlette's ``EventSourceResponse`` (which frames the page's other needs
fine): per connection it runs four tasks in an anyio task group, and per send a cancel scope and a lock. At
1,000 connections that machinery was a quarter of the bridge's CPU while they connected, and most of the cost
of each write after. Here one task writes (batches, heartbeats), and one :class:`StreamClock` per event loop
sends every stream's heartbeats and enforces every send timeout (a timer per wait and per send cost more
than the write at 100,000 events/s). Under reelcast's HTTP protocol (:class:`StreamConnection`) the
connection reports the disconnect, and live events for a stream parked between writes are written by the
feed that brought them, without waking the task; elsewhere a small task listens for the disconnect. The
wire format is the same bytes: ``: ping`` comments, ``retry:`` on the first one, events framed by
:class:`~reelcast.bridge.sse.ProjectedEvent`, and the headers ``Cache-Control: no-store``,
``Connection: keep-alive``, ``X-Accel-Buffering: no``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from reelcast.bridge.metrics import CONNECTIONS_BY_KIND
from reelcast.bridge.sse import ProjectedEvent, ping_frame
from reelcast.bridge.upstream import FeedEndedError, SubscriberOverflowError, Subscription
from reelcast.jobs.metadata import correlation_id_var

log = logging.getLogger(__name__)


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


# Where :class:`StreamHandOff` leaves its slot in an HTTP scope.
HANDOFF_KEY = "reelcast.stream"
# Where reelcast's HTTP protocol puts itself in a scope, as a :class:`StreamConnection`.
CONNECTION_KEY = "reelcast.connection"


@runtime_checkable
class StreamConnection(Protocol):
    """What reelcast's HTTP protocol (bridge/http_protocol.py) offers a stream beyond ASGI.

    It calls back when the client goes away, so an idle stream needs no task waiting on ``receive`` for
    the ``http.disconnect`` (a task, its frames and a future: about 1.5 KiB per stream). And it takes a
    body chunk at once while the response is streaming and the socket is not backed up, so that events
    for a stream parked between writes go out from the feed that brought them, without waking the
    stream's task (docs/benchmarks.md, fan-out and burst)."""

    def notify_disconnect(self, callback: Callable[[], None] | None) -> bool:
        """Calls ``callback`` once when the connection is lost (None: no longer); False if it already
        was (the callback is then not kept)."""

    def can_write_now(self, scope: Scope) -> bool:
        """Whether the response to the request of ``scope`` is streaming chunks and the transport takes
        more without waiting (not paused by flow control, not closing)."""

    def write_chunk(self, body: bytes) -> None:
        """Writes ``body`` as one chunk of that response (only right after :meth:`can_write_now`)."""


class HandOffSlot:
    """The stream a request handed off, if any (a shared object, so a copied scope still reaches it)."""

    __slots__ = ("stream",)

    def __init__(self) -> None:
        self.stream: EventStreamResponse | None = None


class StreamHandOff:
    """Runs an SSE stream's body outside the app's middleware chain.

    An :class:`EventStreamResponse` sends its head through the chain (every middleware adds its headers and
    checks to the head), then leaves itself in the scope's slot and returns; the chain unwinds, and this
    layer, outside it, runs the body on the server's own ``send`` and ``receive``. A stream that lasts hours
    then holds no middleware coroutine frames and no open server span, and each frame of it skips the
    chain's ``send`` wrappers (docs/benchmarks.md measured both). Without this layer the body runs inline,
    as any response's does.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        slot = scope[HANDOFF_KEY] = HandOffSlot()
        try:
            await self.app(scope, receive, send)
        except BaseException:
            if slot.stream is not None:
                slot.stream.abandon()
            raise
        if slot.stream is not None:
            stream, slot.stream = slot.stream, None
            try:
                await stream.stream(scope, receive, send)
            except Exception:
                log.exception("SSE stream failed (correlation id %s)", stream.correlation_id)
                raise


class SendTimeoutError(TimeoutError):
    """A write to the client took longer than the send timeout: the client is dropped (it resumes with
    ``Last-Event-ID``), so a client that stopped reading cannot hold server memory."""


class StreamClock:
    """The one timer of all open streams on an event loop: wakes a stream idle for its heartbeat interval (it
    then writes ``: ping``) and cancels a send stuck past its timeout. It ticks while streams are open, at a
    fifth of the shortest interval (at most once a second), so a heartbeat is never early and at most that
    much late."""

    # Batches written straight from a feed (EventStreamResponse._write_now), all streams of the process.
    direct_writes = 0

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
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.subscription = subscription
        self.on_close = on_close
        self.correlation_id = ""
        # While the stream may be written straight from its feed: the connection, the request, the source.
        self._direct: tuple[StreamConnection, Scope, Subscription] | None = None
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
        start = {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        if scope["method"] == "HEAD":  # headers as for GET, no stream (it would never end)
            self.abandon()
            await send(start)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        # The head goes out through the middleware chain, which adds its headers (correlation id, security,
        # CORS). The body does not: under :class:`StreamHandOff` the chain unwinds here and the stream runs
        # on the server's own send and receive.
        try:
            await self._send(send, start)
        except BaseException:
            self.abandon()
            raise
        self.raw_headers = []  # sent: a stream of hours need not keep them
        slot = scope.get(HANDOFF_KEY)
        if isinstance(slot, HandOffSlot):
            self.correlation_id = correlation_id_var.get()
            slot.stream = self
            return
        await self.stream(scope, receive, send)

    def abandon(self) -> None:
        """Ends a stream that will not run (HEAD, a failed head, a hand-off that never ran)."""
        self.subscription.close()
        if self.on_close is not None:
            on_close, self.on_close = self.on_close, None
            on_close()

    async def stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The body: the first ping with the ``retry:`` hint, then batches and heartbeats until the end."""
        subscription = self.subscription
        gauge = CONNECTIONS_BY_KIND[self.kind]
        gauge.inc()
        # The client's disconnect: told by the connection itself under reelcast's HTTP protocol
        # (bridge/http_protocol.py), else heard by a task waiting on ``receive``, as ASGI has it.
        connection = scope.get(CONNECTION_KEY)
        listener: asyncio.Task[None] | None = None
        if isinstance(connection, StreamConnection):
            if not connection.notify_disconnect(subscription.interrupt):
                subscription.interrupt()  # gone already
            if isinstance(subscription, Subscription):
                self._direct = (connection, scope, subscription)
                subscription.write_directly(self._write_now)
        else:

            async def listen_for_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                subscription.interrupt()

            listener = asyncio.get_running_loop().create_task(listen_for_disconnect())
        self._task = asyncio.current_task()
        clock = _clock()
        clock.add(self)
        try:
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
                del body, batch  # an idle stream holds no copy of what it last wrote
            if not subscription.interrupted:
                await self._send(send, {"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            clock.discard(self)
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
            elif isinstance(connection, StreamConnection):
                connection.notify_disconnect(None)
            if self._direct is not None:
                self._direct[2].write_directly(None)
                self._direct = None
            self.abandon()
            gauge.dec()

    def _write_now(self) -> bool:
        """Writes the events queued for this stream, parked between writes, at once from the caller (the
        feed); False when it cannot (the connection is backed up, or what is queued ends the stream, or
        anything but live events): the stream's task then takes them as usual."""
        if self._direct is None:
            return False
        connection, scope, subscription = self._direct
        if not connection.can_write_now(scope):
            return False
        batch = subscription.take_now()
        if batch is None:
            return False
        if batch:
            connection.write_chunk(self.encode(batch))
            self._last_write = asyncio.get_running_loop().time()
            StreamClock.direct_writes += 1
        return True

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
