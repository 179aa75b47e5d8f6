"""Prometheus metrics of the job server: jobs by status, stage durations, queue depth and gRPC calls.

Every metric lives in prometheus_client's default registry, so that in ``reelcast serve`` (gRPC server,
runner and bridge in one process) the bridge's ``/metrics`` shows them next to its own; ``--metrics-listen``
serves the same registry on a port of its own (:class:`MetricsEndpoint`). docs/observability.md lists them.

Job counts and queue depth are sampled (:func:`sample_periodically`) rather than computed at scrape time:
a scrape runs synchronously (in the endpoint's thread, or in the bridge's event loop), and counting jobs on
NATS means reading every job's snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from reelcast.jobs.v1 import job_pb2
from reelcast.server.config import Settings

log = logging.getLogger(__name__)

# Stages take from well under a second (script) to many minutes (a long render).
STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)
# Unary calls take milliseconds; WatchJob streams last as long as their job.
GRPC_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
STATUS_NAMES = {
    value: name.removeprefix("JOB_STATUS_").lower()
    for name, value in job_pb2.JobStatus.items()
    if value != job_pb2.JOB_STATUS_UNSPECIFIED
}

JOBS = Gauge("reelcast_jobs", "Jobs in the store by status, sampled every metrics interval.", ["status"])
QUEUE_DEPTH = Gauge(
    "reelcast_queue_depth",
    "Jobs waiting for a worker (this process's queue on SQLite, the shared work queue on NATS).",
)
STAGE_DURATION = Histogram(
    "reelcast_stage_duration_seconds",
    "Time one stage of one job ran, by stage and outcome (succeeded, failed, cancelled, interrupted).",
    ["stage", "outcome"],
    buckets=STAGE_BUCKETS,
)
# A webhook attempt takes milliseconds to the delivery's total timeout (15 s by default).
WEBHOOK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60)
WEBHOOK_ATTEMPTS = Counter(
    "reelcast_webhook_attempts",
    "Webhook delivery attempts by outcome: delivered, or the catalogue code of the failure (E091-E094).",
    ["outcome"],
)
WEBHOOK_ATTEMPT_SECONDS = Histogram(
    "reelcast_webhook_attempt_seconds",
    "Time one webhook delivery attempt took, redirects included, by outcome (delivered or failed).",
    ["outcome"],
    buckets=WEBHOOK_BUCKETS,
)
WEBHOOK_FAILED_EVENTS = Counter(
    "reelcast_webhook_failed_events",
    "Events given up after the last attempt (their endpoint is then marked failing).",
)
WEBHOOK_OUTBOX_DEPTH = Gauge(
    "reelcast_webhook_outbox_depth",
    "Feed events after the webhook endpoints' cursors, summed over endpoints: what is still to deliver "
    "(or to skip, for events an endpoint's filter does not select).",
)
GRPC_LABELS = ["grpc_type", "grpc_service", "grpc_method"]
GRPC_STARTED = Counter("reelcast_grpc_server_started", "RPCs started on the server.", GRPC_LABELS)
GRPC_HANDLED = Counter(
    "reelcast_grpc_server_handled",
    "RPCs completed on the server, whatever their status (streams count when they end).",
    [*GRPC_LABELS, "grpc_code"],
)
GRPC_HANDLING = Histogram(
    "reelcast_grpc_server_handling_seconds",
    "Time from the start of an RPC until the server completed it.",
    GRPC_LABELS,
    buckets=GRPC_BUCKETS,
)


def set_job_counts(counts: Mapping[int, int]) -> None:
    """Every status gets a value, zero included, so that a status that empties does not keep its last one."""
    for value, name in STATUS_NAMES.items():
        JOBS.labels(status=name).set(counts.get(value, 0))


async def sample_periodically(
    interval: float,
    queue_depth: Callable[[], Awaitable[int]],
    count_jobs: Callable[[], Awaitable[Mapping[int, int]]] | None,
) -> None:
    """Samples the queue depth (and the job counts, when given) every ``interval`` seconds until cancelled.
    A failed sample is logged and the gauges keep their last value until the next one."""
    while True:
        try:
            QUEUE_DEPTH.set(await queue_depth())
            if count_jobs is not None:
                set_job_counts(await count_jobs())
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning("metrics sample failed (%s); retrying in %g s", error, interval)
        await asyncio.sleep(interval)


class MetricsEndpoint:
    """``/metrics`` of the default registry on a port of its own (``Settings.metrics_listen``), served by
    prometheus_client's HTTP server in a daemon thread."""

    def __init__(self, listen: str, certfile: Path | None = None, keyfile: Path | None = None) -> None:
        host, port = split_listen(listen)
        tls = certfile is not None and keyfile is not None
        self._server: WSGIServer
        self._thread: threading.Thread
        self._server, self._thread = start_http_server(
            port,
            addr=host,
            certfile=str(certfile) if tls else None,
            keyfile=str(keyfile) if tls else None,
        )
        self.scheme = "https" if tls else "http"
        self.host = host
        self.port: int = self._server.server_address[1]

    @classmethod
    def from_settings(cls, settings: Settings) -> MetricsEndpoint | None:
        """The endpoint ``settings.metrics_listen`` asks for (over TLS when the process has a certificate);
        None when it is off."""
        if not settings.metrics_listen:
            return None
        return cls(settings.metrics_listen, settings.tls_cert_file, settings.tls_key_file)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}/metrics"

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._server.shutdown()
            self._server.server_close()
        self._thread.join(timeout=5)


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9464`` for IPv6) → (host, port); anything else is a clear ValueError."""
    host, _, port = listen.strip().rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"metrics address must be HOST:PORT (port 0 picks a free one), got {listen!r}")
    return host.strip("[]"), int(port)
