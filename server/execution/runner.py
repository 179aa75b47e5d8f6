"""The job runner: queues jobs, hands each one a worker that runs it through the pipeline (pipeline.py), and
cancels them, queued or running.

Where jobs wait, how a cancel reaches the worker and where work dirs are kept come from the backend
(storage/work.py): in one process an asyncio queue and the local disk; across machines, NATS JetStream. When
the backend's claims can lapse (a worker that stops heartbeating loses its job to another), a job that fails
``max_attempts`` times that way ends with E702-WORKER_LOST. How many jobs run at once is
``Settings.max_concurrent_jobs``; the watchdogs over a running stage are in watchdog.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence

from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.jobs.metadata import correlation_id_var
from reelcast.jobs.terminal import TERMINAL_STATUSES
from reelcast.jobs.tracing import current_traceparent
from reelcast.jobs.v1 import job_pb2
from reelcast.plugins.host import InstalledStage, PluginHost
from reelcast.server.config import Settings
from reelcast.server.execution.job_trace import job_span, job_trace_id
from reelcast.server.execution.pipeline import JobPipeline, failure_details, job_error
from reelcast.server.execution.queue_positions import QueuePositions
from reelcast.server.execution.recorder import JobRecorder, now_timestamp
from reelcast.server.execution.review import is_expired
from reelcast.server.execution.running_job import RunningJob
from reelcast.server.logs import job_context, trace_id_var
from reelcast.server.media.store import MediaStore
from reelcast.server.storage.backend import Backend
from reelcast.server.storage.job_store import ConcurrentWriteError, DuplicateRequestError, JobStore
from reelcast.server.storage.notifier import EventNotifier
from reelcast.server.storage.retention import remove_job_files
from reelcast.server.storage.work import CancelBus, Claim, JobFiles, WorkQueue
from reelcast.server.tasks import cancel_and_wait

log = logging.getLogger(
    "reelcast.server.runner"
)  # the documented name operators filter on (docs/observability.md)


# How long DeleteJob waits for the worker of a running job to write its cancel before deleting it anyway.
DELETE_CANCEL_WAIT_SECONDS = 30.0


def new_job_id() -> str:
    return uuid.uuid4().hex


class JobRunner:
    """Owns the queue and the worker tasks of one process."""

    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        host: PluginHost,
    ) -> None:
        self.settings = settings
        self.store: JobStore = backend.store
        self.notifier: EventNotifier = backend.notifier
        self.host = host
        self.queue: WorkQueue = backend.queue
        self.cancels: CancelBus = backend.cancels
        self.files: JobFiles = backend.files
        self.media: MediaStore = backend.media
        self._workers: list[asyncio.Task[None]] = []
        self._running: dict[str, RunningJob] = {}
        # Guards the read-modify-write of jobs that no worker owns (cancelling a queued job).
        self._job_locks: dict[str, asyncio.Lock] = {}
        self.accepting = True
        # Cleared while draining for shutdown, so that idle workers take no new job from the queue.
        self._open_for_work = asyncio.Event()
        self._open_for_work.set()
        # Set whenever no job is running (what a graceful stop waits for).
        self._idle = asyncio.Event()
        self._idle.set()
        self.subtasks = backend.subtasks
        # The cancel events of the subtasks running here, by job (a job's cancel stops them too).
        self._subtask_cancels: dict[str, set[asyncio.Event]] = {}
        self._pipeline = JobPipeline(
            settings, self.store, self.notifier, host, self.files, backend.media, backend.subtasks
        )
        self.positions = QueuePositions(
            self.store,
            self.notifier,
            self.queue,
            slots=None if self.cancels.remote else max(1, settings.max_concurrent_jobs),
            interval=settings.queue_position_interval_seconds,
            poll=self.cancels.remote,
            lock_for=lambda job_id: self._job_locks.setdefault(job_id, asyncio.Lock()),
            running_here=lambda job_id: job_id in self._running,
            forget=self._forget_lock,
        )
        self._positions_task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Recovers the jobs a previous process left unfinished, then starts the workers (none when
        ``Settings.embedded_worker`` is off: an API-only server)."""
        await self.queue.recover(self.store)
        await self.cancels.listen(self._cancel_here)
        if not self.settings.embedded_worker:
            return
        for index in range(max(1, self.settings.max_concurrent_jobs)):
            self._workers.append(asyncio.create_task(self._work(), name=f"reelcast-runner-{index}"))
        self._positions_task = asyncio.create_task(self.positions.run(), name="reelcast-queue-positions")
        self.positions.changed()

    async def stop(self, grace: float = 0.0) -> None:
        """Stops the workers. Running jobs get ``grace`` seconds to finish; those still running after that
        are stopped and stay Running in the store, to resume from their checkpoint on the next start. New
        jobs are still accepted (as Queued) until ``accepting`` is cleared."""
        self._open_for_work.clear()
        if self._positions_task is not None:
            self.positions.stop()
            await cancel_and_wait(self._positions_task)
            self._positions_task = None
        if self._running and grace > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self._idle.wait()
        await cancel_and_wait(*self._workers)
        self._workers.clear()
        self._open_for_work.set()

    def _forget_lock(self, job_id: str) -> None:
        """Drops the lock of a job that left the queue unless someone holds it or the job runs here."""
        lock = self._job_locks.get(job_id)
        if lock is not None and not lock.locked() and job_id not in self._running:
            del self._job_locks[job_id]

    # -- requests --------------------------------------------------------------------------------------

    def pipeline(self) -> list[InstalledStage]:
        return self._pipeline.stages()

    async def submit(
        self, spec: job_pb2.JobSpec, owner: str, correlation_id: str, request_id: str = ""
    ) -> job_pb2.Job:
        if not self.accepting:
            raise ReelcastError(errors.SERVER_SHUTTING_DOWN)
        job = job_pb2.Job(
            id=new_job_id(),
            owner=owner,
            status=job_pb2.JOB_STATUS_QUEUED,
            spec=spec,
            correlation_id=correlation_id,
            create_time=now_timestamp(),
            # The span creating the job (CreateJob's): the runner's job span links to it, hours later maybe.
            traceparent=current_traceparent(),
        )
        for installed in self.pipeline():
            job.steps.add(
                name=installed.stage.name, title=installed.stage.title, status=job_pb2.STEP_STATUS_PENDING
            )
        first = job_pb2.JobProgress(
            job_id=job.id,
            kind=job_pb2.EVENT_KIND_JOB_STATUS,
            job_status=job.status,
            message="Queued",
            time=job.create_time,
            correlation_id=correlation_id,
            trace_id=job_trace_id(job),
        )
        try:
            await self.store.create_job(job, first, request_id)
        except DuplicateRequestError as duplicate:
            return duplicate.existing
        self.notifier.published(job.id, 1)
        await self.queue.put(job.id, owner=owner, priority=spec.priority)
        self.positions.changed()
        return job

    def _cancel_here(self, job_id: str) -> None:
        """A cancel request from any process: stops the job if this runner runs it."""
        running = self._running.get(job_id)
        if running is not None and not running.recorder.finished:
            running.cancel()
        for event in self._subtask_cancels.get(job_id, ()):
            event.set()

    async def cancel(self, job_id: str) -> job_pb2.Job:
        """Cancels a queued job at once, or signals a running one. Raises E004 if it already finished."""
        running = self._running.get(job_id)
        if running is not None:
            if running.recorder.finished:
                raise ReelcastError(errors.JOB_ALREADY_FINISHED)
            running.cancel()
            return running.recorder.job
        lock = self._job_locks.setdefault(job_id, asyncio.Lock())
        async with lock:
            running = self._running.get(job_id)
            if running is not None:  # a worker picked it up while we waited
                running.cancel()
                return running.recorder.job
            job = await self.store.latest_job(job_id)
            if job is None:
                raise ReelcastError(errors.JOB_NOT_FOUND)
            if job.status in TERMINAL_STATUSES:
                raise ReelcastError(errors.JOB_ALREADY_FINISHED)
            # Recorded before any check, so that a worker claiming the job from now on sees it (see
            # NatsCancelBus); the worker running it now gets it as a message.
            await self.cancels.request(job_id)
            if job.status == job_pb2.JOB_STATUS_RUNNING and self.cancels.remote:
                return job  # its worker, on some machine, writes the terminal event
            recorder = JobRecorder(self.store, self.notifier, job)
            cancelled = ReelcastError(errors.CANCELLED)
            try:
                await recorder.failed(job_pb2.JOB_STATUS_CANCELLED, [job_error(cancelled)], None, "Cancelled")
            except ConcurrentWriteError:
                # A worker claimed the job meanwhile; it has the request and ends the job itself.
                latest = await self.store.latest_job(job_id)
                return latest if latest is not None else job
            await self.files.delete(job_id)
            self.positions.changed()
            return recorder.job

    async def retry(self, job_id: str) -> job_pb2.Job:
        """Queues a Failed or Cancelled job again (E060 otherwise) with a new attempt. A failed job resumes
        from its checkpoints through the same path as a job interrupted by a restart (pipeline.py); a
        cancelled one starts over, since its files went with the cancel."""
        lock = self._job_locks.setdefault(job_id, asyncio.Lock())
        async with lock:
            job = await self.store.latest_job(job_id)
            if job is None:
                raise ReelcastError(errors.JOB_NOT_FOUND)
            if job.status not in (job_pb2.JOB_STATUS_FAILED, job_pb2.JOB_STATUS_CANCELLED):
                status = job_pb2.JobStatus.Name(job.status).removeprefix("JOB_STATUS_")
                raise ReelcastError(
                    errors.JOB_NOT_RETRYABLE, f"The job is {status}, not Failed or Cancelled."
                )
            cancelled = job.status == job_pb2.JOB_STATUS_CANCELLED
            if cancelled:
                await self.store.clear_checkpoints(job_id)
                await self.cancels.withdraw(job_id)
            recorder = JobRecorder(self.store, self.notifier, job)
            try:
                event = await recorder.retried(keep_succeeded_steps=not cancelled)
            except ConcurrentWriteError:
                raise ReelcastError(errors.JOB_NOT_RETRYABLE, "The job was retried meanwhile.") from None
        await self.queue.put(job_id, event.sequence, owner=job.owner, priority=job.spec.priority)
        self.positions.changed()
        return recorder.job

    async def delete(self, job_id: str) -> None:
        """Deletes the job with its events, checkpoints, files, logs and stored objects; a job that has not
        ended is cancelled first, and its deletion waits (up to ``DELETE_CANCEL_WAIT_SECONDS``) for the
        cancel to be written, so that no worker writes to it afterwards. Open watches end with
        EVENT_KIND_JOB_DELETED (rpc/watch.py)."""
        job = await self.store.latest_job(job_id)
        if job is None:
            raise ReelcastError(errors.JOB_NOT_FOUND)
        await self.notifier.announce_deleting(job_id, True)
        try:
            await self._delete(job_id, job)
        finally:
            await self.notifier.announce_deleting(job_id, False)

    async def _delete(self, job_id: str, job: job_pb2.Job | None) -> None:
        if job is not None and job.status not in TERMINAL_STATUSES:
            with contextlib.suppress(ReelcastError):  # E004: it ended meanwhile
                await self.cancel(job_id)
            deadline = asyncio.get_running_loop().time() + DELETE_CANCEL_WAIT_SECONDS
            while job is not None and job.status not in TERMINAL_STATUSES:
                if asyncio.get_running_loop().time() > deadline:
                    break  # a worker that never answers: delete anyway, its next write fails
                await self.notifier.wait_beyond(job_id, job.last_sequence, timeout=0.5)
                job = await self.store.latest_job(job_id)
        if job is None:
            return
        await self.files.delete(job_id)
        await asyncio.to_thread(remove_job_files, self.settings, job_id)
        await self.store.delete_job(job_id)
        # Wakes this process's watchers at once: they find the job gone and end (others on their recheck).
        self.notifier.published(job_id, job.last_sequence + 1)

    # -- review before render (review.py) ---------------------------------------------------------------

    async def update_script(
        self, job_id: str, scenes: Sequence[job_pb2.Scene], expected_revision: int
    ) -> job_pb2.Job:
        """Replaces the scenes of a job awaiting review. E016 when ``expected_revision`` is not its
        current revision, E015 when it does not wait for review. ``scenes`` are valid."""

        async def edit(recorder: JobRecorder) -> None:
            review = recorder.job.review
            if expected_revision != review.revision:
                raise ReelcastError(
                    errors.REVIEW_REVISION_STALE,
                    f"The script is at revision {review.revision}; this edit was made from revision "
                    f"{expected_revision}.",
                )
            review.revision += 1
            del review.scenes[:]
            review.scenes.extend(scenes)
            await recorder.job_status(
                job_pb2.JOB_STATUS_AWAITING_REVIEW, f"Script edited (revision {review.revision})"
            )

        return await self._change_waiting_job(job_id, edit)

    async def approve(self, job_id: str, scenes: Sequence[job_pb2.Scene] = ()) -> job_pb2.Job:
        """Approves a waiting job's script (replaced by ``scenes`` when given) and queues the job again."""

        async def approve(recorder: JobRecorder) -> None:
            review = recorder.job.review
            if scenes and list(scenes) != list(review.scenes):  # a revision counts changes
                review.revision += 1
                del review.scenes[:]
                review.scenes.extend(scenes)
            review.approved = True
            await recorder.job_status(job_pb2.JOB_STATUS_QUEUED, "Approved")

        job = await self._change_waiting_job(job_id, approve)
        await self.queue.put(job_id, job.last_sequence, owner=job.owner, priority=job.spec.priority)
        self.positions.changed()
        return job

    async def expire_review(self, job_id: str) -> bool:
        """Fails a job whose review expired with E703; False when it no longer waits (approved, cancelled,
        edited or expired by another server meanwhile) or has not expired."""

        async def expire(recorder: JobRecorder) -> None:
            if not is_expired(recorder.job, now_timestamp().ToNanoseconds()):
                raise ReelcastError(errors.JOB_NOT_AWAITING_REVIEW)
            error = ReelcastError(errors.REVIEW_EXPIRED)
            failure = failure_details(error, stage="")
            await recorder.failed(job_pb2.JOB_STATUS_FAILED, [job_error(error)], failure, error.message)

        try:
            await self._change_waiting_job(job_id, expire)
        except ReelcastError:
            return False
        await self.files.delete(job_id)
        return True

    async def _change_waiting_job(
        self, job_id: str, change: Callable[[JobRecorder], Awaitable[None]]
    ) -> job_pb2.Job:
        """Writes one change of a job awaiting review, as ``cancel`` does for a queued job: under the job's
        lock here, and refused when another server or a worker wrote to the job first."""
        lock = self._job_locks.setdefault(job_id, asyncio.Lock())
        async with lock:
            job = await self.store.latest_job(job_id)
            if job is None:
                raise ReelcastError(errors.JOB_NOT_FOUND)
            if job.status != job_pb2.JOB_STATUS_AWAITING_REVIEW:
                status = job_pb2.JobStatus.Name(job.status).removeprefix("JOB_STATUS_")
                raise ReelcastError(
                    errors.JOB_NOT_AWAITING_REVIEW, f"The job is {status}, not awaiting review."
                )
            recorder = JobRecorder(self.store, self.notifier, job)
            try:
                await change(recorder)
            except ConcurrentWriteError:
                latest = await self.store.latest_job(job_id)
                if latest is None or latest.status != job_pb2.JOB_STATUS_AWAITING_REVIEW:
                    raise ReelcastError(errors.JOB_NOT_AWAITING_REVIEW) from None
                raise ReelcastError(errors.REVIEW_REVISION_STALE) from None
            return recorder.job

    # -- execution -------------------------------------------------------------------------------------

    async def _work(self) -> None:
        this_task = asyncio.current_task()
        while True:
            # On 3.11 asyncio.wait_for (in nats-py's requests) can drop a cancel whose reply arrived at the
            # same moment; the request still shows in cancelling(), and stop() waits for this task to end.
            if this_task is not None and this_task.cancelling():
                raise asyncio.CancelledError
            await self._open_for_work.wait()
            claim = await self.queue.take()
            self.positions.changed()
            if not self._open_for_work.is_set():  # draining began while this worker waited
                await claim.release()
                continue
            # Every line logged for this job, here or in its stages, carries its id and correlation id.
            # A subtask's lines carry its job's correlation id too (its job's worker sent it with the order).
            correlation = str((claim.subtask or {}).get("correlation_id") or "")
            with job_context(claim.job_id, correlation):
                if claim.subtask is not None:
                    await self._run_subtask(claim)
                else:
                    await self._work_on(claim)

    async def _run_subtask(self, claim: Claim) -> None:
        """A subtask of a job running on some worker (StageContext.run_subtask), run here."""
        if self.subtasks is None:  # a subtask on a backend without a pool cannot happen: leave it to others
            await claim.release()
            return
        cancel = asyncio.Event()
        events = self._subtask_cancels.setdefault(claim.job_id, set())
        events.add(cancel)
        try:
            # A malformed order has no job id: execute drops it.
            if claim.job_id and await self.cancels.requested(claim.job_id):
                cancel.set()
            await self.subtasks.execute(claim, cancel)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %s: subtask error", claim.job_id)
            with contextlib.suppress(Exception):
                await claim.release()
        finally:
            events.discard(cancel)
            if not events:
                self._subtask_cancels.pop(claim.job_id, None)

    async def _work_on(self, claim: Claim) -> None:
        job_id = claim.job_id
        heartbeat: asyncio.Task[None] | None = None
        try:
            lock = self._job_locks.setdefault(job_id, asyncio.Lock())
            async with lock:
                job = await self.store.latest_job(job_id)
                # A job awaiting review is nobody's work until it is approved (a redelivered claim of the
                # worker that stopped it for review, say).
                if (
                    job is None
                    or job.status in TERMINAL_STATUSES
                    or job.status == job_pb2.JOB_STATUS_AWAITING_REVIEW
                ):
                    await claim.finish()
                    return
                correlation_id_var.set(job.correlation_id)  # undone when job_context ends
                trace_id_var.set(job_trace_id(job))  # so is this: every line of the job carries its trace id
                recorder = JobRecorder(
                    self.store,
                    self.notifier,
                    job,
                    progress_min_interval=self.settings.progress_min_interval_seconds,
                )
                running = RunningJob(recorder)
                self._running[job_id] = running
                self._idle.clear()
                if job.status == job_pb2.JOB_STATUS_QUEUED and job.queue_position > 0:
                    # A pass coalesced the count down: the stream shows the last place before Running.
                    await recorder.queue_place(0, 0.0, taken=True)
            log.info("job %s claimed (redelivered: %s)", job_id, claim.redelivered)
            if self.queue.heartbeat_seconds is not None:  # claims that never lapse need no heartbeat task
                heartbeat = asyncio.create_task(self._keep_alive(claim), name=f"heartbeat-{job_id}")
            if await self.cancels.requested(job_id):
                running.cancel_event.set()
            with job_span(job):
                await self._pipeline.run(running, claim)
            if running.recorder.job.status == job_pb2.JOB_STATUS_AWAITING_REVIEW:
                # From here a cancel takes the path of a job no worker holds; one that came before is
                # written now (the pipeline checked just before it stopped for review).
                self._running.pop(job_id, None)
                if running.cancel_event.is_set() or await self.cancels.requested(job_id):
                    await self.cancel(job_id)
            await claim.finish()
            log.info("job %s ended %s", job_id, job_pb2.JobStatus.Name(running.recorder.job.status))
        except asyncio.CancelledError:
            # This worker is stopping: another one (or this one, restarted) resumes the job.
            with contextlib.suppress(Exception):
                await asyncio.shield(claim.release())
            raise
        except ConcurrentWriteError:
            # Another writer owns the job now (its claim lapsed and it was redelivered, or it was
            # cancelled while queued): stop here without touching the claim, which is no longer ours.
            log.warning("job %s: another writer took over; this worker stops it", job_id)
        except Exception:
            log.exception("job %s: runner error", job_id)
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
            self._running.pop(job_id, None)
            if not self._running:
                self._idle.set()
            self._job_locks.pop(job_id, None)
            self.positions.changed()

    async def _keep_alive(self, claim: Claim) -> None:
        """Heartbeats the claim while the job runs, however long its stages take."""
        interval = self.queue.heartbeat_seconds
        if interval is None:
            return
        while True:
            await asyncio.sleep(interval)
            try:
                await claim.keep_alive()
            except Exception as error:  # the next beat may get through; the claim lapses only after several
                log.warning("job %s: heartbeat failed (%s)", claim.job_id, error)
