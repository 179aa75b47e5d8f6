"""The embedded backend's forms of the work interfaces (storage/work.py). One process needs nothing across
processes, so they are small: an ``asyncio.Queue``, no bus (the runner's own table of running jobs is
enough), and the local work dir.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from reelcast.server.config import Settings
from reelcast.server.storage.job_store import JobStore
from reelcast.server.storage.work import CHUNK_BYTES, CancelHandler, Claim, OutputFile


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

    async def put(self, job_id: str, queued_at: int = 1) -> None:
        self._ids.put_nowait(job_id)

    async def take(self) -> Claim:
        return _LocalClaim(self, await self._ids.get())

    async def depth(self) -> int:
        # A job cancelled while it waited still counts until a worker takes (and skips) it.
        return self._ids.qsize()

    async def waiting_order(self, store: JobStore) -> list[str]:
        # FIFO: the queue's own order, without the jobs that ended while they waited (a worker skips them).
        unfinished = {job.id for job in await store.unfinished_jobs()}
        waiting = list(self._ids._queue)  # type: ignore[attr-defined]  # asyncio.Queue keeps a deque
        return [job_id for job_id in dict.fromkeys(waiting) if job_id in unfinished]


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
