"""Tracing's cost (issue 19): the job-overhead load (bench/overhead.py) on SQLite with the server's tracing
off (``OTEL_SDK_DISABLED=true``: the API's no-op spans), with the SDK and no exporter (the default with the
``otel`` extra: trace ids only) and with the OTLP exporter on (to a sink in this process that counts the
spans it gets); and one span of each kind timed in-process, the "extra not installed" path included.

Run alone: ``python -m bench.tracing [--quick] [--rounds N]`` prints the results as JSON and the section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from bench.harness import pyplot, save_figure, serve
from bench.overhead import FULL, QUICK, Scale, _drive, _values

MODES = ("off", "ids", "otlp")
LABELS = {
    "off": "off (OTEL_SDK_DISABLED=true)",
    "ids": "SDK, no exporter (default)",
    "otlp": "SDK + OTLP exporter",
}


class _SpanSink:
    """An OTLP/gRPC trace receiver that counts the spans it gets and keeps none."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

        sink = self
        self.spans = 0

        class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - the service's name
                sink.spans += sum(
                    len(scoped.spans)
                    for resource in request.resource_spans
                    for scoped in resource.scope_spans
                )
                return trace_service_pb2.ExportTraceServiceResponse()

        from concurrent import futures

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Receiver(), self.server)  # type: ignore[no-untyped-call]
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def close(self) -> None:
        self.server.stop(0)


def _tracing_env(mode: str, sink: _SpanSink) -> dict[str, str]:
    if mode == "off":
        return {"OTEL_SDK_DISABLED": "true"}
    if mode == "ids":
        return {}
    return {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink.port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
    }


def _span_costs(count: int) -> dict[str, float]:
    """Nanoseconds per ``reelcast.jobs.tracing.span`` block, in this process: the extra absent, the API's
    no-op, the SDK recording and dropping, the SDK recording into an exporter that keeps nothing."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    from reelcast.jobs import tracing

    class Dropping(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    def timed() -> float:
        started = time.perf_counter_ns()
        for _ in range(count):
            with tracing.span("bench"):
                pass
        return (time.perf_counter_ns() - started) / count

    costs = {}
    tracing.TRACING_AVAILABLE = False
    costs["absent"] = timed()
    tracing.TRACING_AVAILABLE = True
    costs["api_noop"] = timed()
    provider = TracerProvider()
    trace.set_tracer_provider(provider)
    costs["sdk_ids"] = timed()
    provider.add_span_processor(SimpleSpanProcessor(Dropping()))
    costs["sdk_exporting"] = timed()
    return costs


def run(quick: bool = False, rounds: int | None = None) -> dict[str, Any]:
    scale = QUICK if quick else FULL
    if rounds is not None:
        scale = Scale(**{**scale.__dict__, "rounds": rounds})
    sink = _SpanSink()
    runs = []
    try:
        for round_index in range(scale.rounds):
            order = MODES[round_index % 3 :] + MODES[: round_index % 3]
            for mode in order:
                with tempfile.TemporaryDirectory(prefix=f"reelcast-bench-tracing-{mode}-") as scratch:
                    server = serve(
                        Path(scratch) / "data",
                        "null",
                        bridge=False,
                        concurrency=scale.max_concurrent_jobs,
                        extra=_tracing_env(mode, sink),
                    )
                    try:
                        result = _drive(server.grpc, "sqlite", scale, [server.pid])
                    finally:
                        server.close()
                result.update(backend=mode, round=round_index)
                print(json.dumps(result), file=sys.stderr, flush=True)
                runs.append(result)
    finally:
        sink.close()
    costs = _span_costs(2_000 if quick else 100_000)
    return {"scale": scale.__dict__, "runs": runs, "spans_exported": sink.spans, "span_ns": costs}


def section(results: dict[str, Any], plot_path: str) -> str:
    scale = results["scale"]
    loops = scale["concurrency"] * scale["client_processes"]
    off = statistics.median(_values(results, "off", "per_s"))
    lines = [
        "## Tracing overhead (issue 19)",
        "",
        f"The job-overhead load on SQLite ({loops} `CreateJob` calls in flight, null-stage jobs, "
        f"{scale['seconds']:.0f} s windows, {scale['rounds']} rounds in rotated order) with each tracing "
        "setup of the server; `python -m bench.tracing`. A null job makes 3 spans (CreateJob, "
        f"job, its stage); the OTLP sink received {results['spans_exported']:,} spans.",
        "",
        "| tracing | jobs per s median | min–max | ÷ off |",
        "| --- | ---: | ---: | ---: |",
    ]
    for mode in MODES:
        rates = _values(results, mode, "per_s")
        median = statistics.median(rates)
        ratio = f"{median / off:.2f}" if off else ""
        lines.append(f"| {LABELS[mode]} | {median:,.0f} | {min(rates):,.0f}–{max(rates):,.0f} | {ratio} |")
    costs = results["span_ns"]
    lines += [
        "",
        "One `reelcast.jobs.tracing.span` block, timed in one process: "
        f"{costs['absent']:,.0f} ns without the `otel` extra, {costs['api_noop']:,.0f} ns with the API's "
        f"no-op, {costs['sdk_ids']:,.0f} ns with the SDK and no exporter, {costs['sdk_exporting']:,.0f} ns "
        "with an exporter that keeps nothing.",
        "",
    ]
    if plot_path:
        lines += [f"![Tracing overhead]({plot_path})", ""]
    return "\n".join(lines)


def summary(results: dict[str, Any]) -> dict[str, float]:
    return {f"{mode}_median": statistics.median(_values(results, mode, "per_s")) for mode in MODES}


def plot(results: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7, 3.5))
    medians = [statistics.median(_values(results, mode, "per_s")) for mode in MODES]
    axes.bar([LABELS[mode] for mode in MODES], medians, color=["#7f7f7f", "#1f77b4", "#ff7f0e"])
    for index, mode in enumerate(MODES):
        dots = _values(results, mode, "per_s")
        axes.scatter([index] * len(dots), dots, color="black", s=10, zorder=3)
    axes.set_ylabel("null jobs per second (SQLite)")
    axes.set_title("Null jobs created to completed, by tracing setup (bars: median; dots: rounds)")
    save_figure(figure, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke scale: seconds, asserts nothing timed")
    parser.add_argument("--rounds", type=int, help="rounds of the three setups (default: the scale's)")
    args = parser.parse_args()
    results = run(args.quick, args.rounds)
    print(json.dumps(results, indent=2))
    print(section(results, ""))


if __name__ == "__main__":
    main()
