"""Wakes watchers when a job's log grows, and hands them the newest events from memory.

The wake-up is the news that the log passed a sequence; a watcher then reads what it lacks, through
:meth:`EventNotifier.recent_after` when the writer in this process handed over the events it just stored, else
from the store. Replay and live delivery stay one code path (nothing to deduplicate, no gap to fall into), and
the store stays the replay source: memory holds only the last ``RECENT_EVENTS`` events of jobs being watched,
contiguous and durable already, so a slow watcher cannot make the server buffer more. Serving live events
from memory takes one store read per event per watcher off the store's single thread, where it queued behind
the writes (1,000 SSE subscribers over 100 jobs: 100 upstream watchers).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque

from reelcast.jobs.v1 import job_pb2

# Jobs whose latest sequence is remembered while nobody waits on them (a distributed notifier hears of every
# job in the cluster); older entries are forgotten, which costs a waiter nothing: it reads the store first.
REMEMBERED_JOBS = 10_000
# Events kept per watched job: a watcher further behind reads the store (the replay path).
RECENT_EVENTS = 256


class EventNotifier:
    """Per-job latest sequence, with waiting."""

    def __init__(self) -> None:
        self._latest: OrderedDict[str, int] = OrderedDict()
        self._conditions: dict[str, asyncio.Condition] = {}
        self._waiters: dict[str, int] = {}
        # The latest events of jobs someone waits on, contiguous, ending at ``_latest`` (else dropped).
        self._recent: dict[str, deque[job_pb2.JobProgress]] = {}
        # WatchJobs' wake-up: counts every publication of any job, and the event set when the next one comes.
        self._feed_version = 0
        self._feed_moved = asyncio.Event()
        # Jobs this process is deleting (DeleteJob cancels a running job first): a watch that reads the
        # cancel's terminal event waits for the deletion instead of ending there (rpc/watch.py).
        self._deleting: set[str] = set()

    def published(self, job_id: str, sequence: int, event: job_pb2.JobProgress | None = None) -> None:
        """Called by the writer after an event is durably stored; ``event`` (the stored event itself, never
        to be changed afterwards) lets watchers in this process skip reading it back."""
        if sequence <= self._latest.get(job_id, 0):
            return
        self.feed_moved()
        self._keep_recent(job_id, sequence, event)
        self._latest[job_id] = sequence
        self._latest.move_to_end(job_id)
        if len(self._latest) > REMEMBERED_JOBS:
            self._forget_oldest()
        condition = self._conditions.get(job_id)
        if condition is not None:
            asyncio.get_running_loop().create_task(self._notify(condition))

    def _keep_recent(self, job_id: str, sequence: int, event: job_pb2.JobProgress | None) -> None:
        if job_id not in self._waiters:
            return  # nobody watches: a watcher that comes reads the store first anyway
        recent = self._recent.get(job_id)
        if event is None or (recent and recent[-1].sequence != sequence - 1):
            recent = None  # a gap (news without the event): memory can no longer answer
        if event is None:
            self._recent.pop(job_id, None)
            return
        if recent is None:
            recent = self._recent[job_id] = deque(maxlen=RECENT_EVENTS)
        recent.append(event)

    def recent_after(self, job_id: str, sequence: int) -> list[job_pb2.JobProgress] | None:
        """The stored events after ``sequence`` up to the latest, from memory; None when memory does not
        hold all of them (the caller then reads the store)."""
        recent = self._recent.get(job_id)
        if not recent or recent[0].sequence > sequence + 1 or recent[-1].sequence != self._latest.get(job_id):
            return None
        if recent[-1].sequence <= sequence:
            return []
        return [event for event in recent if event.sequence > sequence]

    @property
    def feed_version(self) -> int:
        """Read it before reading the feed: ``wait_feed`` returns at once if anything was published since."""
        return self._feed_version

    def feed_moved(self) -> None:
        """Wakes every ``wait_feed`` (a publication, or news of a deletion from another process)."""
        self._feed_version += 1
        moved, self._feed_moved = self._feed_moved, asyncio.Event()
        moved.set()

    async def wait_feed(self, version: int, timeout: float | None = None) -> bool:
        """Waits until something is published after ``feed_version`` was ``version``; False on timeout."""
        if self._feed_version != version:
            return True
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel (server/tasks.py).
        try:
            async with asyncio.timeout(timeout):
                await self._feed_moved.wait()
        except TimeoutError:
            return False
        return True

    def _forget_oldest(self) -> None:
        # From the oldest end, without copying the table (this runs for every new job once it is full); a
        # watched job is kept and moved to the young end, and each entry is looked at once at most.
        for _ in range(len(self._latest)):
            if len(self._latest) <= REMEMBERED_JOBS:
                return
            oldest = next(iter(self._latest))
            if oldest in self._waiters:
                self._latest.move_to_end(oldest)
            else:
                del self._latest[oldest]

    async def start(self) -> None:
        """Starts listening for other processes' writes (nothing to do in one process)."""

    @staticmethod
    async def _notify(condition: asyncio.Condition) -> None:
        async with condition:
            condition.notify_all()

    async def wait_beyond(self, job_id: str, sequence: int, timeout: float | None = None) -> bool:
        """Waits until an event after ``sequence`` was published; False on timeout."""
        condition = self._conditions.setdefault(job_id, asyncio.Condition())
        self._waiters[job_id] = self._waiters.get(job_id, 0) + 1
        try:
            async with condition, asyncio.timeout(timeout):
                return await condition.wait_for(lambda: self._latest.get(job_id, 0) > sequence)
        except TimeoutError:
            return False
        finally:
            self._waiters[job_id] -= 1
            if self._waiters[job_id] == 0:
                del self._waiters[job_id]
                del self._conditions[job_id]
                self._recent.pop(job_id, None)

    def deleting(self, job_id: str, underway: bool) -> None:
        """Marks (or unmarks, when the deletion is over or gave up) a job this process is deleting."""
        if underway:
            self._deleting.add(job_id)
        else:
            self._deleting.discard(job_id)

    async def announce_deleting(self, job_id: str, underway: bool) -> None:
        """``deleting`` for every process that watches the job: here, only this one."""
        self.deleting(job_id, underway)

    def is_deleting(self, job_id: str) -> bool:
        return job_id in self._deleting

    def forget(self, job_id: str) -> None:
        """Drops the bookkeeping of a finished job once nobody waits on it."""
        if job_id not in self._waiters:
            self._latest.pop(job_id, None)
