"""The fan-out ceiling on reelcast's own stack: a bare Starlette app under uvicorn (uvloop, httptools) that
broadcasts pre-framed SSE bytes to every subscriber. No gRPC, no store, no projection: each event is framed
once, and each subscriber's pending frames go out in one write. Bench-only; never shipped.

Run: ``python -m bench.broadcast_server`` (prints ``{"http", "pid"}``; runs until stdin closes).
``GET /sub`` subscribes; ``POST /publish?start=S&end=E`` broadcasts as fast as the subscribers take it until
the wall-clock time E; ``GET /stats`` answers how many events were published between S and E.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bench.payloads import sse_frames

# A subscriber more than this many frames behind holds the publisher back (no drops, bounded memory).
MAX_BACKLOG = 64


class Subscriber:
    def __init__(self) -> None:
        self.pending: list[bytes] = []
        self.ready = asyncio.Event()


class Hub:
    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames
        self.subscribers: set[Subscriber] = set()
        self.published_in_window = 0
        self.publishing: asyncio.Task[None] | None = None

    async def publish(self, start: float, end: float) -> None:
        frames, subscribers = self.frames, self.subscribers
        index = 0
        self.published_in_window = 0
        while (now := time.time()) < end:
            frame = frames[index % len(frames)]
            index += 1
            for subscriber in subscribers:
                subscriber.pending.append(frame)
                subscriber.ready.set()
            if now >= start:
                self.published_in_window += 1
            if index % 8 == 0:
                await asyncio.sleep(0)
                while any(len(s.pending) > MAX_BACKLOG for s in subscribers) and time.time() < end:  # noqa: ASYNC110
                    await asyncio.sleep(0.0005)


class EventStream(Response):
    """Sends the head, then every pending frame of its subscriber in one body chunk per wake-up."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-store")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b": ready\n\n", "more_body": True})
        subscriber = Subscriber()
        self.hub.subscribers.add(subscriber)
        try:
            while True:
                await subscriber.ready.wait()
                subscriber.ready.clear()
                body, subscriber.pending = b"".join(subscriber.pending), []
                await send({"type": "http.response.body", "body": body, "more_body": True})
        finally:
            self.hub.subscribers.discard(subscriber)


def build_app(hub: Hub) -> Starlette:
    async def subscribe(request: Request) -> Response:
        return EventStream(hub)

    async def publish(request: Request) -> Response:
        start, end = float(request.query_params["start"]), float(request.query_params["end"])
        hub.publishing = asyncio.create_task(hub.publish(start, end))
        return JSONResponse({"subscribers": len(hub.subscribers)})

    async def stats(request: Request) -> Response:
        if hub.publishing is not None:
            await hub.publishing
        return JSONResponse({"published": hub.published_in_window})

    routes: list[Route] = [
        Route("/sub", subscribe),
        Route("/publish", publish, methods=["POST"]),
        Route("/stats", stats),
    ]
    return Starlette(routes=routes)


async def serve(announce: Callable[[str], None]) -> None:
    config = uvicorn.Config(
        build_app(Hub(sse_frames(1000))),
        host="127.0.0.1",
        port=0,
        loop="none",
        http="httptools",
        log_level="warning",
        access_log=False,
        backlog=4096,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no started event
        await asyncio.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    announce(json.dumps({"http": f"127.0.0.1:{port}", "pid": os.getpid()}))
    del serving  # runs until the process exits
    await asyncio.to_thread(sys.stdin.read)
    # Nothing to keep: leave at once rather than cancel a thousand streams one by one.
    os._exit(0)


def main() -> None:
    import uvloop

    uvloop.run(serve(lambda line: print(line, flush=True)))


if __name__ == "__main__":
    main()
