"""Retention: finished jobs are deleted, with everything they left on disk, once their time to live is over.

Uploaded media goes with its owner's jobs: a file older than the retention period that no job still in the
store refers to is deleted (``collect_media_garbage``, after the jobs of the same pass), so media stays while
a kept job (or a queued one) may need it, and an upload nothing ever used lasts one retention period.

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
from reelcast.server.media.references import spec_references
from reelcast.server.media.store import MediaStore
from reelcast.server.storage.job_store import JobStore, PageCursor
from reelcast.server.storage.work import WorkQueue

log = logging.getLogger(__name__)
BATCH = 500


async def collect_garbage(settings: Settings, store: JobStore, now: float | None = None) -> list[str]:
    """Deletes every job that finished more than ``retention_seconds`` before ``now``, and the feed's deletion
    records older than that (a WatchJobs cursor from before them gets a resync); returns the jobs' ids."""
    cutoff_us = int(((now if now is not None else time.time()) - settings.retention_seconds) * 1_000_000)
    deleted: list[str] = []
    while True:
        expired = await store.finished_before(cutoff_us, BATCH)
        if not expired:
            # The deletion records WatchJobs streams resume through last one retention period too.
            await store.trim_feed(cutoff_us)
            return deleted
        for job_id in expired:
            # Files first: if the process dies half-way, the row is still there and the next pass retries.
            await asyncio.to_thread(remove_job_files, settings, job_id)
            await store.delete_job(job_id)
            deleted.append(job_id)


async def _referenced_media(store: JobStore, owner: str) -> set[str]:
    """Every media id that a job of ``owner`` still in the store refers to."""
    referenced: set[str] = set()
    after = None
    while True:
        jobs = await store.list_jobs(owner, [], BATCH, after)
        for job in jobs:
            referenced.update(reference.media_id for reference in spec_references(job.spec))
            referenced.update(scene.background_media_id for scene in job.review.scenes)
        if len(jobs) < BATCH:
            return referenced
        last = jobs[-1]
        time_us = last.create_time.seconds * 1_000_000 + last.create_time.nanos // 1000
        after = PageCursor(time_us, last.id)


async def collect_media_garbage(
    settings: Settings, store: JobStore, media: MediaStore, now: float | None = None
) -> list[str]:
    """Deletes the media stored more than ``retention_seconds`` before ``now`` that no job in the store
    refers to; returns their ids."""
    cutoff_us = int(((now if now is not None else time.time()) - settings.retention_seconds) * 1_000_000)
    referenced: dict[str, set[str]] = {}
    deleted: list[str] = []
    for record in await media.created_before(cutoff_us, BATCH):
        if record.owner not in referenced:
            referenced[record.owner] = await _referenced_media(store, record.owner)
        if record.id not in referenced[record.owner]:
            await media.delete(record.id)
            deleted.append(record.id)
    return deleted


# An upload in progress is seconds to minutes old; one this old was left by a process that died mid-upload.
STALE_UPLOAD_SECONDS = 24 * 3600.0


def remove_stale_uploads(settings: Settings, now: float | None = None) -> int:
    """Deletes what uploads of a process that died mid-call left in ``media_incoming_dir``; returns how many
    files went. (A live call removes its own files however it ends.)"""
    cutoff = (now if now is not None else time.time()) - STALE_UPLOAD_SECONDS
    removed = 0
    for entry in settings.media_incoming_dir.glob("*"):
        try:
            if entry.stat().st_mtime < cutoff:
                entry.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def remove_job_files(settings: Settings, job_id: str) -> None:
    """The job's work dir and every log a stage wrote for it (``<logs>/**/<job id>.*``, the ffmpeg log
    among them), on this machine (retention, DeleteJob)."""
    shutil.rmtree(settings.work_dir(job_id), ignore_errors=True)
    if settings.logs_dir.is_dir():
        for log_file in settings.logs_dir.rglob(f"{job_id}.*"):
            log_file.unlink(missing_ok=True)


async def collect_periodically(
    settings: Settings, store: JobStore, queue: WorkQueue | None = None, media: MediaStore | None = None
) -> None:
    """The server's schedule: one pass at start, then one every ``gc_interval_seconds``. From the second
    pass on, each also queues ``queue``'s orphaned jobs (at start, the queue's ``recover`` just did)."""
    first = True
    while True:
        try:
            removed = await collect_garbage(settings, store)
            if removed:
                log.info("retention removed %d finished jobs", len(removed))
            if media is not None:
                gone = await collect_media_garbage(settings, store, media)
                if gone:
                    log.info("retention removed %d unused media files", len(gone))
                await asyncio.to_thread(remove_stale_uploads, settings)
            if queue is not None and not first:
                await queue.queue_orphans(store)
        except Exception:
            log.exception("retention pass failed; retrying at the next interval")
        first = False
        await asyncio.sleep(settings.gc_interval_seconds)
