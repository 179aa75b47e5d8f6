"""OpenTelemetry traces, optional: every room opens its spans here, and nothing happens without the SDK.

The W3C ``traceparent`` (``00-<32 hex trace id>-<16 hex span id>-<2 hex flags>``) is parsed and formatted
here without OpenTelemetry, since a job keeps its creating span's one (``Job.traceparent`` holds it,
the runner links to the span). Everything else goes through ``opentelemetry-api`` when the ``otel`` extra is
installed; without it :func:`span` is an empty context manager and the trace id is empty, so tracing costs a
function call (bench/overhead.py measures it).

Exporting is opt-in: :func:`configure_tracing` (called by the CLI's serving commands) adds the OTLP exporter
only when ``OTEL_TRACES_EXPORTER`` names ``otlp``. Tests install their own provider with the SDK's in-memory
exporter.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

TRACEPARENT_HEADER = "traceparent"
TRACEPARENT_PATTERN = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_INVALID_TRACE_ID = "0" * 32
_INVALID_SPAN_ID = "0" * 16

# OpenTelemetry is imported on first use (_api): importing the kernel loads nothing beyond protobuf and grpc
# (tests/test_layers.py), and a process that never opens a span never loads it.
TRACING_AVAILABLE = importlib.util.find_spec("opentelemetry") is not None
_otel_trace: Any = None


def _api() -> Any:
    """``opentelemetry.trace``, or None without the ``otel`` extra."""
    global _otel_trace, TRACING_AVAILABLE
    if _otel_trace is None and TRACING_AVAILABLE:
        try:
            from opentelemetry import trace
        except ImportError:  # a namespace package of some other opentelemetry distribution
            TRACING_AVAILABLE = False
        else:
            _otel_trace = trace
    return _otel_trace if TRACING_AVAILABLE else None


@dataclass(frozen=True)
class SpanReference:
    """One span's identity, as the W3C ``traceparent`` carries it."""

    trace_id: str
    span_id: str
    sampled: bool = True

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"


def parse_traceparent(value: str | None) -> SpanReference | None:
    """The span a well-formed version-00 ``traceparent`` names; None for anything else (absent, malformed, or
    the all-zero ids the spec calls invalid), so that a bad header starts a fresh trace instead of failing."""
    if not value:
        return None
    match = TRACEPARENT_PATTERN.match(value.strip().lower())
    if match is None:
        return None
    trace_id, span_id, flags = match.groups()
    if trace_id == _INVALID_TRACE_ID or span_id == _INVALID_SPAN_ID:
        return None
    return SpanReference(trace_id, span_id, sampled=bool(int(flags, 16) & 1))


def trace_id_of(traceparent: str) -> str:
    """The trace id a ``traceparent`` names (``Job.traceparent`` holds one), empty when it names none."""
    reference = parse_traceparent(traceparent)
    return reference.trace_id if reference is not None else ""


def _span_context(reference: SpanReference) -> Any:
    otel_trace = _api()
    flags = otel_trace.TraceFlags(otel_trace.TraceFlags.SAMPLED if reference.sampled else 0)
    return otel_trace.SpanContext(
        int(reference.trace_id, 16), int(reference.span_id, 16), is_remote=True, trace_flags=flags
    )


_KINDS = ("internal", "server", "client", "consumer", "producer")
# The provider's tracer, made again only when the provider changes: get_tracer builds a new tracer (and, in
# the SDK, its instrumentation scope) on every call, which cost more than the span itself.
_tracer_of: tuple[object, Any] | None = None


def _tracer() -> Any:
    global _tracer_of
    provider = _api().get_tracer_provider()
    if _tracer_of is None or _tracer_of[0] is not provider:
        _tracer_of = (provider, provider.get_tracer("reelcast"))
    return _tracer_of[1]


class SpanHandle(Protocol):
    """What a block may do to its span (an OpenTelemetry span has these methods)."""

    def update_name(self, name: str) -> None: ...

    def set_attribute(self, key: str, value: str | int | float | bool) -> None: ...


