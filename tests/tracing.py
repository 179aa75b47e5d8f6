"""Spans recorded by the OpenTelemetry SDK's in-memory exporter, for the tracing tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once


@contextlib.contextmanager
def recorded_spans() -> Iterator[InMemorySpanExporter]:
    """The SDK's provider, recording into an in-memory exporter, inside the block only: OpenTelemetry sets its
    global provider once per process, so the end undoes it as opentelemetry-test-utils'
    ``reset_trace_globals`` does, and later tests in this worker see no traces (nor traceId fields)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    try:
        yield exporter
    finally:
        provider.shutdown()
        trace._TRACER_PROVIDER_SET_ONCE = Once()
        trace._TRACER_PROVIDER = None


def spans_by_name(exporter: InMemorySpanExporter, trace_id: str) -> dict[str, ReadableSpan]:
    """The finished spans of one trace (32 hex digits), by name (the last of a name wins)."""
    wanted = int(trace_id, 16)
    return {
        s.name: s
        for s in exporter.get_finished_spans()
        if s.context is not None and s.context.trace_id == wanted
    }
