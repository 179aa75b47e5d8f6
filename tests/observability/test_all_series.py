"""Issue 9's acceptance in one place: after a job, the bridge's ``/metrics`` of one ``reelcast serve`` (gRPC
server, runner and bridge in one process) parses with the Prometheus text parser and holds every series
operators are promised, each with a non-zero value."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.observability.conftest import Samples, plugin_env, scrape_until, value
from tests.processes import ServerProcess

STAGE_DELAY = 0.5


@pytest.fixture
def server(installed_logging_plugin: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(
        tmp_path / "data",
        bridge=True,
        env=plugin_env(
            installed_logging_plugin,
            REELCAST_LOGGING_DELAY=str(STAGE_DELAY),
            REELCAST_METRICS_INTERVAL="0.1",
            REELCAST_MAX_CONCURRENT_JOBS="1",
        ),
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


def total(samples: Samples, name: str) -> float:
    """The sum of every sample of ``name`` over all its label sets."""
    return sum(sample for (sample_name, _), sample in samples.items() if sample_name == name)


async def test_after_a_job_the_bridge_metrics_hold_every_series_with_non_zero_values(
    server: ServerProcess,
) -> None:
    metrics_url = f"{server.http_base}/metrics"
    async with httpx.AsyncClient(base_url=server.http_base, timeout=30) as client:
        ids = []
        for topic in ("first", "second"):
            response = await client.post("/api/jobs", json={"brief": {"topic": topic}})
            assert response.status_code == 201, response.text
            ids.append(response.json()["jobId"])

        # One job runs at a time: while the first runs and a browser watches the second, the queue holds it.
        async with client.stream("GET", f"/api/jobs/{ids[1]}/events") as stream:
            assert stream.status_code == 200
            during = await scrape_until(
                metrics_url,
                lambda s: (
                    (value(s, "reelcast_queue_depth") or 0) >= 1
                    and total(s, "reelcast_sse_connections") >= 1
                    and (value(s, "reelcast_bridge_upstream_streams") or 0) >= 1
                ),
            )
            assert (value(during, "reelcast_queue_depth") or 0) >= 1
            assert total(during, "reelcast_sse_connections") >= 1
            assert (value(during, "reelcast_bridge_upstream_streams") or 0) >= 1
            kinds = []
            async for line in stream.aiter_lines():
                if line.startswith("event:"):
                    kinds.append(line.removeprefix("event:").strip())
                if line.startswith("data:") and kinds and kinds[-1] in ("job-completed", "job-failed"):
                    json.loads(line.removeprefix("data:"))
                    break
            assert kinds[-1] == "job-completed", kinds

    after = await scrape_until(metrics_url, lambda s: value(s, "reelcast_jobs", {"status": "succeeded"}) == 2)
    assert value(after, "reelcast_jobs", {"status": "succeeded"}) == 2
    assert total(after, "reelcast_stage_duration_seconds_count") >= 2
    assert total(after, "reelcast_stage_duration_seconds_sum") >= 2 * STAGE_DELAY * 0.9
    assert total(after, "reelcast_sse_events_sent_total") >= len(kinds)
    assert total(after, "reelcast_sse_delivery_latency_seconds_count") >= len(kinds)
    create = {"grpc_type": "unary", "grpc_service": "reelcast.jobs.v1.JobService", "grpc_method": "CreateJob"}
    assert value(after, "reelcast_grpc_server_handled_total", {**create, "grpc_code": "OK"}) == 2
