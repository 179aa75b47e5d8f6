"""A user's webhook endpoint: where to send, which events, and the secrets that sign them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from reelcast.jobs.event_payloads import event_data
from reelcast.jobs.terminal import TERMINAL_KINDS
from reelcast.jobs.v1 import job_pb2

# The job-level events a status filter looks at; step events never match one.
_JOB_KINDS = frozenset(
    {
        job_pb2.EVENT_KIND_JOB_STATUS,
        job_pb2.EVENT_KIND_JOB_RETRIED,
        job_pb2.EVENT_KIND_JOB_COMPLETED,
        job_pb2.EVENT_KIND_JOB_FAILED,
        job_pb2.EVENT_KIND_JOB_DELETED,
    }
)


@dataclass(frozen=True)
class EventFilter:
    """Which events an endpoint receives: ``everything``, only ``terminal`` ones (a job's last event), or the
    job-level events whose status word (``Queued``, ``Running``, ``Succeeded``, ``Failed``,
    ``AwaitingReview``: the SSE ``status``) is in ``statuses``."""

    everything: bool = False
    terminal: bool = False
    statuses: frozenset[str] = frozenset()

    def matches(self, event: job_pb2.JobProgress) -> bool:
        if event.kind == job_pb2.EVENT_KIND_RESYNC:
            return False  # a stream's catch-up snapshot, never a change of the job
        if self.everything:
            return True
        if self.terminal and event.kind in TERMINAL_KINDS:
            return True
        return event.kind in _JOB_KINDS and event_data(event)["status"] in self.statuses


@dataclass
class WebhookEndpoint:
    """One registered endpoint. ``labels`` select jobs: a job is delivered when its labels include every
    one of them (no labels: all the owner's jobs). ``secrets`` sign every delivery, newest first; more than
    one only during a rotation's overlap, until ``previous_secret_expires_us``."""

    id: str
    owner: str
    url: str
    event_filter: EventFilter
    labels: Mapping[str, str] = field(default_factory=dict)
    secret: str = ""
    previous_secret: str = ""
    previous_secret_expires_us: int = 0
    # Set once a delivery used up its attempts; cleared by the next successful delivery.
    failing: bool = False
    last_error: str = ""

    def selects(self, owner: str, job_labels: Mapping[str, str], event: job_pb2.JobProgress) -> bool:
        """Whether this endpoint receives ``event`` of a job of ``owner`` labelled ``job_labels``."""
        if owner != self.owner:
            return False
        if any(job_labels.get(key) != value for key, value in self.labels.items()):
            return False
        return self.event_filter.matches(event)

    def signing_secrets(self, now_us: int) -> list[str]:
        if self.previous_secret and now_us < self.previous_secret_expires_us:
            return [self.secret, self.previous_secret]
        return [self.secret]


class EndpointRegistry(Protocol):
    """Where a backend keeps its endpoints: a SQLite file on the embedded store (registry.py), a KV bucket
    on NATS (nats_registry.py). ``add`` takes the feed position after which the endpoint's deliveries
    start (the feed's head when it is created)."""

    async def add(self, endpoint: WebhookEndpoint, position: int) -> None: ...

    async def save(self, endpoint: WebhookEndpoint) -> None: ...

    async def mark(self, endpoint_id: str, failing: bool, last_error: str) -> None:
        """Sets the failing mark alone, leaving the rest of the record (a rotated secret) as it is now."""
        ...

    async def remove(self, endpoint_id: str) -> None: ...

    async def endpoints(self, owner: str | None = None) -> list[WebhookEndpoint]: ...

    def close(self) -> None:
        """Releases what the registry holds itself, once no call can reach it."""
        ...
