"""The bridge as its own process (``reelcast bridge``), restarted mid-job: a client that reconnects with
Last-Event-ID gets the rest of the job, with no gap and no duplicate."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from reelcast.jobs.v1 import job_service_pb2
from reelcast.server.app import ReelcastServer
from tests.bridge.conftest import HANG_TIMEOUT, SseEvent, create_job, read_sse
from tests.launcher import ReelcastProcess
from tests.stages import PipelinePlugin

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub


class BridgeProcess:
    """``reelcast bridge`` as a child process (tests/launcher.py), started again on the port it is given."""

    def __init__(self, target: str, log_path: Path) -> None:
        self.child = ReelcastProcess("bridge", ["--grpc-target", target], log_path)

    async def start(self, port: int = 0) -> int:
        self.child.args[2:] = ["--http-listen", f"127.0.0.1:{port}"]
        await asyncio.to_thread(self.child.start, HANG_TIMEOUT)
        return int(self.child.http_base.rsplit(":", 1)[1])

    async def stop(self, signum: int) -> None:
        process = self.child.process
        assert process is not None
        if process.poll() is None:
            process.send_signal(signum)
        await asyncio.to_thread(process.wait, HANG_TIMEOUT)


async def test_a_restarted_bridge_resumes_a_client_exactly_from_its_last_event_id(
    server: ReelcastServer, stub: JobServiceAsyncStub, tmp_path: Path
) -> None:
    # Postprocessing waits for the test, so the job is still running at the second restart however slowly
    # the bridge starts on a loaded machine.
    pipeline = PipelinePlugin(delay=0.2, hold_at="postprocess")
    server.host.register(pipeline, "pipeline")
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
            pipeline.release.set()
            port = await bridge.start(port)
            received += (await read_sse(client, url, headers={"Last-Event-ID": received[-1].id})).events
    finally:
        await bridge.stop(signal.SIGTERM)

    expected = [e async for e in stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job["jobId"]))]
    assert [e.id for e in received] == [str(p.sequence) for p in expected]
    assert received[-1].event == "job-completed"
