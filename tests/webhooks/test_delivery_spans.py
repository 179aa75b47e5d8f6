"""A webhook delivery is a client span in its job's trace, linked to the span that created the job, and
its ``traceparent`` goes to the receiver (recorded by the SDK's in-memory exporter; docs/observability.md)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from reelcast.jobs.tracing import parse_traceparent
from reelcast.jobs.v1 import job_pb2
from reelcast.server.storage.embedded.job_store import SqliteJobStore
from reelcast.server.webhooks.endpoints import EventFilter
from reelcast.server.webhooks.outbox import WebhookOutbox
from reelcast.server.webhooks.registration import create_endpoint
from reelcast.server.webhooks.registry import WebhookRegistry
from reelcast.server.webhooks.settings import WebhookSettings
from tests.tracing import recorded_spans
from tests.webhook_receiver import Receiver, running_receiver
from tests.webhooks.conftest import run_job, running_outbox, wait_until

CREATING_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CREATING_SPAN_ID = "00f067aa0ba902b7"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with recorded_spans() as exporter:
        yield exporter


async def test_each_delivery_attempt_is_a_client_span_of_the_jobs_trace_linked_to_its_creating_span(
    store: SqliteJobStore,
    registry: WebhookRegistry,
    webhook_settings: WebhookSettings,
    spans: InMemorySpanExporter,
) -> None:
    with running_receiver(Receiver(fail_first=1)) as receiver:
        endpoint = await create_endpoint(
            registry, store, webhook_settings, "alice", receiver.url, EventFilter(terminal=True)
        )
        receiver.secrets = [endpoint.secret]
        job = job_pb2.Job(
            id="job-traced",
            owner="alice",
            status=job_pb2.JOB_STATUS_QUEUED,
            traceparent=f"00-{CREATING_TRACE_ID}-{CREATING_SPAN_ID}-01",
        )
        first = job_pb2.JobProgress(
            job_id=job.id, kind=job_pb2.EVENT_KIND_JOB_STATUS, job_status=job_pb2.JOB_STATUS_QUEUED
        )
        await store.create_job(job, first, "request-job-traced")
        async with running_outbox(WebhookOutbox(store, registry, webhook_settings, poll_seconds=0.05)):
            await run_job(store, job, progress_steps=1)
            await wait_until(lambda: len(receiver.deliveries) == 1)
            await wait_until(lambda: len(_deliveries(spans)) == 2)

    failed, delivered = sorted(_deliveries(spans), key=lambda s: s.start_time or 0)
    for attempt in (failed, delivered):
        assert attempt.kind == SpanKind.CLIENT
        assert attempt.context is not None
        assert format(attempt.context.trace_id, "032x") == CREATING_TRACE_ID
        assert attempt.parent is not None and format(attempt.parent.span_id, "016x") == CREATING_SPAN_ID
        assert [format(link.context.span_id, "016x") for link in attempt.links] == [CREATING_SPAN_ID]
        assert attempt.attributes is not None
        assert (attempt.attributes["reelcast.job_id"], attempt.attributes["reelcast.sequence"]) == (
            "job-traced",
            4,
        )
        assert attempt.attributes["reelcast.webhook_id"] == endpoint.id
    assert failed.attributes is not None and delivered.attributes is not None
    assert (
        failed.attributes["reelcast.webhook.outcome"],
        failed.attributes["http.response.status_code"],
    ) == (
        "failed",
        503,
    )
    assert failed.attributes["reelcast.error_code"] == "E093-WEBHOOK_DELIVERY_FAILED"
    assert delivered.attributes["reelcast.webhook.outcome"] == "delivered"
    # The receiver continues the trace under the attempt that reached it.
    sent = parse_traceparent(receiver.deliveries[0].headers["traceparent"])
    assert sent is not None and delivered.context is not None
    assert (sent.trace_id, sent.span_id) == (CREATING_TRACE_ID, format(delivered.context.span_id, "016x"))


def _deliveries(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name == "webhook delivery"]
