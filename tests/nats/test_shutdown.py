"""Shutdown with NATS gone: a ``reelcast worker`` or ``reelcast server`` told to stop while its nats-server is
down exits within the shutdown grace plus a bound, whatever NATS does, and a second SIGTERM or SIGINT stops it
at once even while the first stop still waits (docs/configuration.md, "SIGTERM").

The timeouts below are hang timeouts, far above what a stop takes, never measurements.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from grpc import aio

from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from reelcast.server.shutdown import STOP_BOUND_SECONDS
from tests.nats.natsproc import NatsServer
from tests.nats.processes import ReelcastProcess, server, worker
from tests.nats.test_remote_cancel import ffmpeg_pids_of

GRACE_SECONDS = 2.0
# Far above grace + bound: a stop that has not ended by then hangs.
HANG_TIMEOUT = GRACE_SECONDS + STOP_BOUND_SECONDS + 45.0
# Below the minute a start waits for NATS (NatsConnection.open), far above what a stop takes.
STARTUP_HANG_TIMEOUT = 30.0
# A grace no test waits out: only a second signal can end the stop in time.
LONG_GRACE_SECONDS = 600.0


def exit_code_within(process: ReelcastProcess, timeout: float) -> int | None:
    """The process's exit code, or None if it still runs after ``timeout`` seconds."""
    assert process.process is not None
    try:
        return process.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


async def render_running(api: ReelcastProcess) -> str:
    """Creates a job through ``api`` and returns its id once its render is under way."""
    async with aio.insecure_channel(api.address) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        spec = job_pb2.JobSpec(
            brief=job_pb2.Brief(topic="Shutdown without NATS: a long film about otters"),
            plan=job_pb2.Plan(target_duration_seconds=60),
            render=job_pb2.RenderSpec(width=640, height=360),
        )
        job = (await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec))).job
        request = job_service_pb2.WatchJobRequest(job_id=job.id)
        async for event in stub.WatchJob(request, timeout=120):
            if event.kind == job_pb2.EVENT_KIND_STEP_PROGRESS and event.stage == "render":
                return job.id
    raise AssertionError("the job ended before its render started")


@pytest.mark.parametrize("kind", ["worker", "server"])
def test_an_idle_process_stops_within_grace_and_bound_after_nats_is_killed(
    tmp_path: Path, nats_server: NatsServer, kind: str
) -> None:
    env = {"REELCAST_SHUTDOWN_GRACE": str(GRACE_SECONDS)}
    launch = worker if kind == "worker" else server
    process = launch(tmp_path, kind, nats_server.url, env)
    try:
        process.start()
        nats_server.kill()
        time.sleep(1.0)  # let the client notice the lost connection and start reconnecting
        assert process.process is not None
        process.process.send_signal(signal.SIGTERM)
        code = exit_code_within(process, HANG_TIMEOUT)
        assert code is not None, f"{kind} still runs after SIGTERM with NATS gone:\n{process.log()}"
        # A stop is not a failure: closing the dead connection is logged, never reported as an error.
        assert code == 0, process.log()
        assert "error:" not in process.log()
    finally:
        process.kill()


def test_a_worker_stopped_while_it_waits_for_an_unreachable_nats_at_start_exits_at_once(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    nats_server.kill()  # nothing listens at its address any more: the start waits a minute for NATS
    process = worker(tmp_path, "worker", nats_server.url, {"REELCAST_SHUTDOWN_GRACE": str(GRACE_SECONDS)})
    process.process = subprocess.Popen(
        [sys.executable, "-m", "reelcast.cli", "worker", *process.args],
        stdout=process.log_path.open("ab"),
        stderr=subprocess.STDOUT,
        env=process.env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while "NATS connection: ConnectionRefusedError" not in process.log():
            assert process.process.poll() is None, process.log()
            assert time.monotonic() < deadline, process.log()
            time.sleep(0.05)
        process.process.send_signal(signal.SIGTERM)
        # Far less than the minute the start would wait for NATS, far more than stopping takes.
        code = exit_code_within(process, STARTUP_HANG_TIMEOUT)
        assert code == 0, f"the worker went on waiting for NATS after SIGTERM:\n{process.log()}"
    finally:
        process.kill()


async def test_a_worker_running_a_job_stops_within_grace_and_bound_after_nats_is_killed(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    env = {"REELCAST_SHUTDOWN_GRACE": str(GRACE_SECONDS)}
    api = server(tmp_path, "server", nats_server.url, {})
    runner = worker(tmp_path, "worker", nats_server.url, env)
    try:
        await asyncio.gather(asyncio.to_thread(api.start), asyncio.to_thread(runner.start))
        await render_running(api)
        nats_server.kill()
        assert runner.process is not None
        runner.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(exit_code_within, runner, HANG_TIMEOUT)
        assert code is not None, f"the worker still runs after SIGTERM with NATS gone:\n{runner.log()}"
        assert code == 0, runner.log()
    finally:
        runner.kill()
        api.kill()


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT])
async def test_a_second_signal_stops_a_worker_at_once_while_the_first_stop_waits(
    tmp_path: Path, nats_server: NatsServer, second: signal.Signals
) -> None:
    env = {"REELCAST_SHUTDOWN_GRACE": str(LONG_GRACE_SECONDS)}
    api = server(tmp_path, "server", nats_server.url, {})
    runner = worker(tmp_path, "worker", nats_server.url, env)
    try:
        await asyncio.gather(asyncio.to_thread(api.start), asyncio.to_thread(runner.start))
        job_id = await render_running(api)
        nats_server.kill()
        assert runner.process is not None
        runner.process.send_signal(signal.SIGTERM)
        # The job cannot finish without NATS, so the first stop waits out its long grace.
        assert await asyncio.to_thread(exit_code_within, runner, 2.0) is None, runner.log()
        runner.process.send_signal(second)
        code = await asyncio.to_thread(exit_code_within, runner, HANG_TIMEOUT)
        assert code is not None, f"the worker ignored a second {second.name}:\n{runner.log()}"
        assert code == 128 + second, runner.log()
        assert "stopping at once" in runner.log()
        assert not ffmpeg_pids_of(job_id), "the render's ffmpeg outlived its worker"
    finally:
        runner.kill()
        api.kill()


async def test_a_second_sigterm_stops_a_server_at_once_while_the_first_stop_waits(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    # `reelcast serve` on NATS runs jobs itself: its first stop waits for the running job as a worker's does.
    env = {"REELCAST_SHUTDOWN_GRACE": str(LONG_GRACE_SECONDS)}
    args = ["--store", nats_server.url, "--grpc-listen", "127.0.0.1:0", "--no-bridge"]
    api = ReelcastProcess(
        "serve", [*args, "--data-dir", str(tmp_path / "serve")], tmp_path / "serve.log", env
    )
    try:
        api.start()
        job_id = await render_running(api)
        nats_server.kill()
        assert api.process is not None
        api.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(exit_code_within, api, 2.0) is None, api.log()
        api.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(exit_code_within, api, HANG_TIMEOUT)
        assert code == 128 + signal.SIGTERM, api.log()
        assert not ffmpeg_pids_of(job_id), "the render's ffmpeg outlived its server"
    finally:
        api.kill()
