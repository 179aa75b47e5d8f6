"""Security fixtures: a real server with authentication on (127.0.0.1:0), a real bridge under uvicorn in
front of it, real keys for two users and an admin, real gRPC and HTTP clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import httpx
import pytest
from grpc import aio

from reelcast.bridge.app import create_app
from reelcast.bridge.server import serve_app
from reelcast.jobs.status import decode_rpc_error
from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from reelcast.plugins.host import PluginHost
from reelcast.server.app import ReelcastServer
from reelcast.server.config import Settings
from tests.stages import PipelinePlugin

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub

HANG_TIMEOUT = 30.0
TERMINAL = (job_pb2.EVENT_KIND_JOB_COMPLETED, job_pb2.EVENT_KIND_JOB_FAILED)


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


@dataclass
class Secured:
    """One secured deployment: server, bridge and the keys of alice, bob and an admin."""

    server: ReelcastServer
    stub: JobServiceAsyncStub
    base_url: str
    keys: dict[str, str]
    key_ids: dict[str, str]
    clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.server.settings.data_dir

    def http(self, user: str | None) -> httpx.AsyncClient:
        """An HTTP client sending ``user``'s key as Bearer (None: no credentials)."""
        name = user or "anonymous"
        if name not in self.clients:
            headers = {"Authorization": f"Bearer {self.keys[user]}"} if user else {}
            self.clients[name] = httpx.AsyncClient(
                base_url=self.base_url, headers=headers, timeout=HANG_TIMEOUT
            )
        return self.clients[name]

    async def create_job(self, user: str, topic: str = "Otters") -> job_pb2.Job:
        reply = await self.stub.CreateJob(
            job_service_pb2.CreateJobRequest(spec=job_pb2.JobSpec(brief=job_pb2.Brief(topic=topic))),
            metadata=bearer(self.keys[user]),
        )
        return reply.job

    async def finish(self, user: str, job_id: str) -> list[job_pb2.JobProgress]:
        events = []
        call = self.stub.WatchJob(
            job_service_pb2.WatchJobRequest(job_id=job_id), metadata=bearer(self.keys[user])
        )
        async for event in call:
            events.append(event)
        assert events[-1].kind in TERMINAL
        return events


SecuredFactory = Callable[..., Awaitable[Secured]]


@pytest.fixture
async def start_secured(tmp_path: Path) -> AsyncIterator[SecuredFactory]:
    """Starts a secured deployment: ``plugin`` (default: the fast pipeline), ``bridge`` options for
    ``create_app`` and any ``Settings`` field as keywords."""
    started: list[tuple[Secured, asyncio.Event, asyncio.Task[None], aio.Channel]] = []

    async def start(
        plugin: object | None = None, bridge: dict[str, Any] | None = None, **overrides: Any
    ) -> Secured:
        values: dict[str, Any] = {
            "data_dir": tmp_path / f"data{len(started)}",
            "grpc_listen": "127.0.0.1:0",
            "progress_min_interval_seconds": 0.0,
            "shutdown_grace_seconds": 0.5,
            "auth_required": True,
            "key_recheck_seconds": 0.25,
        }
        values.update(overrides)
        server = ReelcastServer(Settings(**values), host=PluginHost.load(builtins=False))
        server.host.register(plugin if plugin is not None else PipelinePlugin(delay=0.01), "pipeline")
        await server.start()
        keys, key_ids = {}, {}
        for user, admin in (("alice", False), ("bob", False), ("root", True)):
            record, raw = await server.keys.acreate(user, admin=admin)
            keys[user], key_ids[user] = raw, record.id
        options: dict[str, Any] = {"auth_required": True, "heartbeat_seconds": 15.0, **(bridge or {})}
        app = create_app(server.target, **options)
        stop = asyncio.Event()
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(serve_app(app, "127.0.0.1:0", stop=stop, on_ready=ready.set_result))
        port = await asyncio.wait_for(ready, HANG_TIMEOUT)
        channel = aio.insecure_channel(server.target)
        secured = Secured(
            server, job_service_pb2_grpc.JobServiceStub(channel), f"http://127.0.0.1:{port}", keys, key_ids
        )
        started.append((secured, stop, task, channel))
        return secured

    try:
        yield start
    finally:
        for secured, stop, task, channel in started:
            for client in secured.clients.values():
                await client.aclose()
            stop.set()
            await asyncio.wait_for(task, HANG_TIMEOUT)
            await channel.close()
            await secured.server.stop(grace=0.5)


@pytest.fixture
async def secured(start_secured: SecuredFactory) -> Secured:
    return await start_secured()


def rpc_code(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """(gRPC status, catalogue code) of a failed call."""
    assert isinstance(error, aio.AioRpcError), error
    return error.code(), decode_rpc_error(error).code
