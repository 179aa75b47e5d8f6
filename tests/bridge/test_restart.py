"""The bridge as its own process (``reelcast bridge``), restarted mid-job: a client that reconnects with
Last-Event-ID gets the rest of the job, with no gap and no duplicate."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from reelcast.jobs.v1 import job_service_pb2
from reelcast.server.app import ReelcastServer
from tests.bridge.conftest import HANG_TIMEOUT, SseEvent, create_job, read_sse
from tests.stages import PipelinePlugin

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub

_LISTENING = re.compile(r"reelcast bridge on http://[^:]+:(\d+)/")


class BridgeProcess:
    def __init__(self, target: str, log_path: Path) -> None:
        self.target = target
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, port: int = 0) -> int:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        command = ["-m", "reelcast.server.cli", "bridge", "--grpc-target", self.target]
        command += ["--http-listen", f"127.0.0.1:{port}"]
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, *command, stdout=log, stderr=asyncio.subprocess.STDOUT
            )
        deadline = time.monotonic() + HANG_TIMEOUT
        while time.monotonic() < deadline:
            found = _LISTENING.search(self.log_path.read_bytes()[offset:].decode(errors="replace"))
            if found:
                return int(found.group(1))
            assert self.process.returncode is None, self.log_path.read_text()
            await asyncio.sleep(0.05)
        raise TimeoutError(self.log_path.read_text())

    async def stop(self, signum: int) -> None:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signum)
        await asyncio.wait_for(self.process.wait(), HANG_TIMEOUT)


async def test_a_restarted_bridge_resumes_a_client_exactly_from_its_last_event_id(
    server: ReelcastServer, stub: JobServiceAsyncStub, tmp_path: Path
) -> None:
    server.host.register(PipelinePlugin(delay=0.2), "pipeline")
    bridge = BridgeProcess(server.target, tmp_path / "bridge.log")
    port = await bridge.start()
    received: list[SseEvent] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=HANG_TIMEOUT) as client:
            job = await create_job(client)
            url = f"/api/jobs/{job['jobId']}/events"
            received += (await read_sse(client, url, max_events=6)).events
        await bridge.stop(signal.SIGKILL)  # no goodbye: the browser just sees the connection drop

        port = await bridge.start(port)  # the same origin, as a browser would reconnect to
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=HANG_TIMEOUT) as client:
            reading = asyncio.create_task(read_sse(client, url, headers={"Last-Event-ID": received[-1].id}))
            await asyncio.sleep(1.0)  # let a few live events through the new process
            # A graceful stop ends the open stream instead of waiting for the browser to leave.
            await bridge.stop(signal.SIGTERM)
            piece = (await reading).events
            assert piece, "the stream delivered nothing before the stop"
            assert piece[-1].event not in ("job-completed", "job-failed"), "the job ended before the restart"
            received += piece
            port = await bridge.start(port)
            received += (await read_sse(client, url, headers={"Last-Event-ID": received[-1].id})).events
    finally:
        await bridge.stop(signal.SIGTERM)

    expected = [e async for e in stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job["jobId"]))]
    assert [e.id for e in received] == [str(p.sequence) for p in expected]
    assert received[-1].event == "job-completed"
