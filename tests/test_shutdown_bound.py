"""A stop is bounded whatever the store does: a ``reelcast serve`` whose database another process holds
locked (each write then waits SQLite's 30 s busy timeout) is ended by the shutdown watchdog once the grace
plus STOP_BOUND_SECONDS have passed, with status 1 and a log line, instead of waiting for its store. The
NATS side of this (a server that is gone) is tests/nats/test_shutdown.py."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
from pathlib import Path

import grpc

from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from reelcast.server.shutdown import STOP_BOUND_SECONDS, WATCHDOG_EXIT_STATUS
from tests.nats.test_remote_cancel import ffmpeg_pids_of
from tests.processes import ServerProcess

GRACE_SECONDS = 1.0
# A hang timeout, far above grace + bound; never a measurement.
HANG_TIMEOUT = GRACE_SECONDS + STOP_BOUND_SECONDS + 45.0


def start_render(target: str) -> str:
    with grpc.insecure_channel(target) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        spec = job_pb2.JobSpec(
            brief=job_pb2.Brief(topic="A stop stuck on its store: a long film about otters"),
            plan=job_pb2.Plan(target_duration_seconds=60),
            render=job_pb2.RenderSpec(width=640, height=360),
        )
        job = stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec), timeout=30).job
        for event in stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job.id), timeout=120):
            if event.kind == job_pb2.EVENT_KIND_STEP_PROGRESS and event.stage == "render":
                return job.id
    raise AssertionError("the job ended before its render started")


def test_a_stop_stuck_on_a_locked_database_is_ended_by_the_watchdog_after_grace_and_bound(
    tmp_path: Path,
) -> None:
    served = ServerProcess(tmp_path / "data", env={"REELCAST_SHUTDOWN_GRACE": str(GRACE_SECONDS)})
    locker = None
    try:
        job_id = start_render(served.start())
        locker = sqlite3.connect(tmp_path / "data" / "reelcast.db", isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        assert served.process is not None
        served.process.send_signal(signal.SIGTERM)
        try:
            code = served.process.wait(timeout=HANG_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"serve still runs after SIGTERM:\n{served.output()}") from None
        assert code == WATCHDOG_EXIT_STATUS, served.output()
        assert "after the stop signal; exiting now" in served.output()
        assert not ffmpeg_pids_of(job_id), "the render's ffmpeg outlived its server"
    finally:
        if locker is not None:
            locker.close()
        if served.process is not None and served.process.poll() is None:
            served.kill()
