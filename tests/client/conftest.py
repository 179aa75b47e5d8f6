"""Client tests run against real servers: an in-process ``ReelcastServer`` on 127.0.0.1:0 running the fast
test pipeline (authentication off, or on with real keys), and real ``reelcast serve`` children where a
server process must die and come back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reelcast.client import RetryPolicy
from reelcast.plugins.host import PluginHost
from reelcast.server.app import ReelcastServer
from reelcast.server.config import Settings
from tests.client.proxy import CuttingProxy
from tests.stages import PipelinePlugin

HANG_TIMEOUT = 60.0
# Reconnect fast in tests, with a budget far beyond what a restart needs.
FAST_RETRY = RetryPolicy(max_attempts=200, initial_backoff=0.05, max_backoff=0.5, max_elapsed=90.0)


@dataclass
class Secured:
    server: ReelcastServer
    keys: dict[str, str]


async def _started(settings: Settings, delay: float, hang_at: str | None = None) -> ReelcastServer:
    server = ReelcastServer(settings, host=PluginHost.load(builtins=False))
    server.host.register(PipelinePlugin(delay=delay, hang_at=hang_at), "pipeline")
    await server.start()
    return server


@pytest.fixture
async def open_server(settings: Settings) -> AsyncIterator[ReelcastServer]:
    """Authentication off; each of the pipeline's 20 steps takes 20 ms, so a job streams for about 0.5 s."""
    server = await _started(settings, delay=0.02)
    try:
        yield server
    finally:
        await server.stop(grace=0.5)


@pytest.fixture
async def hanging_server(settings: Settings) -> AsyncIterator[ReelcastServer]:
    """Authentication off; a job runs until its render stage, which waits (a real subprocess) until the job
    is cancelled: a watch of it is live for as long as a test needs."""
    server = await _started(settings, delay=0.0, hang_at="render")
    try:
        yield server
    finally:
        await server.stop(grace=0.5)


async def _secured(tmp_path: Path, hang_at: str | None = None) -> AsyncIterator[Secured]:
    settings = Settings(
        data_dir=tmp_path / "secured",
        grpc_listen="127.0.0.1:0",
        progress_min_interval_seconds=0.0,
        shutdown_grace_seconds=0.5,
        auth_required=True,
        key_recheck_seconds=0.25,
    )
    server = await _started(settings, delay=0.0, hang_at=hang_at)
    keys = {user: (await server.keys.acreate(user))[1] for user in ("alice", "bob")}
    try:
        yield Secured(server, keys)
    finally:
        await server.stop(grace=0.5)


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Secured]:
    """Authentication on, with keys for alice and bob."""
    async for deployment in _secured(tmp_path):
        yield deployment


@pytest.fixture
async def secured_hanging(tmp_path: Path) -> AsyncIterator[Secured]:
    """Authentication on; jobs wait in their render stage until cancelled."""
    async for deployment in _secured(tmp_path, hang_at="render"):
        yield deployment


@pytest.fixture
async def proxy(open_server: ReelcastServer) -> AsyncIterator[CuttingProxy]:
    started = await CuttingProxy(open_server.target).start()
    try:
        yield started
    finally:
        await started.close()
