"""Shared fixtures: a real reelcast gRPC server on 127.0.0.1:0 with its own data dir."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from grpc import aio

from reelcast.jobs.v1 import job_service_pb2_grpc

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub
from reelcast.plugins.host import PluginHost
from reelcast.server.app import ReelcastServer
from reelcast.server.config import Settings
from tests.nats.natsproc import NatsServer
from tests.task_dump import DUMP_LEAD_SECONDS, start_dump_timer

# The suite predates authentication: its servers (in-process, and `reelcast serve` children, which inherit the
# environment) run with authentication explicitly off. tests/security runs every server with it on.
os.environ.setdefault("REELCAST_AUTH", "off")


@pytest.fixture(autouse=True)
def _dump_tasks_before_the_timeout(request: pytest.FixtureRequest) -> Iterator[None]:
    timeout = float(request.config.getini("timeout") or 0)
    if timeout <= DUMP_LEAD_SECONDS:
        yield
        return
    timer = start_dump_timer(timeout - DUMP_LEAD_SECONDS, request.node.nodeid)
    try:
        yield
    finally:
        timer.cancel()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        grpc_listen="127.0.0.1:0",
        progress_min_interval_seconds=0.0,
        shutdown_grace_seconds=0.5,
        auth_required=False,
    )


@pytest.fixture
def bare_host() -> PluginHost:
    """A plugin host without the built-in media stages; tests register their own stages."""
    return PluginHost.load(builtins=False)


ServerFactory = Callable[..., "AsyncIterator[ReelcastServer]"]


@pytest.fixture
async def server(settings: Settings, bare_host: PluginHost) -> AsyncIterator[ReelcastServer]:
    instance = ReelcastServer(settings, host=bare_host)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop(grace=0.5)


@pytest.fixture
async def channel(server: ReelcastServer) -> AsyncIterator[aio.Channel]:
    async with aio.insecure_channel(server.target) as open_channel:
        yield open_channel


@pytest.fixture
def stub(channel: aio.Channel) -> JobServiceAsyncStub:
    return job_service_pb2_grpc.JobServiceStub(channel)


def status_code(error: BaseException) -> grpc.StatusCode:
    assert isinstance(error, aio.AioRpcError), error
    return error.code()


SAMPLE_PLUGIN = Path(__file__).parent / "data" / "sample_plugin"


@pytest.fixture(scope="session")
def installed_sample_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample third-party plugin really installed (built as a wheel by pip) into a directory of its own;
    server processes get it on their PYTHONPATH."""
    target = tmp_path_factory.mktemp("site")
    # Built from a private copy: pip builds in the source tree, and each xdist worker has its own session, so
    # two workers building tests/data/sample_plugin at once break each other's build dir.
    source = tmp_path_factory.mktemp("sample-plugin-source") / "sample_plugin"
    shutil.copytree(SAMPLE_PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*command, "--target", str(target), str(source)], check=True)
    assert list(target.glob("reelcast_sample_plugin-1.2.3.dist-info"))
    return target


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A real nats-server (JetStream on) in a temp dir, for the NATS backend's tests."""
    node = NatsServer(tmp_path / "nats")
    node.start()
    try:
        yield node
    finally:
        node.stop()
