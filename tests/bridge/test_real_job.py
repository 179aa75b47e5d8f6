"""One short real job (5 s, 640x360, the built-in ffmpeg stages) through the bridge: the documented stream
end to end, and the rendered MP4 and thumbnail served over HTTP with ranges."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from grpc import aio

from reelcast.bridge.app import create_app
from reelcast.bridge.server import serve_app
from reelcast.jobs.v1 import job_service_pb2, job_service_pb2_grpc
from reelcast.server.app import ReelcastServer
from reelcast.server.config import Settings
from tests.bridge.conftest import HANG_TIMEOUT, read_sse
from tests.bridge.test_sse import assert_conformant


@pytest.fixture
async def real_server(tmp_path: Path) -> AsyncIterator[ReelcastServer]:
    settings = Settings(
        data_dir=tmp_path / "data",
        grpc_listen="127.0.0.1:0",
        progress_min_interval_seconds=0.0,
        x264_preset="ultrafast",
    )
    instance = ReelcastServer(settings)  # the built-in stages
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop(grace=0.5)


async def test_a_real_job_streams_the_documented_events_and_serves_its_mp4_with_ranges(
    real_server: ReelcastServer,
) -> None:
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    app = create_app(real_server.target)
    serving = asyncio.create_task(serve_app(app, "127.0.0.1:0", stop=stop, on_ready=ready.set_result))
    try:
        port = await asyncio.wait_for(ready, HANG_TIMEOUT)
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=HANG_TIMEOUT * 3) as client,
            aio.insecure_channel(real_server.target) as channel,
        ):
            body = {
                "brief": {"topic": "Why the sky is blue"},
                "plan": {"targetDurationSeconds": 5},
                "render": {"width": 640, "height": 360},
            }
            created = await client.post("/api/jobs", json=body, headers={"X-Correlation-ID": "real-1"})
            assert created.status_code == 201, created.text
            job_id = created.json()["jobId"]
            live = (await read_sse(client, f"/api/jobs/{job_id}/events")).events
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            watched = [e async for e in stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job_id))]
            assert_conformant(live, watched, "real-1")
            progress = [e for e in live if e.event == "step-progress" and e.data["step"] == "Rendering"]
            assert progress, "the render stage reported no progress"

            output = live[-1].data["output"]
            data = Path(output["videoPath"]).read_bytes()
            assert output["sizeBytes"] == len(data)
            ranged = await client.get(f"/api/jobs/{job_id}/output", headers={"Range": "bytes=100-70099"})
            assert ranged.status_code == 206
            assert ranged.headers["content-type"] == "video/mp4"
            assert ranged.headers["content-range"] == f"bytes 100-{min(70099, len(data) - 1)}/{len(data)}"
            assert ranged.content == data[100:70100]
            thumbnail = await client.get(f"/api/jobs/{job_id}/thumbnail")
            assert thumbnail.status_code == 200
            assert thumbnail.content[:2] == b"\xff\xd8"
    finally:
        stop.set()
        await asyncio.wait_for(serving, HANG_TIMEOUT)
