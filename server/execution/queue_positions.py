"""Live queue positions: while a job waits for a worker, its log carries its place and an estimated start.

A pass (``QueuePositions.refresh``) reads the order once from the work queue (``WorkQueue.waiting_order``,
whatever scheduler is behind it) and every unfinished job once from the store, then writes an
``EVENT_KIND_JOB_STATUS`` event (Queued, with ``queue_position`` and ``estimated_start``) for each waiting job
whose stored place differs from its place now. So a pass costs two reads however many jobs wait, and a place
that did not change is never written again, by this process or another one (the stored place is compared,
and the store refuses an append over a sequence another writer took: ``ConcurrentWriteError``).

Like progress ticks, places are coalesced: one job gets at most one place event per
``Settings.queue_position_interval_seconds``; a change that comes sooner is written when the interval is up.
The last place, 0, is written by the worker that takes the job if no pass did (runner.py), so a stream shows
the count down to 0 and then Running. A job that finds a free slot goes straight to Running.

Passes run when this process changes the queue (put, take, cancel, finish: ``changed``) and, when jobs may
run in other processes (NATS), also every interval, since other processes change the queue too.

The estimated start simulates the slots (``start_estimates``): each slot is free once its running job's
remaining time is up, and each waiting job, in order, takes the slot that frees first and holds it for its
expected duration. Times come from the measured stage durations of earlier jobs of the same bucket (eta.py,
``JobStore.stage_durations``). On NATS the slot count is unknown; when jobs wait every slot is busy, so the
jobs that hold a slot (Running, or taken and starting) are the slot count.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
import time
from collections.abc import Callable, Sequence

from reelcast.jobs.v1 import job_pb2
from reelcast.server.execution.eta import duration_bucket, expected_durations, remaining_seconds
from reelcast.server.execution.recorder import JobRecorder
from reelcast.server.storage.job_store import ConcurrentWriteError, JobStore
from reelcast.server.storage.notifier import EventNotifier
from reelcast.server.storage.work import WorkQueue

log = logging.getLogger(__name__)


def start_estimates(
    waiting: Sequence[float | None], running_left: Sequence[float | None], slots: int
) -> list[float | None]:
    """Each waiting job's wait in seconds, in queue order (see the module docstring). ``waiting``: each
    waiting job's expected duration; ``running_left``: each slot-holding job's remaining time. None where a
    time it depends on is unknown: no estimate rather than a wrong one."""
    if any(left is None for left in running_left):
        return [None] * len(waiting)
    free_at = [float(left) for left in running_left if left is not None]
    free_at += [0.0] * max(0, slots - len(free_at))
    heapq.heapify(free_at)
    waits: list[float | None] = []
    for duration in waiting:
        start = heapq.heappop(free_at)
        waits.append(start)
        if duration is None:
            return waits + [None] * (len(waiting) - len(waits))
        heapq.heappush(free_at, start + duration)
    return waits


def seconds_left(job: job_pb2.Job, expected: dict[str, float], now: float) -> float | None:
    """What the job still has to run, from its snapshot: the stages not ended, at their expected durations
    (a running stage at its own pace too, eta.py). None without any history for its bucket."""
    if not expected:
        return None
    started = {
        step.name: step.start_time.ToNanoseconds() / 1e9 for step in job.steps if step.HasField("start_time")
    }
    return remaining_seconds(job.steps, {}, started, {}, expected, now)


class QueuePositions:
    """Writes the waiting jobs' places (one per runner process)."""

    def __init__(
        self,
        store: JobStore,
        notifier: EventNotifier,
        queue: WorkQueue,
        *,
        slots: int | None,
        interval: float,
        poll: bool,
        lock_for: Callable[[str], asyncio.Lock],
        running_here: Callable[[str], bool],
        forget: Callable[[str], None],
    ) -> None:
        """``slots``: how many jobs run at once, None when unknown (NATS); ``poll``: recompute every
        ``interval`` too; ``lock_for`` and ``running_here``: the runner's per-job locks and jobs, so that no
        place is written over a job its worker has started; ``forget``: a job left the queue (its lock may
        go)."""
        self.store = store
        self.notifier = notifier
        self.queue = queue
        self.slots = slots
        self.interval = interval
        self.poll = poll
        self._lock_for = lock_for
        self._running_here = running_here
        self._forget = forget
        self._changed = asyncio.Event()
        self._stopping = False
        # When this process last wrote each waiting job's place (monotonic), for the coalescing.
        self._written: dict[str, float] = {}
        # The expected stage durations of each bucket, read once per pass.
        self._history: dict[str, dict[str, float]] = {}

    def changed(self) -> None:
        """The queue changed here: recompute soon."""
        self._changed.set()

    def stop(self) -> None:
        """Ends ``run`` at its next turn. The runner also cancels it, but a cancel can be lost on Python 3.11
        inside the store's calls (server/tasks.py), and the loop would go on, holding the server's stop."""
        self._stopping = True
        self._changed.set()

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def run(self) -> None:
        self._stopping = False  # a runner started again after a stop
        due_in: float | None = None
        while not self._stopping:
            timeout = self.interval if self.poll else None
            if due_in is not None:
                timeout = due_in if timeout is None else min(timeout, due_in)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._changed.wait()
            self._changed.clear()
            if self.stopping:  # woken by stop(): no pass on the way out
                return
            try:
                due_in = await self.refresh()
            except Exception as error:  # the queue or store hiccupped: places are late, jobs go on
                log.warning("queue positions not refreshed: %s", error)
                due_in = self.interval

    async def refresh(self) -> float | None:
        """One pass (see the module docstring). Returns in how many seconds a coalesced place is due."""
        if not self._written and await self.queue.depth() == 0:
            return None  # nothing waits: no store read (NATS passes run every interval)
        # The snapshots first, then the order: a place from a newer order over an older snapshot is refused
        # by the store if another writer placed the job meanwhile; the other way round, a stale order over
        # a fresh snapshot, would be written and move a job back.
        unfinished = {job.id: job for job in await self.store.unfinished_jobs()}
        order = await self.queue.waiting_order(unfinished.values())
        self._history = {}
        waiting_ids = set(order)
        holding = [job for job in unfinished.values() if job.id not in waiting_ids]
        for gone in self._written.keys() - waiting_ids:
            del self._written[gone]
            self._forget(gone)
        # Jobs queued after the snapshots were read keep their place in the order, without a snapshot.
        waiting = [unfinished.get(job_id) for job_id in order]
        if not any(job is not None and job.status == job_pb2.JOB_STATUS_QUEUED for job in waiting):
            return None
        slots = self.slots if self.slots is not None else max(1, len(holding))
        free_slots = max(0, slots - len(holding))
        waits = start_estimates(
            [await self._seconds_left(job) for job in waiting],
            [await self._seconds_left(job) for job in holding],
            slots,
        )
        due_in: float | None = None
        for position, (job, wait) in enumerate(zip(waiting, waits, strict=True)):
            if job is None or job.status != job_pb2.JOB_STATUS_QUEUED or position < free_slots:
                continue  # not waiting for its place (new, resuming, or about to start in a free slot)
            if job.HasField("queue_position") and job.queue_position == position:
                continue
            wait_left = self._written.get(job.id, -math.inf) + self.interval - time.monotonic()
            if wait_left > 0:
                due_in = wait_left if due_in is None else min(due_in, wait_left)
                continue
            await self._write(job, position, wait)
        return due_in

    async def _seconds_left(self, job: job_pb2.Job | None) -> float | None:
        if job is None:
            return None
        bucket = duration_bucket(job.spec)
        if bucket not in self._history:
            self._history[bucket] = expected_durations(await self.store.stage_durations(bucket))
        return seconds_left(job, self._history[bucket], time.time())

    async def _write(self, job: job_pb2.Job, position: int, wait: float | None) -> None:
        async with self._lock_for(job.id):
            if self._running_here(job.id):
                return  # a worker of this process took it meanwhile
            try:
                await JobRecorder(self.store, self.notifier, job).queue_place(position, wait)
            except ConcurrentWriteError:
                return  # another writer was first: the next pass sees what it wrote
            self._written[job.id] = time.monotonic()
