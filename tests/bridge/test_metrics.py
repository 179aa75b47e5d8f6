"""The bridge's Prometheus metrics: a real job through a real bridge, scraped from ``/metrics`` and parsed
with prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from reelcast.server.app import ReelcastServer
from tests.bridge.conftest import HANG_TIMEOUT, BridgeFactory, create_job
from tests.stages import PipelinePlugin

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def until(client: httpx.AsyncClient, check: str, name: str, wanted: float, **labels: str) -> Samples:
    """Scrapes until the series ``name`` has ``wanted`` (the gauges move when the server finishes tearing a
    stream down, a moment after the client saw its end)."""
    deadline = time.monotonic() + HANG_TIMEOUT
    while True:
        samples = await scrape(client)
        if value(samples, name, **labels) == wanted or time.monotonic() > deadline:
            assert value(samples, name, **labels) == wanted, check
            return samples
        await asyncio.sleep(0.05)


async def test_a_watched_job_shows_in_every_bridge_series_and_the_gauges_return_to_zero(
    server: ReelcastServer, start_bridge: BridgeFactory
) -> None:
    # The render stage hangs until the job is cancelled, so the stream stays open while we scrape.
    server.host.register(PipelinePlugin(delay=0.01, hang_at="render"), "pipeline")
    base = await start_bridge()
    async with httpx.AsyncClient(base_url=base, timeout=HANG_TIMEOUT) as client:
        before = await until(client, "no stream open yet", "reelcast_sse_connections", 0, stream="job")
        sent_before = value(before, "reelcast_sse_events_sent_total", stream="job")
        latency_before = value(before, "reelcast_sse_delivery_latency_seconds_count")
        job = await create_job(client)

        async def watch() -> list[str]:
            names: list[str] = []
            async with client.stream("GET", f"/api/jobs/{job['jobId']}/events") as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        names.append(line.removeprefix("event:").strip())
                    if line.startswith("data:") and '"hanging"' in line:
                        hanging.set()
            return names

        hanging = asyncio.Event()
        watcher = asyncio.create_task(watch())
        await asyncio.wait_for(hanging.wait(), HANG_TIMEOUT)

        during = await scrape(client)
        assert value(during, "reelcast_sse_connections", stream="job") == 1
        assert value(during, "reelcast_sse_connections", stream="multi") == 0
        assert value(during, "reelcast_bridge_upstream_streams") >= 1
        assert value(during, "reelcast_sse_events_sent_total", stream="job") > sent_before
        assert value(during, "reelcast_sse_delivery_latency_seconds_count") > latency_before
        assert value(during, "reelcast_sse_delivery_latency_seconds_sum") > 0
        # Every bucket from 1 ms to 10 s is there, and the histogram is cumulative.
        buckets = {
            labels[0][1]: count
            for (name, labels), count in during.items()
            if name == "reelcast_sse_delivery_latency_seconds_bucket"
        }
        assert {"0.001", "0.01", "1.0", "10.0", "+Inf"} <= set(buckets)
        assert buckets["0.001"] <= buckets["10.0"] <= buckets["+Inf"]
        assert buckets["+Inf"] == value(during, "reelcast_sse_delivery_latency_seconds_count")

        cancelled = await client.post(f"/api/jobs/{job['jobId']}/cancel")
        assert cancelled.status_code == 202
        names = await asyncio.wait_for(watcher, HANG_TIMEOUT)
        assert names[-1] == "job-failed"

        after = await until(client, "the stream closed", "reelcast_sse_connections", 0, stream="job")
        after = await until(client, "the upstream closed", "reelcast_bridge_upstream_streams", 0)
        # Every event the client read was counted (a counter never goes back).
        assert value(after, "reelcast_sse_events_sent_total", stream="job") >= sent_before + len(names)


async def test_multi_job_streams_are_counted_as_their_own_kind(
    server: ReelcastServer, start_bridge: BridgeFactory
) -> None:
    server.host.register(PipelinePlugin(delay=0.01, hang_at="render"), "pipeline")
    base = await start_bridge()
    async with httpx.AsyncClient(base_url=base, timeout=HANG_TIMEOUT) as client:
        job = await create_job(client)
        async with client.stream("GET", "/api/events", params={"jobs": job["jobId"]}) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("data:") and json.loads(line[5:]).get("message") == "hanging":
                    break
            during = await scrape(client)
            assert value(during, "reelcast_sse_connections", stream="multi") == 1
            assert value(during, "reelcast_sse_events_sent_total", stream="multi") > 0
        await until(client, "the stream closed", "reelcast_sse_connections", 0, stream="multi")
        await client.post(f"/api/jobs/{job['jobId']}/cancel")


async def test_metrics_follow_the_bridges_authentication_rule_and_can_be_turned_off(
    start_bridge: BridgeFactory,
) -> None:
    guarded = await start_bridge(auth_required=True)
    async with httpx.AsyncClient(base_url=guarded, timeout=HANG_TIMEOUT) as client:
        refused = await client.get("/metrics")
        assert refused.status_code == 401
        assert refused.json()["errorCode"] == "E020-UNAUTHENTICATED"
        # This test server accepts any key (its own authentication is off); the bridge asked it.
        client.headers["Authorization"] = "Bearer any-key-the-server-accepts"
        samples = await scrape(client)
        assert ("reelcast_sse_connections", (("stream", "job"),)) in samples
    without = await start_bridge(metrics_route=False)
    async with httpx.AsyncClient(base_url=without, timeout=HANG_TIMEOUT) as client:
        response = await client.get("/metrics")
        assert response.status_code == 404
        assert response.json()["errorCode"] == "E010-ROUTE_NOT_FOUND"
