"""The job store interface every backend implements (embedded/job_store.py: SQLite; nats/job_store.py:
JetStream), and the errors and cursor it speaks in. One contract test suite runs against each. The store
assigns event sequences: an append succeeds only if the job's last sequence is the one the writer expects,
so two writers can never interleave a job's log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from reelcast.jobs.v1 import job_pb2
from reelcast.jobs.validation import expected_video_seconds

# How many durations the store keeps per bucket and stage for the ETA (execution/eta.py reads their median).
DURATIONS_KEPT = 20


class ConcurrentWriteError(RuntimeError):
    """Another writer appended to the job's log first (its last sequence is not the expected one)."""


class DuplicateRequestError(RuntimeError):
    """A job with the same owner and request id exists already."""

    def __init__(self, existing: job_pb2.Job) -> None:
        super().__init__(existing.id)
        self.existing = existing


def deletion_event(job_id: str, sequence: int, time_us: int = 0) -> job_pb2.JobProgress:
    """The event that ends a deleted job's streams (WatchJob, WatchJobs), one past its last sequence."""
    event = job_pb2.JobProgress(
        job_id=job_id, sequence=sequence, kind=job_pb2.EVENT_KIND_JOB_DELETED, message="Deleted"
    )
    if time_us:
        event.time.FromMicroseconds(time_us)
    return event


@dataclass(frozen=True)
class FeedEntry:
    """One event of the store's feed: every job's events in the one order the store kept them (WatchJobs).

    ``position`` increases along the feed and is never reused; positions of deleted jobs' events are gone,
    replaced by one deletion record (an ``EVENT_KIND_JOB_DELETED`` event) at a later position, so that a
    reader resuming after any position still learns of the deletion."""

    position: int
    owner: str
    labels: Mapping[str, str]
    event: job_pb2.JobProgress


@dataclass(frozen=True)
class PageCursor:
    """Position after the last job of a page, in newest-first order."""

    create_time_us: int
    job_id: str


# The statuses whose video time counts against the owner's render-time quota (server/rpc/quotas.py).
UNFINISHED_STATUSES = frozenset(
    {job_pb2.JOB_STATUS_QUEUED, job_pb2.JOB_STATUS_RUNNING, job_pb2.JOB_STATUS_AWAITING_REVIEW}
)


@dataclass(frozen=True)
class JobUsage:
    """What one owner's stored jobs hold (``JobStore.owner_usage``)."""

    unfinished_jobs: int = 0
    queued_render_seconds: float = 0.0
    output_bytes: int = 0


def queued_render_seconds(job: job_pb2.Job) -> float:
    """The video seconds ``job`` holds of its owner's render-time quota: what the kernel expects of its spec
    while it is unfinished, nothing once it has ended."""
    return expected_video_seconds(job.spec) if job.status in UNFINISHED_STATUSES else 0.0


class JobStore(Protocol):
    """What every backend provides. All methods are coroutines and safe to call concurrently."""

    async def create_job(self, job: job_pb2.Job, first_event: job_pb2.JobProgress, request_id: str) -> None:
        """Stores a new job with its first event (sequence 1). DuplicateRequestError on a repeated key."""

    async def get_job(self, job_id: str) -> job_pb2.Job | None: ...

    async def latest_job(self, job_id: str) -> job_pb2.Job | None:
        """The job as its last stored event left it: what a writer resumes from. A backend whose snapshot
        can lag its log (NATS: the snapshot is written after the event) repairs the snapshot here."""

    async def list_jobs(
        self,
        owner: str | None,
        statuses: Sequence[int],
        limit: int,
        after: PageCursor | None,
        labels: Mapping[str, str] | None = None,
    ) -> list[job_pb2.Job]:
        """Jobs newest first; ``owner`` None means every owner. ``labels``: only jobs whose spec carries
        every one of these ``key=value`` labels."""

    async def owner_usage(self, owner: str) -> JobUsage:
        """What ``owner``'s jobs hold now: the unfinished ones and their ``queued_render_seconds``, and the
        bytes of every finished video (``JobOutput.size_bytes``). Read when asked (never counted on the side,
        which several API servers on one NATS deployment would make drift), without decoding every job
        where the backend can: it is read on every CreateJob and RetryJob."""

    async def append_event(self, job: job_pb2.Job, event: job_pb2.JobProgress) -> None:
        """Appends ``event`` with sequence ``job.last_sequence + 1`` and stores ``job`` as the new snapshot.

        Both are mutated to carry the new sequence. ConcurrentWriteError if the stored last sequence
        differs from the one ``job`` carried.
        """

    async def events_after(self, job_id: str, after_sequence: int, limit: int) -> list[job_pb2.JobProgress]:
        """Stored events with a sequence greater than ``after_sequence``, oldest first."""

    async def first_sequence(self, job_id: str) -> int:
        """The oldest sequence still kept (1 unless history was trimmed); 0 if there is none."""

    async def save_checkpoint(self, job_id: str, stage: str, artifacts: dict[str, Any]) -> None: ...

    async def checkpoints(self, job_id: str) -> dict[str, dict[str, Any]]: ...

    async def clear_checkpoints(self, job_id: str) -> None:
        """Forgets every checkpoint of the job (a cancelled job retried: its files are gone)."""

    async def unfinished_jobs(self) -> list[job_pb2.Job]:
        """Jobs that are Queued or Running, oldest first (for recovery after a restart)."""

    async def finished_before(self, cutoff_us: int, limit: int) -> list[str]:
        """Ids of terminal jobs that finished before ``cutoff_us`` (microseconds since the epoch)."""

    async def count_by_status(self) -> dict[int, int]:
        """How many jobs the store holds in each status (the ``reelcast_jobs`` metric); absent: none."""

    async def delete_job(self, job_id: str) -> None:
        """Deletes a job with its events and checkpoints, leaving one deletion record in the feed: the
        ``EVENT_KIND_JOB_DELETED`` event, with the job's owner and labels (``trim_feed`` removes it later)."""

    async def feed_head(self) -> int:
        """The position of the newest entry of the feed (0 while it is empty)."""

    async def feed_floor(self) -> int:
        """Positions at or below this may have been forgotten (``trim_feed``): a reader resuming there may
        have missed a deletion, so it resyncs instead (0 while nothing was trimmed)."""

    async def feed_after(self, position: int, owner: str | None, limit: int) -> list[FeedEntry]:
        """Feed entries after ``position``, oldest first; ``owner`` None means every owner's."""

    async def trim_feed(self, before_us: int) -> None:
        """Forgets the deletion records of jobs deleted before ``before_us`` (retention), raising
        ``feed_floor`` past them."""

    async def record_stage_durations(self, bucket: str, durations: Mapping[str, float]) -> None:
        """Keeps how long each stage (name: seconds) of one job of ``bucket`` (eta.duration_bucket) took,
        for the ETA of later jobs. Only the newest ``DURATIONS_KEPT`` per bucket and stage are kept."""

    async def stage_durations(self, bucket: str) -> dict[str, list[float]]:
        """The kept durations of ``bucket``, per stage, oldest first (empty for an unknown bucket)."""

    async def close(self) -> None: ...
