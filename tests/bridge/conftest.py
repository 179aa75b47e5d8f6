"""Bridge fixtures: a real gRPC server (tests/conftest.py) with a real bridge in front of it under uvicorn on
127.0.0.1:0, and a real HTTP client. ``read_sse`` is the tests' own small reader of the wire format."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from reelcast.bridge.app import create_app
from reelcast.bridge.server import serve_app
from reelcast.plugins import Stage, StageContext, hookimpl
from reelcast.server.app import ReelcastServer
from tests.stages import PipelinePlugin

HANG_TIMEOUT = 60.0


@dataclass
class SseEvent:
    event: str
    data: dict[str, Any]
    id: str


@dataclass
class SseRead:
    """What one connection delivered, in order: events, and the comments and retry hints between them."""

    events: list[SseEvent] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    retry: int | None = None
    headers: httpx.Headers | None = None
    first_line: str = ""
    # The id of a frame with an id and no data (the all-jobs stream opens with its cursor so).
    start_id: str = ""


BridgeFactory = Callable[..., Awaitable[str]]


@pytest.fixture
async def start_bridge(server: ReelcastServer) -> AsyncIterator[BridgeFactory]:
    """Starts bridges (``create_app`` options as keywords) and returns each one's base URL."""
    stops: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def start(**options: Any) -> str:
        app = create_app(server.target, **options)
        stop = asyncio.Event()
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(serve_app(app, "127.0.0.1:0", stop=stop, on_ready=ready.set_result))
        stops.append((stop, task))
        port = await asyncio.wait_for(ready, HANG_TIMEOUT)
        return f"http://127.0.0.1:{port}"

    try:
        yield start
    finally:
        for stop, _task in stops:
            stop.set()
        await asyncio.wait_for(asyncio.gather(*(task for _, task in stops)), HANG_TIMEOUT)


@pytest.fixture
async def bridge_url(start_bridge: BridgeFactory) -> str:
    return await start_bridge(heartbeat_seconds=15.0)


@pytest.fixture
async def client(bridge_url: str) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=bridge_url, timeout=HANG_TIMEOUT, limits=limits) as open_client:
        yield open_client


@pytest.fixture
def pipeline(server: ReelcastServer) -> PipelinePlugin:
    """The built-in pipeline's shape with fast writing stages."""
    plugin = PipelinePlugin(delay=0.02)
    server.host.register(plugin, "pipeline")
    return plugin


async def read_sse(
    client: httpx.AsyncClient,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    max_events: int | None = None,
    until: Callable[[list[SseEvent]], bool] | None = None,
    on_open: Callable[[str], Awaitable[object]] | None = None,
) -> SseRead:
    """Reads one SSE response until it ends, or until ``max_events`` events or ``until(events)`` holds (then
    drops the connection). ``on_open`` is awaited with the id of an id-only frame (a stream's opening)."""
    read = SseRead()

    async def consume() -> None:
        async with client.stream("GET", url, headers=headers, params=params) as response:
            assert response.status_code == 200, await response.aread()
            read.headers = response.headers
            fields: dict[str, str] = {}
            async for line in response.aiter_lines():
                if not read.first_line:
                    read.first_line = line or "<blank>"
                if line.startswith(":"):
                    read.comments.append(line[1:].strip())
                elif line.startswith("retry:"):
                    read.retry = int(line[6:].strip())
                elif line:
                    name, _, value = line.partition(":")
                    fields[name] = value[1:] if value.startswith(" ") else value
                elif "data" in fields:
                    read.events.append(
                        SseEvent(
                            fields.get("event", "message"), json.loads(fields["data"]), fields.get("id", "")
                        )
                    )
                    fields = {}
                    if max_events is not None and len(read.events) >= max_events:
                        return
                    if until is not None and until(read.events):
                        return
                else:
                    if "id" in fields:
                        read.start_id = fields["id"]
                        if on_open is not None:
                            await on_open(read.start_id)
                    fields = {}

    await asyncio.wait_for(consume(), HANG_TIMEOUT)
    return read


async def create_job(client: httpx.AsyncClient, topic: str = "Otters", **headers: str) -> dict[str, Any]:
    response = await client.post("/api/jobs", json={"brief": {"topic": topic}}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


class BigOutputPlugin:
    """One stage that publishes a 200 KB file of varied bytes as the video, so ranges span several of
    ReadJobArtifact's 64 KiB chunks."""

    size = 200_000

    @hookimpl
    def register_stages(self, register: Callable[[Stage], None]) -> None:
        register(Stage(name="render", title="Rendering", weight=1.0, order=1, run=self._write))

    def _write(self, ctx: StageContext) -> dict[str, Any]:
        target = ctx.path("video.mp4")
        target.write_bytes(os.urandom(self.size))
        ctx.report(1.0, "written")
        return {"output": {"video_path": str(target), "size_bytes": self.size}}
