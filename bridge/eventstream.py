"""The SSE response: writes a :class:`~reelcast.bridge.upstream.Subscription`'s batches as pre-framed bytes,
with the ``: ping`` heartbeat, the send timeout and the client's disconnect.

Intentional divergence from sse-starlette's ``EventSourceResponse`` (which frames the page's other needs
fine): per connection it runs four tasks in an anyio task group, and per send a cancel scope and a lock. At
1,000 connections that machinery was a quarter of the bridge's CPU while they connected, and most of the cost
of each write after. Here one task writes (batches, heartbeats) and one small task listens for the
disconnect. The wire format is the same bytes: ``: ping`` comments, ``retry:`` on the first one, events
framed by :class:`~reelcast.bridge.sse.ProjectedEvent`, and the headers ``Cache-Control: no-store``,
``Connection: keep-alive``, ``X-Accel-Buffering: no``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from reelcast.bridge.metrics import SSE_CONNECTIONS
from reelcast.bridge.sse import ProjectedEvent, ping
from reelcast.bridge.upstream import FeedEndedError, SubscriberOverflowError, Subscription

PING = ping().encode()
SSE_HEADERS = {"Cache-Control": "no-store", "Connection": "keep-alive", "X-Accel-Buffering": "no"}


class SendTimeoutError(TimeoutError):
    """A write to the client took longer than the send timeout: the client is dropped (it resumes with
    ``Last-Event-ID``), so a client that stopped reading cannot hold server memory."""


class EventStreamResponse(Response):
    media_type = "text/event-stream"

    def __init__(
        self,
        subscription: Subscription,
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
        self.first = ping(retry_ms).encode()
        self.heartbeat_seconds = heartbeat_seconds
        self.send_timeout_seconds = send_timeout_seconds
        self.status_code = 200
        self.background = None
        self.init_headers(SSE_HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        subscription = self.subscription
        start = {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        if scope["method"] == "HEAD":  # headers as for GET, no stream (it would never end)
            subscription.close()
            await send(start)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        gauge = SSE_CONNECTIONS.labels(stream=self.kind)
        gauge.inc()

        async def listen_for_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            subscription.interrupt()

        listener = asyncio.get_running_loop().create_task(listen_for_disconnect())
        try:
            await self._send(send, start)
            await self._send(send, {"type": "http.response.body", "body": self.first, "more_body": True})
            while True:
                try:
                    batch = await subscription.next_batch(self.heartbeat_seconds)
                except (FeedEndedError, SubscriberOverflowError):
                    break  # the response ends; the client resumes from its last id
                if subscription.interrupted:
                    return
                if batch is not None and not batch:
                    break  # every terminal event delivered
                body = PING if batch is None else self.encode(batch)
                await self._send(send, {"type": "http.response.body", "body": body, "more_body": True})
            if not subscription.interrupted:
                await self._send(send, {"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            subscription.close()
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            gauge.dec()

    async def _send(self, send: Send, message: dict[str, object]) -> None:
        try:
            async with asyncio.timeout(self.send_timeout_seconds):
                await send(message)
        except TimeoutError:
            raise SendTimeoutError(f"an SSE write took over {self.send_timeout_seconds} s") from None
