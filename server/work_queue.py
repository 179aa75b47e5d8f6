"""The pieces of the runner that differ between one process and many machines, with their in-process forms.

- ``WorkQueue`` hands job ids to workers. A ``Claim`` is one worker's hold on one job: it is kept alive while
  the job runs, finished when the job ends, and released when the worker stops before it ends.
- ``CancelBus`` carries a cancel request to the worker that runs the job, wherever it is.
- ``JobFiles`` keeps a job's work dir where any worker can resume it and any server can serve its outputs.

The embedded backend needs none of that across processes, so its forms are small: an ``asyncio.Queue``, no
bus (the runner's own table of running jobs is enough), and the local work dir. server/nats_work.py holds the
JetStream forms.
"""

from __future__ import annotations

import asyncio
import mimetypes
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from reelcast.server.config import Settings
from reelcast.server.store import JobStore

CHUNK_BYTES = 64 * 1024


class Claim(Protocol):
    job_id: str
    # True when an earlier worker got this job and did not finish it (it died or stopped heartbeating).
    redelivered: bool

    async def keep_alive(self) -> None:
        """Tells the queue that the job still runs; called every ``WorkQueue.heartbeat_seconds``."""

    async def finish(self) -> None:
        """The job ended (whatever its outcome): it leaves the queue."""

    async def release(self) -> None:
        """The worker stops before the job ended: another worker may take it now."""


class WorkQueue(Protocol):
    @property
    def heartbeat_seconds(self) -> float | None:
        """How often a running job's claim must be kept alive; None when claims never expire."""

    async def recover(self, store: JobStore) -> None:
        """Called once when the runner starts, before any ``take``."""

    async def put(self, job_id: str) -> None: ...

    async def queue_orphans(self, store: JobStore) -> None:
        """Queues the jobs stored as Queued that the queue does not hold (their server stopped between
        storing and queueing them). Run on a schedule; ``recover`` does the same once at start."""

    async def take(self) -> Claim:
        """Waits for the next job."""

    async def depth(self) -> int:
        """How many jobs wait for a worker (the ``reelcast_queue_depth`` metric)."""


CancelHandler = Callable[[str], None]


class CancelBus(Protocol):
    # True when jobs may run in other processes (a Running job not in this runner is owned elsewhere).
    remote: bool

    async def listen(self, handler: CancelHandler) -> None:
        """Calls ``handler(job_id)`` for every cancel request, from any process."""

    async def request(self, job_id: str) -> None:
        """Records a cancel request durably and tells every worker."""

    async def requested(self, job_id: str) -> bool:
        """Whether a cancel request was recorded (a worker checks it when it claims a job)."""


@dataclass(frozen=True)
class OutputFile:
    """One output of a finished job, readable by range."""

    name: str
    size: int
    read_range: Callable[[int, int], AsyncIterator[bytes]]

    @property
    def content_type(self) -> str:
        return mimetypes.guess_type(self.name)[0] or "application/octet-stream"


class JobFiles(Protocol):
    async def save(self, job_id: str, work_dir: Path) -> None:
        """After a stage completed: keep what it wrote where another worker can find it."""

    async def restore(self, job_id: str, work_dir: Path) -> None:
        """Before a job resumes: bring back the files of its completed stages."""

    async def finished(self, job_id: str, work_dir: Path) -> None:
        """The job ended and its files are saved: local copies may go."""

    async def delete(self, job_id: str) -> None:
        """Removes every file of the job (cancel, retention)."""

    async def open_output(self, job_id: str, path: str) -> OutputFile | None:
        """An output a stage published as ``path``; None if it does not exist."""


# -- the embedded forms -----------------------------------------------------------------------------------


class _LocalClaim:
    redelivered = False

    def __init__(self, queue: LocalWorkQueue, job_id: str) -> None:
        self._queue = queue
        self.job_id = job_id

    async def keep_alive(self) -> None:
        return None

    async def finish(self) -> None:
        return None

    async def release(self) -> None:
        # The job stays Running in the store and resumes from its checkpoint (here or after a restart).
        self._queue.put_nowait(self.job_id)


class LocalWorkQueue:
    @property
    def heartbeat_seconds(self) -> float | None:
        return None

    def __init__(self) -> None:
        self._ids: asyncio.Queue[str] = asyncio.Queue()

    async def recover(self, store: JobStore) -> None:
        # Jobs a previous process left unfinished resume from their checkpoints.
        for job in await store.unfinished_jobs():
            self._ids.put_nowait(job.id)

    async def queue_orphans(self, store: JobStore) -> None:
        return None  # one process stores and queues each job: the queue cannot miss one while it runs

    def put_nowait(self, job_id: str) -> None:
        self._ids.put_nowait(job_id)

    async def put(self, job_id: str) -> None:
        self._ids.put_nowait(job_id)

    async def take(self) -> Claim:
        return _LocalClaim(self, await self._ids.get())

    async def depth(self) -> int:
        # A job cancelled while it waited still counts until a worker takes (and skips) it.
        return self._ids.qsize()


class LocalCancelBus:
    """One process: the runner signals its own running jobs, so there is nothing to carry."""

    remote = False

    async def listen(self, handler: CancelHandler) -> None:
        return None

    async def request(self, job_id: str) -> None:
        return None

    async def requested(self, job_id: str) -> bool:
        return False


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
