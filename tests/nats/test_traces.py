"""Across processes on NATS, a job's spans link to the API server's: the API server (no runner of its own)
records the creating span in the job, and the worker that takes the job up, maybe much later, opens its job
span in that trace with a link to that span. Both sides run in this process, so that one in-memory exporter
sees them; what travels between them is only what NATS stores."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from grpc import aio
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from reelcast.plugins.host import PluginHost
from reelcast.server.app import ReelcastServer
from reelcast.server.config import Settings
from reelcast.server.worker import run_worker
from tests.nats.natsproc import NatsServer
from tests.stages import BUILTIN_SHAPE, PipelinePlugin
from tests.tracing import recorded_spans, spans_by_name

HANG_TIMEOUT = 60.0
CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with recorded_spans() as exporter:
        yield exporter


def _host() -> PluginHost:
    host = PluginHost.load(builtins=False)
    host.register(PipelinePlugin(), "pipeline")
    return host


async def test_a_workers_job_span_links_to_the_api_servers_create_job_span(
    nats_server: NatsServer, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    api_settings = Settings(
        data_dir=tmp_path / "api",
        grpc_listen="127.0.0.1:0",
        store_url=nats_server.url,
        embedded_worker=False,
        auth_required=False,
        progress_min_interval_seconds=0.0,
        shutdown_grace_seconds=0.5,
    )
    api = ReelcastServer(api_settings, host=_host())
    await api.start()
    stop_worker = asyncio.Event()
    worker_ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    worker_settings = dataclasses.replace(api_settings, data_dir=tmp_path / "worker", embedded_worker=True)
    worker = asyncio.create_task(
        run_worker(worker_settings, stop_worker, host=_host(), on_ready=worker_ready.set_result)
    )
    try:
        await asyncio.wait_for(worker_ready, HANG_TIMEOUT)
        async with aio.insecure_channel(api.target) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic="Otters"))
            created = await stub.CreateJob(
                job_service_pb2.CreateJobRequest(spec=spec), metadata=(("traceparent", CALLER),)
            )
            events = [
                event
                async for event in stub.WatchJob(
                    job_service_pb2.WatchJobRequest(job_id=created.job.id), timeout=HANG_TIMEOUT
                )
            ]
    finally:
        stop_worker.set()
        await asyncio.wait_for(worker, HANG_TIMEOUT)
        await api.stop(grace=0.5)
    assert events[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED
    trace_id = CALLER.split("-")[1]
    assert {event.trace_id for event in events} == {trace_id}
    named = spans_by_name(spans, trace_id)
    create = named["reelcast.jobs.v1.JobService/CreateJob"]
    job_span = named["job"]
    assert [link.context.span_id for link in job_span.links] == [create.context.span_id]
    for name, *_ in BUILTIN_SHAPE:
        assert named[f"stage {name}"].parent.span_id == job_span.context.span_id  # type: ignore[union-attr]