class _NoSpan:
    def update_name(self, name: str) -> None:
        pass

    def set_attribute(self, key: str, value: str | int | float | bool) -> None:
        pass


_NO_SPAN = _NoSpan()


@contextlib.contextmanager
def span(
    name: str,
    *,
    parent: SpanReference | None = None,
    links: Sequence[SpanReference] = (),
    kind: str = "internal",
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> Iterator[SpanHandle]:
    """A span named ``name`` around the block, the current span inside it. Its parent is ``parent`` (a
    remote span: a ``traceparent`` that came with a request) when given, else the current span; ``links``
    point at spans it follows from without being their child (a job's creating request). An exception that
    leaves the block marks the span failed."""
    otel_trace = _api()
    if otel_trace is None:
        yield _NO_SPAN
        return
    assert kind in _KINDS, kind
    parent_context = None
    if parent is not None:
        parent_context = otel_trace.set_span_in_context(otel_trace.NonRecordingSpan(_span_context(parent)))
    with _tracer().start_as_current_span(
        name,
        context=parent_context,
        kind=getattr(otel_trace.SpanKind, kind.upper()),
        links=[otel_trace.Link(_span_context(link)) for link in links],
        attributes=dict(attributes or {}),
    ) as opened:
        yield opened


def current_span_reference() -> SpanReference | None:
    """The current span (one a real SDK records, or a remote parent), or None outside any."""
    otel_trace = _api()
    if otel_trace is None:
        return None
    context = otel_trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return SpanReference(
        format(context.trace_id, "032x"), format(context.span_id, "016x"), bool(context.trace_flags.sampled)
    )


def current_traceparent() -> str:
    """The ``traceparent`` a call made now sends (empty outside any span)."""
    reference = current_span_reference()
    return reference.traceparent if reference is not None else ""


def current_trace_id() -> str:
    """The trace id of the current span, empty outside any: what log lines and events carry."""
    reference = current_span_reference()
    return reference.trace_id if reference is not None else ""


def configure_tracing(environ: Mapping[str, str] | None = None) -> str:
    """Sets up this process's tracing from the standard environment; what it did, for the log:

    - ``off``: the ``otel`` extra is not installed, or ``OTEL_SDK_DISABLED=true``. Spans are no-ops, and only
      a caller's ``traceparent`` gives a job a trace id.
    - ``ids``: the SDK's provider records spans and drops them (no exporter): every request and job gets a
      trace id for its log lines and events, and nothing leaves the process. The default with the extra.
    - ``otlp``: ``OTEL_TRACES_EXPORTER`` names ``otlp``: the spans go out in batches through the OTLP
      exporter, which reads ``OTEL_EXPORTER_OTLP_*`` (``OTEL_EXPORTER_OTLP_PROTOCOL``: ``grpc``, the
      default, or ``http/protobuf``); the resource reads ``OTEL_SERVICE_NAME`` (default ``reelcast``) and
      ``OTEL_RESOURCE_ATTRIBUTES``. The SDK flushes the last batch when the process exits.
    """
    environ = os.environ if environ is None else environ
    otel_trace = _api()
    if otel_trace is None or environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return "off"
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:  # the API without the SDK
        return "off"
    service = environ.get("OTEL_SERVICE_NAME") or "reelcast"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporters = {name.strip().lower() for name in environ.get("OTEL_TRACES_EXPORTER", "").split(",")}
    mode = "ids"
    if "otlp" in exporters:
        exporter: Any
        if environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc").startswith("http"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

            exporter = HttpExporter()
        else:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

            exporter = GrpcExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        mode = "otlp"
    otel_trace.set_tracer_provider(provider)
    return mode


__all__ = [
    "TRACEPARENT_HEADER",
    "TRACING_AVAILABLE",
    "SpanHandle",
    "SpanReference",
    "configure_tracing",
    "current_span_reference",
    "current_trace_id",
    "current_traceparent",
    "parse_traceparent",
    "span",
    "trace_id_of",
]
