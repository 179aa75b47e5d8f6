"""Turns every change of a running job into one durable ``JobProgress`` and its matching job snapshot.

The recorder is the only writer of a job's log while it runs. Writes are serialized by a lock, and progress
ticks are coalesced (the latest wins) so that a chatty stage cannot flood the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Sequence
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2

from reelcast.jobs.terminal import TERMINAL_STATUSES
from reelcast.jobs.v1 import job_pb2
from reelcast.server.execution.eta import remaining_seconds
from reelcast.server.execution.job_trace import job_trace_id
from reelcast.server.execution.progress import ProgressModel
from reelcast.server.storage.job_store import ConcurrentWriteError, JobStore
from reelcast.server.storage.notifier import EventNotifier

log = logging.getLogger(__name__)

# How often a write that takes a job out of the queue goes on after queue places written meanwhile.
QUEUE_PLACE_RETRIES = 5


def now_timestamp() -> timestamp_pb2.Timestamp:
    # From time_ns rather than Timestamp.GetCurrentTime, which goes through datetime and costs several times
    # more; every event carries one.
    seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def seconds_duration(seconds: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration


def queue_place_message(position: int) -> str:
    return "Queued, next in line" if position == 0 else f"Queued, {position} ahead"


def is_queue_place(event: job_pb2.JobProgress) -> bool:
    return (
        event.kind == job_pb2.EVENT_KIND_JOB_STATUS
        and event.job_status == job_pb2.JOB_STATUS_QUEUED
        and event.HasField("queue_position")
    )


def find_step(job: job_pb2.Job, name: str) -> job_pb2.Step:
    for step in job.steps:
        if step.name == name:
            return step
    raise KeyError(name)


class JobRecorder:
    """Writes one job's events. ``job`` is the live snapshot; never mutate it from outside."""

    def __init__(
        self,
        store: JobStore,
        notifier: EventNotifier,
        job: job_pb2.Job,
        progress: ProgressModel | None = None,
        progress_min_interval: float = 0.2,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.job = job
        self.progress = progress
        self._lock = asyncio.Lock()
        self._min_interval = progress_min_interval
        self._pending_tick: tuple[str, float, str] | None = None
        self._last_tick_at = 0.0
        self._flush_handle: asyncio.TimerHandle | None = None
        self._writes: set[asyncio.Task[None]] = set()
        # When the running stage last showed signs of life (started or reported); the stall watchdog reads it.
        self.last_activity = time.monotonic()
        # For the ETA (eta.py): each stage's duration on earlier jobs like this one (the runner fills it in
        # from the store), and when each stage of this attempt started.
        self.expected_durations: dict[str, float] = {}
        self._stage_started: dict[str, float] = {}
        self._first_reports: dict[str, tuple[float, float]] = {}
        # Set while failed() closes the open steps: the job is ending, an ETA would be meaningless.
        self._ending = False
        # Set on a recorder that writes queue places (queue_place): it never writes over another writer.
        self._placing = False
        self._taking = False  # writing the last place as the worker that took the job (queue_place)

    def _event(self, kind: int, message: str, stage: str = "") -> job_pb2.JobProgress:
        job = self.job
        event = job_pb2.JobProgress(
            job_id=job.id,
            kind=kind,  # type: ignore[arg-type]
            job_status=job.status,
            job_percent=job.percent,
            message=message,
            time=now_timestamp(),
            correlation_id=job.correlation_id,
            attempt=job.attempt,
            trace_id=job_trace_id(job),
        )
        if stage:
            step = find_step(job, stage)
            event.stage = step.name
            event.stage_title = step.title
            event.stage_status = step.status
            event.stage_percent = step.percent
        eta = self._eta_seconds()
        if eta is not None:
            event.eta.CopyFrom(seconds_duration(eta))
        if job.status == job_pb2.JOB_STATUS_QUEUED and job.HasField("queue_position"):
            event.queue_position = job.queue_position
            if job.HasField("estimated_start"):
                event.estimated_start.CopyFrom(job.estimated_start)
        return event

    def _eta_seconds(self) -> float | None:
        if self.job.status != job_pb2.JOB_STATUS_RUNNING or self._ending or self.progress is None:
            return None
        progress = self.progress
        shares = {
            step.name: progress.share(step.name) for step in self.job.steps if progress.knows(step.name)
        }
        return remaining_seconds(
            self.job.steps,
            shares,
            self._stage_started,
            self._first_reports,
            self.expected_durations,
            time.monotonic(),
        )

    async def _append(self, event: job_pb2.JobProgress) -> job_pb2.JobProgress:
        for _ in range(QUEUE_PLACE_RETRIES):
            try:
                await self.store.append_event(self.job, event)
                break
            except ConcurrentWriteError:
                newest_place = await self._after_queue_places()
                if newest_place is None:
                    raise
                if (
                    self._taking
                    and is_queue_place(event)
                    and newest_place.queue_position == event.queue_position
                ):
                    # The worker's last place was written by another process's pass between this worker's
                    # read and its write: once is enough, or the stream would count "0, 0".
                    return newest_place
        else:
            raise ConcurrentWriteError(f"job {self.job.id}: queue places kept changing")
        # The event goes along: watchers in this process then serve it from memory instead of the store.
        self.notifier.published(self.job.id, event.sequence, event)
        return event

    async def _after_queue_places(self) -> job_pb2.JobProgress | None:
        """A write found newer events in the log. When they are only queue places (queue_positions.py,
        perhaps from another process) and this is no place write itself, that is no takeover: the write
        goes on after them (a worker starting the job, a cancel). Returns the newest of those places when
        the write may be retried, None when it may not."""
        if self._placing:
            return None  # the other writer's place is as good as this one
        newer = await self.store.events_after(self.job.id, self.job.last_sequence, QUEUE_PLACE_RETRIES * 4)
        if not newer or not all(is_queue_place(event) for event in newer):
            return None
        self.job.last_sequence = newer[-1].sequence
        return newer[-1]

    async def _flush_pending_locked(self) -> None:
        if self._pending_tick is None:
            return
        stage, fraction, message = self._pending_tick
        self._pending_tick = None
        step = find_step(self.job, stage)
        if step.status != job_pb2.STEP_STATUS_RUNNING:
            return
        step.percent = round(fraction * 100.0, 2)
        if fraction > 0 and stage not in self._first_reports:
            self._first_reports[stage] = (time.monotonic(), fraction)
        if message:
            step.message = message
        if self.progress is not None:
            self.job.percent = max(self.job.percent, self.progress.job_percent(stage, fraction))
        self._last_tick_at = time.monotonic()
        await self._append(self._event(job_pb2.EVENT_KIND_STEP_PROGRESS, message or step.message, stage))

    async def flush(self) -> None:
        async with self._lock:
            await self._flush_pending_locked()

    def tick(self, stage: str, fraction: float, message: str) -> None:
        """A stage reported progress. Never moves a bar backwards; coalesces ticks within the interval."""
        self.last_activity = time.monotonic()
        step = find_step(self.job, stage)
        pending_fraction = self._pending_tick[1] if self._pending_tick else step.percent / 100.0
        if fraction < pending_fraction or (fraction == pending_fraction and not message):
            return
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        if (
            self._pending_tick is None
            and self._flush_handle is None
            and now - self._last_tick_at >= self._min_interval
        ):
            # Due now: write this very tick, so that a later one in the same burst cannot swallow it (a
            # stage's first report always shows, however fast the stage is).
            self._last_tick_at = now
            self._spawn(self._write_tick(stage, fraction, message))
            return
        self._pending_tick = (stage, fraction, message)
        if self._flush_handle is not None:
            return
        delay = max(0.0, self._last_tick_at + self._min_interval - now)
        self._flush_handle = loop.call_later(delay, self._schedule_flush)

    async def _write_tick(self, stage: str, fraction: float, message: str) -> None:
        async with self._lock:
            pending = self._pending_tick
            self._pending_tick = (stage, fraction, message)
            await self._flush_pending_locked()
            self._pending_tick = pending

    def _schedule_flush(self) -> None:
        self._flush_handle = None
        self._spawn(self.flush())

    def _spawn(self, write: Coroutine[Any, Any, None]) -> None:
        # The loop keeps only weak references to tasks: hold each write until it is done.
        task = asyncio.get_running_loop().create_task(self._tolerating_takeover(write))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _tolerating_takeover(self, write: Coroutine[Any, Any, None]) -> None:
        """A background progress write that finds another writer in charge is dropped: the next status write
        raises the same ConcurrentWriteError where the runner handles it."""
        try:
            await write
        except ConcurrentWriteError:
            log.warning("job %s: progress not written, another writer owns the job", self.job.id)

    async def job_status(self, status: int, message: str) -> job_pb2.JobProgress:
        async with self._lock:
            await self._flush_pending_locked()
            self.job.status = status  # type: ignore[assignment]
            # A place in the queue belongs to the queue_place events alone.
            self._clear_queue_place()
            if status == job_pb2.JOB_STATUS_RUNNING and not self.job.HasField("start_time"):
                self.job.start_time.CopyFrom(now_timestamp())
            return await self._append(self._event(job_pb2.EVENT_KIND_JOB_STATUS, message, self.job.stage))

    async def queue_place(
        self, position: int, wait_seconds: float | None, taken: bool = False
    ) -> job_pb2.JobProgress:
        """Writes the Queued job's place among the waiting jobs (0: next) and its estimated wait. ``taken``:
        the worker that took the job writes its last place, after any other writer's places."""
        async with self._lock:
            self._placing = not taken
            self._taking = taken
            job = self.job
            job.queue_position = position
            job.ClearField("estimated_start")
            if wait_seconds is not None:
                job.estimated_start.CopyFrom(seconds_duration(wait_seconds))
            return await self._append(
                self._event(job_pb2.EVENT_KIND_JOB_STATUS, queue_place_message(position))
            )

    def _clear_queue_place(self) -> None:
        self.job.ClearField("queue_position")
        self.job.ClearField("estimated_start")

    async def step_status(self, stage: str, status: int, message: str) -> job_pb2.JobProgress:
        async with self._lock:
            await self._flush_pending_locked()
            step = find_step(self.job, stage)
            step.status = status  # type: ignore[assignment]
            step.message = message
            stamp = now_timestamp()
            if status == job_pb2.STEP_STATUS_RUNNING:
                self.last_activity = time.monotonic()
                self._stage_started[stage] = self.last_activity
                self._first_reports.pop(stage, None)
                step.start_time.CopyFrom(stamp)
                step.ClearField("end_time")
                step.ClearField("duration")
                step.percent = 0.0
                step.ClearField("errors")
                self.job.stage = stage
                if self.progress is not None:
                    self.job.percent = max(self.job.percent, self.progress.stage_start(stage))
            elif status in (
                job_pb2.STEP_STATUS_SUCCEEDED,
                job_pb2.STEP_STATUS_FAILED,
                job_pb2.STEP_STATUS_CANCELLED,
            ):
                step.end_time.CopyFrom(stamp)
                if step.HasField("start_time"):
                    step.duration.FromNanoseconds(stamp.ToNanoseconds() - step.start_time.ToNanoseconds())
                if status == job_pb2.STEP_STATUS_SUCCEEDED:
                    step.percent = 100.0
                    if self.progress is not None:
                        self.job.percent = max(self.job.percent, self.progress.job_percent(stage, 1.0))
            return await self._append(self._event(job_pb2.EVENT_KIND_STEP_STATUS, message, stage))

    async def preview(self, stage: str, preview: job_pb2.Preview) -> job_pb2.JobProgress:
        """A stage published a longer preview of the video: one step-progress event that carries it (never
        coalesced away as ticks are), at the step's progress so far, and ``Job.preview`` in the snapshot."""
        async with self._lock:
            await self._flush_pending_locked()
            self.job.preview.CopyFrom(preview)
            message = f"Preview: {preview.duration_seconds:.1f} s of {preview.total_seconds:.1f} s"
            event = self._event(job_pb2.EVENT_KIND_STEP_PROGRESS, message, stage)
            event.preview.CopyFrom(preview)
            return await self._append(event)

    async def completed(self, output: job_pb2.JobOutput, message: str = "Done") -> job_pb2.JobProgress:
        async with self._lock:
            self._pending_tick = None
            job = self.job
            job.status = job_pb2.JOB_STATUS_SUCCEEDED
            job.percent = 100.0
            job.ClearField("preview")  # the output is the whole video
            job.output.CopyFrom(output)
            job.finish_time.CopyFrom(now_timestamp())
            event = self._event(job_pb2.EVENT_KIND_JOB_COMPLETED, message, job.stage)
            event.output.CopyFrom(output)
            return await self._append(event)

    async def failed(
        self,
        status: int,
        errors: Sequence[job_pb2.JobError],
        failure: job_pb2.FailureDetails | None,
        message: str,
    ) -> job_pb2.JobProgress:
        """Writes the terminal failure (``status`` FAILED or CANCELLED). Steps still open are closed first,
        each with its own step-status event (the running one FAILED or CANCELLED, pending ones SKIPPED), so
        that a client following step events sees every step end, on gRPC and SSE alike."""
        async with self._lock:
            self._pending_tick = None
            self._ending = True
            job = self.job
            self._clear_queue_place()
            running_end = (
                job_pb2.STEP_STATUS_CANCELLED
                if status == job_pb2.JOB_STATUS_CANCELLED
                else job_pb2.STEP_STATUS_FAILED
            )
            for step in job.steps:
                if step.status == job_pb2.STEP_STATUS_RUNNING:
                    step.status = running_end
                    stamp = now_timestamp()
                    step.end_time.CopyFrom(stamp)
                    if step.HasField("start_time"):
                        step.duration.FromNanoseconds(stamp.ToNanoseconds() - step.start_time.ToNanoseconds())
                    step.errors.extend(errors)
                    step.message = message
                elif step.status == job_pb2.STEP_STATUS_PENDING:
                    step.status = job_pb2.STEP_STATUS_SKIPPED
                    step.message = f"{step.title} skipped"
                else:
                    continue
                await self._append(self._event(job_pb2.EVENT_KIND_STEP_STATUS, step.message, step.name))
            stamp = now_timestamp()
            job.status = status  # type: ignore[assignment]
            del job.errors[:]
            job.errors.extend(errors)
            if failure is not None:
                job.failure.CopyFrom(failure)
            job.finish_time.CopyFrom(stamp)
            event = self._event(job_pb2.EVENT_KIND_JOB_FAILED, message, job.stage)
            event.errors.extend(errors)
            if failure is not None:
                event.failure.CopyFrom(failure)
            return await self._append(event)

    async def retried(self, keep_succeeded_steps: bool) -> job_pb2.JobProgress:
        """Writes ``EVENT_KIND_JOB_RETRIED``: the ended job is Queued again with a new attempt, its result
        cleared, and every step it must run again back to Pending (the succeeded ones too unless
        ``keep_succeeded_steps``: their checkpoints are what the new attempt skips)."""
        async with self._lock:
            job = self.job
            job.attempt += 1
            job.status = job_pb2.JOB_STATUS_QUEUED
            self._clear_queue_place()
            for field in ("errors", "failure", "finish_time", "output", "preview"):
                job.ClearField(field)
            if not keep_succeeded_steps:
                job.percent = 0.0
            for step in job.steps:
                if keep_succeeded_steps and step.status == job_pb2.STEP_STATUS_SUCCEEDED:
                    continue
                step.status = job_pb2.STEP_STATUS_PENDING
                step.percent = 0.0
                step.message = ""
                for field in ("errors", "start_time", "end_time", "duration"):
                    step.ClearField(field)  # type: ignore[arg-type]
            message = f"Retried (attempt {job.attempt})"
            return await self._append(self._event(job_pb2.EVENT_KIND_JOB_RETRIED, message))

    @property
    def finished(self) -> bool:
        return self.job.status in TERMINAL_STATUSES
