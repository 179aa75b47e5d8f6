"""The embedded backend's forms of the work interfaces (storage/work.py). One process needs nothing across
processes, so they are small: a fair queue in memory (storage/fairness.py), no bus (the runner's own table of
running jobs is enough), and the local work dir.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import shutil
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from reelcast.jobs.v1 import job_pb2
from reelcast.server.config import Settings
from reelcast.server.storage.fairness import FairPolicy, FairShares, priority_rank, start_order
from reelcast.server.storage.job_store import JobStore
from reelcast.server.storage.work import CHUNK_BYTES, CancelHandler, Claim, OutputFile


class _LocalClaim:
    redelivered = False
    subtask = None  # subtasks run in the stage's own process here (SubtaskPool is None)

    def __init__(self, queue: LocalWorkQueue, waiting: _WaitingJob) -> None:
        self._queue = queue
        self._waiting = waiting
        self.job_id = waiting.job_id

    async def keep_alive(self) -> None:
        return None

    async def finish(self) -> None:
        self._queue.ended(self._waiting.owner)

    async def release(self) -> None:
        # The job stays Running in the store and resumes from its checkpoint (here or after a restart), in
        # the place it had among its owner's jobs.
        self._queue.ended(self._waiting.owner)
        self._queue.wait_again(self._waiting)


@dataclass(frozen=True, order=True)
class _WaitingJob:
    rank: int  # priority_rank: high first
    queued: int  # this process's order of queueing: first queued first within one rank
    job_id: str = field(compare=False)
    owner: str = field(compare=False)


class LocalWorkQueue:
    """Fair scheduling in one process (storage/fairness.py): each user's waiting jobs in a heap by priority
    and queueing order, and the users' shares in memory. Shares start over when the process restarts; the
    jobs do not (``recover``)."""

    @property
    def heartbeat_seconds(self) -> float | None:
        return None

    def __init__(self, policy: FairPolicy | None = None) -> None:
        self.policy = policy if policy is not None else FairPolicy()
        self._shares = FairShares()
        self._waiting: dict[str, list[_WaitingJob]] = {}
        self._running: dict[str, int] = {}
        self._queued = itertools.count()
        # Set on every put and every end: a take waiting for an eligible user looks again.
        self._changed = asyncio.Event()

    async def recover(self, store: JobStore) -> None:
        # Jobs a previous process left unfinished resume from their checkpoints.
        for job in await store.unfinished_jobs():
            self.put_nowait(job.id, owner=job.owner, priority=job.spec.priority)

    async def queue_orphans(self, store: JobStore) -> None:
        return None  # one process stores and queues each job: the queue cannot miss one while it runs

    def put_nowait(self, job_id: str, *, owner: str = "", priority: int = 0) -> None:
        self.wait_again(_WaitingJob(priority_rank(priority), next(self._queued), job_id, owner))

    def wait_again(self, waiting: _WaitingJob) -> None:
        heapq.heappush(self._waiting.setdefault(waiting.owner, []), waiting)
        self._shares.admit(self._waiting)
        self._wake()

    def ended(self, owner: str) -> None:
        self._running[owner] = max(0, self._running.get(owner, 0) - 1)
        self._wake()

    def _wake(self) -> None:
        self._changed.set()

    async def put(self, job_id: str, queued_at: int = 1, *, owner: str = "", priority: int = 0) -> None:
        self.put_nowait(job_id, owner=owner, priority=priority)

    async def take(self) -> Claim:
        # No await between the pick and the pop: one event loop, so no other take can slip in.
        while (user := self._shares.next_user(self._waiting, self._running, self.policy)) is None:
            self._changed.clear()
            await self._changed.wait()
        jobs = self._waiting[user]
        waiting = heapq.heappop(jobs)
        if not jobs:
            del self._waiting[user]
        self._shares.started(user, self.policy)
        self._shares.admit(self._waiting)
        self._running[user] = self._running.get(user, 0) + 1
        return _LocalClaim(self, waiting)

    async def depth(self) -> int:
        # A job cancelled while it waited still counts until a worker takes (and skips) it.
        return sum(len(jobs) for jobs in self._waiting.values())

    async def waiting_order(self, unfinished: Iterable[job_pb2.Job]) -> list[str]:
        """See ``WorkQueue.waiting_order``."""
        by_user = {user: [each.job_id for each in sorted(jobs)] for user, jobs in self._waiting.items()}
        order = start_order(self._shares, by_user, self._running, self.policy)
        # Without the jobs that ended while they waited (cancelled): a worker skips them.
        waiting = {job.id for job in unfinished}
        return [job_id for job_id in order if job_id in waiting]


class LocalCancelBus:
    """One process: the runner signals its own running jobs, so there is nothing to carry."""

    remote = False

    async def listen(self, handler: CancelHandler) -> None:
        return None

    async def request(self, job_id: str) -> None:
        return None

    async def requested(self, job_id: str) -> bool:
        return False

    async def withdraw(self, job_id: str) -> None:
        return None


async def read_file_range(path: Path, offset: int, end: int) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        handle.seek(offset)
        position = offset
        while position < end:
            data = await asyncio.to_thread(handle.read, min(CHUNK_BYTES, end - position))
            if not data:
                return
            position += len(data)
            yield data


class LocalJobFiles:
    """The work dir is the store of files: the job resumes on this machine and outputs are served from it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def save(self, job_id: str, work_dir: Path) -> None:
        return None

    async def publish(self, job_id: str, work_dir: Path, relative: str) -> None:
        return None

    async def restore(self, job_id: str, work_dir: Path) -> None:
        return None

    async def finished(self, job_id: str, work_dir: Path) -> None:
        return None

    async def delete(self, job_id: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self.settings.work_dir(job_id), True)

    async def open_output(self, job_id: str, path: str) -> OutputFile | None:
        file = Path(path)
        if not path or not await asyncio.to_thread(file.is_file):
            return None
        size = (await asyncio.to_thread(file.stat)).st_size
        return OutputFile(file.name, size, lambda offset, end: read_file_range(file, offset, end))
