"""The bridge's lock-free delivery series (bridge/metrics.py ``DeliveryCounts``) read out exactly as
prometheus_client's own ``Counter`` and ``Histogram`` would have counted the same events."""

from __future__ import annotations

import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from reelcast.bridge.metrics import DELIVERY_BUCKETS, STREAM_KINDS, DeliveryCounts


@dataclass
class Event:
    stamp: float


def test_delivery_counts_expose_what_prometheus_clients_counter_and_histogram_would() -> None:
    ours = CollectorRegistry()
    counts = DeliveryCounts(STREAM_KINDS, DELIVERY_BUCKETS)
    ours.register(counts)
    theirs = CollectorRegistry()
    sent = Counter("reelcast_sse_events_sent", "x", ["stream"], registry=theirs)
    name = "reelcast_sse_delivery_latency_seconds"
    latency = Histogram(name, "x", buckets=DELIVERY_BUCKETS, registry=theirs)
    now = time.time()
    # Latencies on and beside every bound, past the last one, and an event without a stamp (not observed).
    ages = [bound + delta for bound in DELIVERY_BUCKETS for delta in (-0.0004, 0.0004)] + [0.0, 30.0]
    batches = {"job": [Event(now - age) for age in ages], "all": [Event(0.0), Event(now - 0.003)]}
    for kind, events in batches.items():
        counts.delivered(kind, events, now)
        sent.labels(stream=kind).inc(len(events))
        for event in events:
            if event.stamp:
                latency.observe(max(0.0, now - event.stamp))
    for kind in STREAM_KINDS:
        sent.labels(stream=kind)  # every kind exported from the start, zero included
    assert _samples(ours) == _samples(theirs)


def _samples(registry: CollectorRegistry) -> dict[str, float]:
    """Every sample but ``_created`` (when each series was made), to 9 digits."""
    samples = {}
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith("#") or "_created" in line:
            continue
        name, value = line.rsplit(" ", 1)
        samples[name] = round(float(value), 9)
    return samples
