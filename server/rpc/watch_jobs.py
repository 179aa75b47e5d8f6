"""``WatchJobs`` semantics on top of any store: one stream of every event of one user's jobs, in the store's
feed order (storage/job_store.py ``FeedEntry``), resumable from an opaque cursor, filtered server-side.

As in watch.py, the position is taken before anything is read and the feed is then read after it, so that
nothing stored meanwhile is missed (subscribe before replay); the store's feed is the one replay source, and
the notifier only says when to read it again. The owner filter comes from the caller's identity, never from
the cursor: a cursor is only a position, so one taken from another user's stream or edited by hand shows
nothing that this request may not see.
"""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field

from reelcast.jobs.labels import matches_labels
from reelcast.jobs.v1 import job_pb2, job_service_pb2
from reelcast.server.execution.job_trace import job_trace_id
from reelcast.server.storage.job_store import FeedEntry, JobStore, PageCursor
from reelcast.server.storage.notifier import EventNotifier

BATCH_SIZE = 256
# A safety net only: notifications are the normal wake-up, this bounds the cost of one ever being lost.
RECHECK_SECONDS = 5.0
# "w1" and a feed position as 8 bytes, URL-safe base64 without padding: fits an SSE id and a URL as is.
_CURSOR = re.compile(r"^w1([A-Za-z0-9_-]{11})$")


# The cursor before every event: a stream from it replays the retained history (or resyncs, once retention
# forgot some of it).
BEGINNING = "0"


class InvalidCursorError(ValueError):
    """The cursor is not one ``encode_cursor`` made."""


def encode_cursor(position: int) -> str:
    return "w1" + base64.urlsafe_b64encode(struct.pack(">Q", position)).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The feed position of a cursor (``"0"``: the beginning of the retained history); InvalidCursorError
    if it is malformed."""
    if cursor == BEGINNING:
        return 0
    match = _CURSOR.match(cursor)
    if match is None:
        raise InvalidCursorError("is not a cursor of a WatchJobs response")
    (position,) = struct.unpack(">Q", base64.urlsafe_b64decode(match.group(1) + "="))
    if position >= 2**63:
        raise InvalidCursorError("is not a cursor of a WatchJobs response")
    return int(position)


@dataclass(frozen=True)
class FeedFilter:
    """Which feed entries one stream sends: one owner's (None: every owner's, an admin's stream), carrying
    ``labels``, in ``statuses`` (empty: any). A deletion passes the label and status filters always: it is
    how a job leaves the stream, and its record keeps nothing of the job but its id and owner (a client
    drops a deletion of a job it never held)."""

    owner: str | None
    labels: Mapping[str, str] = field(default_factory=dict)
    statuses: frozenset[int] = frozenset()

    def passes(self, entry: FeedEntry) -> bool:
        if self.owner is not None and entry.owner != self.owner:
            return False
        event = entry.event
        if event.kind == job_pb2.EVENT_KIND_JOB_DELETED:
            return True
        return matches_labels(entry.labels, self.labels) and (
            not self.statuses or event.job_status in self.statuses
        )


def _resync_event(job: job_pb2.Job) -> job_pb2.JobProgress:
    return job_pb2.JobProgress(
        job_id=job.id,
        sequence=job.last_sequence,
        kind=job_pb2.EVENT_KIND_RESYNC,
        job_status=job.status,
        job_percent=job.percent,
        correlation_id=job.correlation_id,
        trace_id=job_trace_id(job),
        snapshot=job,
    )


async def _matching_jobs(store: JobStore, wanted: FeedFilter) -> list[job_pb2.Job]:
    jobs: list[job_pb2.Job] = []
    after: PageCursor | None = None
    while True:
        page = await store.list_jobs(wanted.owner, sorted(wanted.statuses), BATCH_SIZE, after, wanted.labels)
        jobs.extend(page)
        if len(page) < BATCH_SIZE:
            return jobs[::-1]  # oldest first, like the feed
        last = page[-1]
        after = PageCursor(last.create_time.seconds * 1_000_000 + last.create_time.nanos // 1000, last.id)


async def follow_feed(
    store: JobStore, notifier: EventNotifier, wanted: FeedFilter, after: int | None
) -> AsyncGenerator[job_service_pb2.WatchJobsResponse, None]:
    """Yields the entries of ``wanted`` after feed position ``after`` (None: from now), live, forever. The
    first response has no event: only the cursor of where the stream starts, sent once it is fixed.

    If ``after`` is below the store's ``feed_floor`` (retention forgot what came after it), the current
    snapshots of the matching jobs come first, one ``EVENT_KIND_RESYNC`` each, then the feed from where the
    snapshots were read. Each resync but the last carries the stale cursor (resuming inside a resync starts it
    over), the last the position the feed goes on from; events the snapshots already hold are not sent.
    """
    position = await store.feed_head() if after is None else after
    # The stream is open: what is stored from here on will be sent (and the client holds a cursor already).
    yield job_service_pb2.WatchJobsResponse(cursor=encode_cursor(position))
    covered: dict[str, int] = {}  # job id -> the last sequence its resync snapshot holds
    if after is not None and after < await store.feed_floor():
        position = await store.feed_head()
        jobs = await _matching_jobs(store, wanted)
        for index, job in enumerate(jobs):
            covered[job.id] = job.last_sequence
            cursor = encode_cursor(position if index == len(jobs) - 1 else after)
            yield job_service_pb2.WatchJobsResponse(event=_resync_event(job), cursor=cursor)
    while True:
        version = notifier.feed_version
        batch = await store.feed_after(position, wanted.owner, BATCH_SIZE)
        for entry in batch:
            position = entry.position
            if entry.event.sequence <= covered.get(entry.event.job_id, 0) or not wanted.passes(entry):
                continue
            yield job_service_pb2.WatchJobsResponse(event=entry.event, cursor=encode_cursor(position))
        if len(batch) < BATCH_SIZE:
            await notifier.wait_feed(version, timeout=RECHECK_SECONDS)
