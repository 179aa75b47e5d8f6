"""``WatchJob`` semantics on top of any store: replay after a cursor, then follow live, then stop after the
terminal event. One loop serves both replay and live delivery (see notifier.py for why), reading the store
only for what the notifier's memory does not hold."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from reelcast.jobs.terminal import is_terminal
from reelcast.jobs.v1 import job_pb2
from reelcast.server.execution.job_trace import job_trace_id
from reelcast.server.storage.job_store import JobStore, deletion_event
from reelcast.server.storage.notifier import EventNotifier

BATCH_SIZE = 256
# A safety net only: notifications are the normal wake-up, this bounds the cost of one ever being lost.
RECHECK_SECONDS = 5.0


async def follow_job_events(
    store: JobStore, notifier: EventNotifier, job_id: str, after_sequence: int
) -> AsyncGenerator[job_pb2.JobProgress, None]:
    """Yields every event of ``job_id`` after ``after_sequence``, in order, until the terminal one: the last
    one in the log. A retried job's log goes on past the terminal event of each earlier attempt, and a
    stream from before it follows on into the retry; a stream open when the job ended still ends there (a
    client follows a later retry by watching after that event's sequence).

    If the history before the first kept event was trimmed and the cursor falls into the gap, a single
    ``EVENT_KIND_RESYNC`` carrying the job's snapshot comes first, and the stream continues from there.
    """
    cursor = after_sequence
    first_kept = await store.first_sequence(job_id)
    if first_kept > cursor + 1:
        job = await store.get_job(job_id)
        if job is not None:
            resync = job_pb2.JobProgress(
                job_id=job_id,
                sequence=first_kept - 1,
                kind=job_pb2.EVENT_KIND_RESYNC,
                job_status=job.status,
                job_percent=job.percent,
                correlation_id=job.correlation_id,
                trace_id=job_trace_id(job),
                snapshot=job,
            )
            yield resync
            cursor = first_kept - 1
    while True:
        # Live events come from memory when the writer is in this process; replay and gaps from the store.
        recent = notifier.recent_after(job_id, cursor)
        batch = recent if recent is not None else await store.events_after(job_id, cursor, BATCH_SIZE)
        for index, event in enumerate(batch):
            yield event
            cursor = event.sequence
            if is_terminal(event) and index == len(batch) - 1:
                # The end, unless the job was retried since (its log goes on) or is gone (DeleteJob).
                job = await store.get_job(job_id)
                while job is not None and job.last_sequence <= cursor and notifier.is_deleting(job_id):
                    # This process cancelled the job to delete it: the stream ends with the deletion, not
                    # with the cancel (the deletion wakes the notifier; the timeout rechecks the mark).
                    await notifier.wait_beyond(job_id, cursor, timeout=RECHECK_SECONDS)
                    job = await store.get_job(job_id)
                if job is None:
                    yield deletion_event(job_id, cursor + 1)
                    return
                if job.last_sequence <= cursor:
                    return
        if not batch and await store.get_job(job_id) is None:
            # Deleted (DeleteJob, here or on another server): the stream says so and ends.
            yield deletion_event(job_id, cursor + 1)
            return
        if len(batch) == BATCH_SIZE:
            continue
        await notifier.wait_beyond(job_id, cursor, timeout=RECHECK_SECONDS)
