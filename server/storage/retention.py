"""Retention: finished jobs are deleted, with everything they left on disk, once their time to live is over.

``reelcast gc`` runs one pass now; the server runs one every ``gc_interval_seconds``. Jobs that are still
queued or running are never touched, whatever their age. The server's schedule also queues orphaned jobs
(``WorkQueue.queue_orphans``).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time

from reelcast.server.config import Settings
from reelcast.server.storage.job_store import JobStore
from reelcast.server.storage.work import WorkQueue

log = logging.getLogger(__name__)
BATCH = 500


async def collect_garbage(settings: Settings, store: JobStore, now: float | None = None) -> list[str]:
    """Deletes every job that finished more than ``retention_seconds`` before ``now``; returns their ids."""
    cutoff_us = int(((now if now is not None else time.time()) - settings.retention_seconds) * 1_000_000)
    deleted: list[str] = []
    while True:
        expired = await store.finished_before(cutoff_us, BATCH)
        if not expired:
            return deleted
        for job_id in expired:
            # Files first: if the process dies half-way, the row is still there and the next pass retries.
            await asyncio.to_thread(_remove_job_files, settings, job_id)
            await store.delete_job(job_id)
            deleted.append(job_id)


def _remove_job_files(settings: Settings, job_id: str) -> None:
    shutil.rmtree(settings.work_dir(job_id), ignore_errors=True)
    (settings.ffmpeg_logs_dir / f"{job_id}.log").unlink(missing_ok=True)


async def collect_periodically(settings: Settings, store: JobStore, queue: WorkQueue | None = None) -> None:
    """The server's schedule: one pass at start, then one every ``gc_interval_seconds``. From the second
    pass on, each also queues ``queue``'s orphaned jobs (at start, the queue's ``recover`` just did)."""
    first = True
    while True:
        try:
            removed = await collect_garbage(settings, store)
            if removed:
                log.info("retention removed %d finished jobs", len(removed))
            if queue is not None and not first:
                await queue.queue_orphans(store)
        except Exception:
            log.exception("retention pass failed; retrying at the next interval")
        first = False
        await asyncio.sleep(settings.gc_interval_seconds)
