"""What each process of a NATS deployment reports (docs/observability.md): the API server counts the whole
store's jobs and the shared queue, a worker the shared queue and the stages it ran."""

from __future__ import annotations

import asyncio
from pathlib import Path

from grpc import aio

from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from tests.nats.natsproc import NatsServer
from tests.nats.processes import server, worker
from tests.observability.conftest import plugin_env, scrape_until, value


async def test_api_server_reports_jobs_and_the_shared_queue_and_a_worker_its_stages(
    tmp_path: Path, nats_server: NatsServer, installed_logging_plugin: Path
) -> None:
    env = plugin_env(installed_logging_plugin, REELCAST_METRICS_INTERVAL="0.1")
    metrics = ["--metrics-listen", "127.0.0.1:0"]
    api = server(tmp_path, "api", nats_server.url, env)
    api.args += metrics
    runner = worker(tmp_path, "worker", nats_server.url, env)
    runner.args += metrics
    try:
        await asyncio.to_thread(api.start)
        api_url = api.metrics_url
        async with aio.insecure_channel(api.address) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            for topic in ("one", "two"):
                spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic=topic))
                await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec))

            # No worker yet: both jobs wait in the shared work queue.
            waiting = await scrape_until(api_url, lambda s: value(s, "reelcast_queue_depth") == 2)
            assert value(waiting, "reelcast_queue_depth") == 2
            assert value(waiting, "reelcast_jobs", {"status": "queued"}) == 2

            await asyncio.to_thread(runner.start)
            worker_url = runner.metrics_url
            finished = await scrape_until(
                api_url, lambda s: value(s, "reelcast_jobs", {"status": "succeeded"}) == 2
            )
        assert value(finished, "reelcast_jobs", {"status": "succeeded"}) == 2
        assert value(finished, "reelcast_queue_depth") == 0
        # The API server ran no stage; it handled the calls.
        assert not [key for key in finished if key[0] == "reelcast_stage_duration_seconds_count"]
        create = {"grpc_type": "unary", "grpc_method": "CreateJob", "grpc_code": "OK"}
        create["grpc_service"] = "reelcast.jobs.v1.JobService"
        assert value(finished, "reelcast_grpc_server_handled_total", create) == 2

        at_worker = await scrape_until(worker_url, lambda s: value(s, "reelcast_queue_depth") == 0)
        assert value(at_worker, "reelcast_queue_depth") == 0
        labels = {"stage": "draw", "outcome": "succeeded"}
        assert value(at_worker, "reelcast_stage_duration_seconds_count", labels) == 2
        # Job counts come from the API servers only; the worker serves no RPC.
        assert not [
            key for key in at_worker if key[0] in ("reelcast_jobs", "reelcast_grpc_server_handled_total")
        ]
    finally:
        runner.stop()
        api.stop()
