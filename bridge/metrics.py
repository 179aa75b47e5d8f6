"""The bridge's Prometheus series and its ``/metrics`` route.

The series live in prometheus_client's default registry, like the job server's (server/metrics.py): in
``reelcast serve`` both run in one process, so one scrape of the bridge's ``/metrics`` shows both.

``/metrics`` follows the bridge's authentication rule: with authentication on (the default) it takes any valid
API key or session, so Prometheus scrapes it with a bearer key (``authorization: credentials_file`` in its
scrape config), as Gitea's and Grafana's metrics endpoints do; with authentication off it is open. Metrics
without any credential come from the server's ``--metrics-listen`` port, unauthenticated and bound to a
private address, which is how nchan, Mercure and grpc-gateway deployments keep metrics from the public: by
network. The series carry counts and timings, never job ids, users or keys. ``REELCAST_BRIDGE_METRICS=off``
removes the route (``BridgeSettings.metrics_route``).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator, Sequence
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

# From a millisecond (the push path on one machine) to ten seconds (a stalled client or upstream).
DELIVERY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# ``job``: /api/jobs/{id}/events; ``multi``: /api/events?jobs=; ``all``: /api/events (WatchJobs).
STREAM_KINDS = ("job", "multi", "all")

SSE_CONNECTIONS = Gauge("reelcast_sse_connections", "Open SSE connections, by stream kind.", ["stream"])


class Stamped(Protocol):
    @property
    def stamp(self) -> float: ...


class DeliveryCounts(Collector):
    """``reelcast_sse_events_sent_total`` and ``reelcast_sse_delivery_latency_seconds``, counted in plain
    integers and read out at scrape time.

    Both count every event written to every client, so at 200,000 frames/s a prometheus_client ``Counter``
    and ``Histogram`` (a lock per increment, two per observation) took a tenth of the bridge's event loop
    (docs/benchmarks.md, fan-out). Only the event loop's thread counts; a scrape from another thread reads
    the integers as they are, and derives the count from the buckets, so count and buckets always agree.
    """

    def __init__(self, kinds: Sequence[str], buckets: Sequence[float]) -> None:
        self.sent = dict.fromkeys(kinds, 0)
        self.bounds = tuple(buckets)
        self.in_bucket = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.latency_sum = 0.0

    def delivered(self, kind: str, events: Sequence[Stamped], now: float | None = None) -> None:
        """Counts ``events`` written on a ``kind`` stream, and each one's latency from its stamp to ``now``
        (default: the clock now)."""
        self.sent[kind] += len(events)
        now = time.time() if now is None else now
        bounds, in_bucket, total = self.bounds, self.in_bucket, 0.0
        for event in events:
            if event.stamp:
                latency = max(0.0, now - event.stamp)
                in_bucket[bisect.bisect_left(bounds, latency)] += 1
                total += latency
        self.latency_sum += total

    def collect(self) -> Iterator[Metric]:
        sent = CounterMetricFamily(
            "reelcast_sse_events_sent",
            "SSE events written to clients (heartbeats not counted), by stream kind.",
            labels=["stream"],
        )
        for kind, count in self.sent.items():
            sent.add_metric([kind], count)
        yield sent
        cumulative, running = [], 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.in_bucket, strict=True):
            running += count
            cumulative.append((bound, running))
        yield HistogramMetricFamily(
            "reelcast_sse_delivery_latency_seconds",
            "Time from a JobProgress's timestamp (when the server made it) to the bridge writing its SSE "
            "event.",
            buckets=cumulative,
            sum_value=self.latency_sum,
        )


DELIVERY = DeliveryCounts(STREAM_KINDS, DELIVERY_BUCKETS)
REGISTRY.register(DELIVERY)
UPSTREAM_STREAMS = Gauge(
    "reelcast_bridge_upstream_streams", "Open upstream WatchJob streams (one per job and credential watched)."
)

# Bound once: ``labels()`` costs more than the increment. Every kind is thereby exported from the start,
# zero included.
CONNECTIONS_BY_KIND = {kind: SSE_CONNECTIONS.labels(stream=kind) for kind in STREAM_KINDS}


async def metrics(request: Request) -> Response:
    """The default registry in Prometheus's text format."""
    return Response(generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})
