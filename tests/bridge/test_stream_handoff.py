"""An SSE stream runs outside the bridge's middleware chain once its head is out (bridge/eventstream.py's
``StreamHandOff``): the head still carries what every middleware adds, the request's server span ends as soon
as the stream has started (not hours later, when it closes), and the events keep coming to the end."""

from __future__ import annotations

import asyncio

import httpx

from reelcast.server.app import ReelcastServer
from tests.bridge.conftest import HANG_TIMEOUT, BridgeFactory, create_job
from tests.stages import PipelinePlugin
from tests.tracing import recorded_spans

ORIGIN = "https://app.example"
CORRELATION_ID = "handoff-test-0001"


async def test_a_streams_head_has_every_middlewares_headers_and_its_span_ends_while_it_streams(
    server: ReelcastServer, start_bridge: BridgeFactory
) -> None:
    pipeline = PipelinePlugin(hold_at="voice")
    server.host.register(pipeline, "pipeline")
    with recorded_spans() as spans:
        url = await start_bridge(heartbeat_seconds=15.0, cors_origins=(ORIGIN,))
        async with httpx.AsyncClient(base_url=url, timeout=HANG_TIMEOUT) as client:
            job = await create_job(client)
            route = f"/api/jobs/{job['jobId']}/events"
            headers = {"origin": ORIGIN, "x-correlation-id": CORRELATION_ID}
            kinds: list[str] = []
            async with client.stream("GET", route, headers=headers) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                assert response.headers["x-correlation-id"] == CORRELATION_ID
                assert response.headers["access-control-allow-origin"] == ORIGIN
                assert response.headers["x-frame-options"] == "DENY"
                assert "content-security-policy" in response.headers
                lines = response.aiter_lines()
                while "step-progress" not in kinds:  # the job is now held before voice
                    line = await asyncio.wait_for(anext(lines), HANG_TIMEOUT)
                    if line.startswith("event:"):
                        kinds.append(line[6:].strip())
                ended = [s for s in spans.get_finished_spans() if s.name == "GET /api/jobs/{job_id}/events"]
                assert len(ended) == 1, "the stream's server span is still open while it streams"
                pipeline.release.set()
                async for line in lines:
                    if line.startswith("event:"):
                        kinds.append(line[6:].strip())
    assert kinds[-1] == "job-completed", kinds
    assert kinds.count("step-progress") >= 4, kinds
