"""The job server's Prometheus metrics, scraped from a real ``reelcast serve --metrics-listen 127.0.0.1:0``
that runs real jobs: jobs by status, stage durations, queue depth and gRPC calls by method and code."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc import aio

from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from tests.observability.conftest import Samples, plugin_env, scrape, scrape_until, value
from tests.processes import ServerProcess

SERVICE = "reelcast.jobs.v1.JobService"
# Each stage of the logging plugin sleeps this long, so that jobs wait in the queue behind each other.
STAGE_DELAY = 1.0


@pytest.fixture
def server(installed_logging_plugin: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(
        tmp_path / "data",
        env=plugin_env(
            installed_logging_plugin,
            REELCAST_LOGGING_DELAY=str(STAGE_DELAY),
            REELCAST_METRICS_INTERVAL="0.1",
            REELCAST_MAX_CONCURRENT_JOBS="1",
        ),
        metrics=True,
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


def _grpc(method: str, code: str, grpc_type: str = "unary") -> dict[str, str]:
    return {"grpc_type": grpc_type, "grpc_service": SERVICE, "grpc_method": method, "grpc_code": code}


async def _scrape(server: ServerProcess) -> Samples:
    return await asyncio.to_thread(scrape, server.metrics_url)


async def test_serve_exports_jobs_stages_queue_and_grpc_metrics_on_its_metrics_port(
    server: ServerProcess,
) -> None:
    assert server.metrics_url.startswith("http://127.0.0.1:")
    async with aio.insecure_channel(server.target) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        ids = []
        for topic in ("first", "second", "fail"):
            spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic=topic))
            created = await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec))
            ids.append(created.job.id)

        # One job runs at a time, so the other two wait: the queue and the queued count show them.
        seen_depth = 0.0
        seen_queued = 0.0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (seen_depth and seen_queued):
            samples = await _scrape(server)
            seen_depth = max(seen_depth, value(samples, "reelcast_queue_depth") or 0.0)
            seen_queued = max(seen_queued, value(samples, "reelcast_jobs", {"status": "queued"}) or 0.0)
            await asyncio.sleep(0.05)
        assert seen_depth >= 1
        assert seen_queued >= 1

        # A watcher that goes away before its job ends: the stream counts as CANCELLED when it ends.
        abandoned = stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=ids[2]))
        await abandoned.read()
        abandoned.cancel()

        for job_id in ids:
            events = [e async for e in stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job_id))]
            assert events[-1].kind in (job_pb2.EVENT_KIND_JOB_COMPLETED, job_pb2.EVENT_KIND_JOB_FAILED)
        with pytest.raises(aio.AioRpcError) as missing:
            await stub.GetJob(job_service_pb2.GetJobRequest(job_id="no-such-job"))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND

    def settled(samples: Samples) -> bool:
        return (
            value(samples, "reelcast_jobs", {"status": "succeeded"}) == 2
            and value(samples, "reelcast_jobs", {"status": "failed"}) == 1
            and value(samples, "reelcast_queue_depth") == 0
            and value(
                samples, "reelcast_grpc_server_handled_total", _grpc("WatchJob", "CANCELLED", "server_stream")
            )
            == 1
            # Counted once the answer has gone: the client may read NOT_FOUND before the server counts it.
            and value(samples, "reelcast_grpc_server_handled_total", _grpc("GetJob", "NOT_FOUND")) == 1
        )

    samples = await scrape_until(server.metrics_url, settled)

    # Jobs by status: every status has a value; the finished jobs are counted where they ended.
    jobs = {status: value(samples, "reelcast_jobs", {"status": status}) for status in ("queued", "running")}
    assert jobs == {"queued": 0, "running": 0}
    assert value(samples, "reelcast_jobs", {"status": "succeeded"}) == 2
    assert value(samples, "reelcast_jobs", {"status": "failed"}) == 1
    assert value(samples, "reelcast_jobs", {"status": "cancelled"}) == 0
    assert value(samples, "reelcast_queue_depth") == 0

    # Stage durations, by stage and outcome: "speak" ran three times, "draw" twice well and once badly.
    for stage, outcome, runs in (("speak", "succeeded", 3), ("draw", "succeeded", 2), ("draw", "failed", 1)):
        labels = {"stage": stage, "outcome": outcome}
        assert value(samples, "reelcast_stage_duration_seconds_count", labels) == runs, labels
        # Each run slept STAGE_DELAY: the histogram measured the stage, not something else.
        total = value(samples, "reelcast_stage_duration_seconds_sum", labels)
        assert total is not None and total >= runs * STAGE_DELAY * 0.9, labels
        bucket = value(samples, "reelcast_stage_duration_seconds_bucket", {**labels, "le": "+Inf"})
        assert bucket == runs
    assert (
        value(samples, "reelcast_stage_duration_seconds_count", {"stage": "speak", "outcome": "failed"})
        is None
    )

    # gRPC calls by method and code, as go-grpc-prometheus names them (with our prefix).
    assert value(samples, "reelcast_grpc_server_handled_total", _grpc("CreateJob", "OK")) == 3
    assert value(samples, "reelcast_grpc_server_handled_total", _grpc("GetJob", "NOT_FOUND")) == 1
    assert value(samples, "reelcast_grpc_server_handled_total", _grpc("WatchJob", "OK", "server_stream")) == 3
    create = {"grpc_type": "unary", "grpc_service": SERVICE, "grpc_method": "CreateJob"}
    assert value(samples, "reelcast_grpc_server_started_total", create) == 3
    watch = {"grpc_type": "server_stream", "grpc_service": SERVICE, "grpc_method": "WatchJob"}
    assert value(samples, "reelcast_grpc_server_started_total", watch) == 4
    assert value(samples, "reelcast_grpc_server_handling_seconds_count", create) == 3
    assert value(samples, "reelcast_grpc_server_handling_seconds_count", watch) == 4
    # The watchers followed their jobs to the end: their streams lasted at least a stage each.
    watch_seconds = value(samples, "reelcast_grpc_server_handling_seconds_sum", watch)
    assert watch_seconds is not None and watch_seconds >= STAGE_DELAY

    assert server.terminate() == 0


async def test_the_metrics_port_is_off_unless_asked_for(
    installed_logging_plugin: Path, tmp_path: Path
) -> None:
    process = ServerProcess(tmp_path / "data", env=plugin_env(installed_logging_plugin))
    process.start()
    try:
        assert process.metrics_url == ""
        assert process.ready is not None and process.ready.fields["metrics"] is None
    finally:
        process.stop()
