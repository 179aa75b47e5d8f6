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

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

# From a millisecond (the push path on one machine) to ten seconds (a stalled client or upstream).
DELIVERY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# ``job``: /api/jobs/{id}/events; ``multi``: /api/events?jobs=; ``all``: /api/events (WatchJobs).
STREAM_KINDS = ("job", "multi", "all")

SSE_CONNECTIONS = Gauge("reelcast_sse_connections", "Open SSE connections, by stream kind.", ["stream"])
SSE_EVENTS_SENT = Counter(
    "reelcast_sse_events_sent",
    "SSE events written to clients (heartbeats not counted), by stream kind.",
    ["stream"],
)
SSE_DELIVERY_LATENCY = Histogram(
    "reelcast_sse_delivery_latency_seconds",
    "Time from a JobProgress's timestamp (when the server made it) to the bridge writing its SSE event.",
    buckets=DELIVERY_BUCKETS,
)
UPSTREAM_STREAMS = Gauge(
    "reelcast_bridge_upstream_streams", "Open upstream WatchJob streams (one per job and credential watched)."
)

# Bound once: ``labels()`` costs more than the increment, and a stream counts every batch it writes. Every
# kind is thereby exported from the start, zero included.
CONNECTIONS_BY_KIND = {kind: SSE_CONNECTIONS.labels(stream=kind) for kind in STREAM_KINDS}
EVENTS_SENT_BY_KIND = {kind: SSE_EVENTS_SENT.labels(stream=kind) for kind in STREAM_KINDS}


async def metrics(request: Request) -> Response:
    """The default registry in Prometheus's text format."""
    return Response(generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})
