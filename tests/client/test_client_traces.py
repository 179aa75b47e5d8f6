"""The clients send the current span's W3C ``traceparent`` with every call, so a script that traces its own
work finds reelcast's spans and the job in its trace (client/connection.py). Recorded by the SDK's in-memory
exporter against a real server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from reelcast.client import AsyncClient, Client
from reelcast.jobs.tracing import current_span_reference, span, trace_id_of
from reelcast.server.app import ReelcastServer
from tests.client.conftest import HANG_TIMEOUT
from tests.tracing import recorded_spans, spans_by_name


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with recorded_spans() as exporter:
        yield exporter


def _create_job_span_parent(spans: InMemorySpanExporter, trace_id: str) -> str:
    create = spans_by_name(spans, trace_id)["reelcast.jobs.v1.JobService/CreateJob"]
    assert create.parent is not None
    return format(create.parent.span_id, "016x")


async def test_the_async_clients_call_joins_the_callers_trace(
    open_server: ReelcastServer, spans: InMemorySpanExporter
) -> None:
    async with AsyncClient(open_server.target) as client:
        with span("caller's work"):
            caller = current_span_reference()
            assert caller is not None
            job = await client.create_job(topic="traced from a script")
        untraced = await client.create_job(topic="outside any span")

    assert trace_id_of(job.traceparent) == caller.trace_id
    assert _create_job_span_parent(spans, caller.trace_id) == caller.span_id
    # Outside a span nothing is sent: the server's span starts a trace of its own.
    assert trace_id_of(untraced.traceparent) not in ("", caller.trace_id)


async def test_the_blocking_clients_call_joins_the_callers_trace_from_its_own_thread(
    open_server: ReelcastServer, spans: InMemorySpanExporter
) -> None:
    """The blocking client runs its calls on a loop thread of its own: the caller's span goes along."""

    def scenario() -> tuple[str, str, str]:
        with Client(open_server.target) as client, span("caller's work"):
            caller = current_span_reference()
            assert caller is not None
            job = client.create_job(topic="traced from a blocking script")
            return caller.trace_id, caller.span_id, job.traceparent

    trace_id, span_id, traceparent = await asyncio.wait_for(asyncio.to_thread(scenario), HANG_TIMEOUT)
    assert trace_id_of(traceparent) == trace_id
    assert _create_job_span_parent(spans, trace_id) == span_id
