"""The job runner: queues jobs, runs their stages in order from the plugin host, and records every change.

Stage outputs are checkpointed when a stage completes, so a job interrupted by a restart resumes from its
last completed stage. A job that was interrupted more than ``Settings.max_attempts`` times fails with E701.
A stage that reports nothing for ``Settings.stall_timeout_seconds`` is stopped and fails with E305.

Where jobs wait, how a cancel reaches the worker and where work dirs are kept come from the backend
(work_queue.py): in one process an asyncio queue and the local disk; across machines, NATS JetStream. When the
backend's claims can lapse (a worker that stops heartbeating loses its job to another), a job that fails
``max_attempts`` times that way ends with E702-WORKER_LOST.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.jobs.metadata import correlation_id_var
from reelcast.jobs.terminal import TERMINAL_STATUSES
from reelcast.jobs.v1 import job_pb2
from reelcast.plugins.host import InstalledStage, PluginHost
from reelcast.plugins.invocation import run_stage
from reelcast.plugins.stage import OUTPUT_ARTIFACT, Stage
from reelcast.server.config import Settings
from reelcast.server.eta import duration_bucket, expected_durations
from reelcast.server.logs import job_context, stage_context
from reelcast.server.metrics import STAGE_DURATION
from reelcast.server.notifier import EventNotifier
from reelcast.server.progress import ProgressModel
from reelcast.server.recorder import JobRecorder, find_step, now_timestamp
from reelcast.server.store import ConcurrentWriteError, DuplicateRequestError, JobStore
from reelcast.server.work_queue import (
    CancelBus,
    Claim,
    JobFiles,
    LocalCancelBus,
    LocalJobFiles,
    LocalWorkQueue,
    WorkQueue,
)

log = logging.getLogger(__name__)

STALL_CHECK_SECONDS = 1.0
# How long one free-space reading of the data dir is trusted (see JobRunner._check_free_disk).
DISK_CHECK_SECONDS = 1.0
# How long after its end a job's latest sequence stays in the notifier for watchers still on their way.
FORGET_AFTER_SECONDS = 10.0


def job_error(error: ReelcastError) -> job_pb2.JobError:
    return job_pb2.JobError(code=error.code, message=error.message, remediation=error.error.remediation)


def new_job_id() -> str:
    return uuid.uuid4().hex


class _RunningJob:
    def __init__(self, recorder: JobRecorder) -> None:
        self.recorder = recorder
        self.cancel_event = asyncio.Event()
        self.stage_task: asyncio.Task[Any] | None = None
        # The running stage's stop signal (its ``StageContext.cancel_event``).
        self.stage_stop: asyncio.Event | None = None
        self.stall_timer: asyncio.TimerHandle | None = None
        self.stalled = False
        self.disk_timer: asyncio.TimerHandle | None = None
        self.disk_check: asyncio.Task[None] | None = None
        # The error that stopped the running stage because the disk filled up while it wrote.
        self.disk_full: ReelcastError | None = None

    def raise_if_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise ReelcastError(errors.CANCELLED)

    def cancel(self) -> None:
        """The job was cancelled: its running stage stops."""
        self.cancel_event.set()
        self.stop_stage()

    def stop_stage(self) -> None:
        """Stops the running stage (cancelled, stalled or out of disk). Its task is cancelled, which kills
        its subprocesses; its stop signal is set too, which a stage running in a thread checks through
        ``ctx.raise_if_cancelled()`` (a thread cannot be cancelled from outside)."""
        if self.stage_stop is not None:
            self.stage_stop.set()
        if self.stage_task is not None:
            self.stage_task.cancel()


class JobRunner:
    """Owns the queue and the worker tasks of one process."""

    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        notifier: EventNotifier,
        host: PluginHost,
        *,
        queue: WorkQueue | None = None,
        cancels: CancelBus | None = None,
        files: JobFiles | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.notifier = notifier
        self.host = host
        self.queue: WorkQueue = queue if queue is not None else LocalWorkQueue()
        self.cancels: CancelBus = cancels if cancels is not None else LocalCancelBus()
        self.files: JobFiles = files if files is not None else LocalJobFiles(settings)
        self._workers: list[asyncio.Task[None]] = []
        self._running: dict[str, _RunningJob] = {}
        # Guards the read-modify-write of jobs that no worker owns (cancelling a queued job).
        self._job_locks: dict[str, asyncio.Lock] = {}
        self.accepting = True
        # Cleared while draining for shutdown, so that idle workers take no new job from the queue.
        self._open_for_work = asyncio.Event()
        self._open_for_work.set()
        # Set whenever no job is running (what a graceful stop waits for).
        self._idle = asyncio.Event()
        self._idle.set()
        self._disk_free = 0
        self._disk_checked_at = float("-inf")
        # Each stage's own settings, built once (a bad value fails here, at start, rather than mid-job).
        # By stage object (its id; the stage is kept with it): a replacement of the same name has its own.
        self._stage_settings: dict[int, tuple[Stage, Any]] = {}
        for installed in host.stages():
            self._settings_of(installed.stage)

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

    async def stop(self, grace: float = 0.0) -> None:
        """Stops the workers. Running jobs get ``grace`` seconds to finish; those still running after that
        are stopped and stay Running in the store, to resume from their checkpoint on the next start. New
        jobs are still accepted (as Queued) until ``accepting`` is cleared."""
        self._open_for_work.clear()
        if self._running and grace > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), grace)
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers.clear()
        self._open_for_work.set()

    # -- requests --------------------------------------------------------------------------------------

    def pipeline(self) -> list[InstalledStage]:
        return self.host.stages()

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
        )
        try:
            await self.store.create_job(job, first, request_id)
        except DuplicateRequestError as duplicate:
            return duplicate.existing
        self.notifier.published(job.id, 1)
        await self.queue.put(job.id)
        return job

    def _cancel_here(self, job_id: str) -> None:
        """A cancel request from any process: stops the job if this runner runs it."""
        running = self._running.get(job_id)
        if running is not None and not running.recorder.finished:
            running.cancel()

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
            return recorder.job

    # -- execution -------------------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            await self._open_for_work.wait()
            claim = await self.queue.take()
            if not self._open_for_work.is_set():  # draining began while this worker waited
                await claim.release()
                continue
            # Every line logged for this job, here or in its stages, carries its id and correlation id.
            with job_context(claim.job_id):
                await self._work_on(claim)

    async def _work_on(self, claim: Claim) -> None:
        job_id = claim.job_id
        heartbeat: asyncio.Task[None] | None = None
        try:
            lock = self._job_locks.setdefault(job_id, asyncio.Lock())
            async with lock:
                job = await self.store.latest_job(job_id)
                if job is None or job.status in TERMINAL_STATUSES:
                    await claim.finish()
                    return
                correlation_id_var.set(job.correlation_id)  # undone when job_context ends
                recorder = JobRecorder(
                    self.store,
                    self.notifier,
                    job,
                    progress_min_interval=self.settings.progress_min_interval_seconds,
                )
                running = _RunningJob(recorder)
                self._running[job_id] = running
                self._idle.clear()
            log.info("job %s claimed (redelivered: %s)", job_id, claim.redelivered)
            if self.queue.heartbeat_seconds is not None:  # claims that never lapse need no heartbeat task
                heartbeat = asyncio.create_task(self._keep_alive(claim), name=f"heartbeat-{job_id}")
            if await self.cancels.requested(job_id):
                running.cancel_event.set()
            await self._run(running, claim)
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

    def _sync_steps(self, job: job_pb2.Job, pipeline: list[InstalledStage]) -> None:
        """Adds steps for stages installed since the job was created (their order follows the pipeline)."""
        known = {step.name: step for step in job.steps}
        ordered: list[job_pb2.Step] = []
        for installed in pipeline:
            step = known.get(installed.stage.name)
            if step is None:
                step = job_pb2.Step(
                    name=installed.stage.name, title=installed.stage.title, status=job_pb2.STEP_STATUS_PENDING
                )
            ordered.append(step)
        del job.steps[:]
        job.steps.extend(ordered)

    async def _run(self, running: _RunningJob, claim: Claim) -> None:
        recorder = running.recorder
        job = recorder.job
        pipeline = self.pipeline()
        self._sync_steps(job, pipeline)
        recorder.progress = ProgressModel([(i.stage.name, i.stage.weight) for i in pipeline])
        if running.cancel_event.is_set():
            await self._cancelled(recorder)
            return
        resumed = job.attempt > 0
        job.attempt += 1
        if job.attempt > self.settings.max_attempts:
            # Lapsed claims mean lost workers; otherwise restarts of this process interrupted the job.
            lost = errors.WORKER_LOST if claim.redelivered else errors.INTERRUPTED
            await self._fail(recorder, ReelcastError(lost), stage="")
            return
        bucket = duration_bucket(job.spec)
        recorder.expected_durations = expected_durations(await self._stage_durations(bucket))
        await recorder.job_status(
            job_pb2.JOB_STATUS_RUNNING, f"Resumed (attempt {job.attempt})" if resumed else "Running"
        )
        work_dir = self.settings.work_dir(job.id)
        work_dir.mkdir(parents=True, exist_ok=True)
        # A first attempt has no checkpoints: the attempt count is stored (with the Running event above)
        # before any stage runs, so only a resumed job can have any, and a fresh one skips the read.
        checkpoints = await self.store.checkpoints(job.id) if resumed else {}
        if checkpoints:
            await self.files.restore(job.id, work_dir)
        artifacts: dict[str, Any] = {}
        # How long each stage that ran to success in this attempt took, kept for later jobs' ETA.
        durations: dict[str, float] = {}
        current = ""
        try:
            for installed in pipeline:
                stage = installed.stage
                current = stage.name
                running.raise_if_cancelled()
                if stage.name in checkpoints:
                    artifacts.update(checkpoints[stage.name])
                    if find_step(job, stage.name).status != job_pb2.STEP_STATUS_SUCCEEDED:
                        # The process died between the checkpoint and its step event: finish the record.
                        restored = f"{stage.title} restored from checkpoint"
                        await recorder.step_status(stage.name, job_pb2.STEP_STATUS_SUCCEEDED, restored)
                    continue
                # Lines logged while the stage runs (its own included) carry its name.
                with stage_context(stage.name):
                    await self._check_free_disk()
                    message = f"Resumed {stage.title}" if resumed else f"{stage.title} started"
                    await recorder.step_status(stage.name, job_pb2.STEP_STATUS_RUNNING, message)
                    started = time.monotonic()
                    produced = await self._run_stage(running, installed, artifacts, work_dir)
                    artifacts.update(produced)
                    await self.files.save(job.id, work_dir)
                    await self.store.save_checkpoint(job.id, stage.name, dict(produced))
                    done = f"{stage.title} done"
                    await recorder.step_status(stage.name, job_pb2.STEP_STATUS_SUCCEEDED, done)
                    durations[stage.name] = time.monotonic() - started
            running.raise_if_cancelled()
            await recorder.completed(self._output(artifacts))
            await self.files.finished(job.id, work_dir)
        except ConcurrentWriteError:
            raise
        except ReelcastError as failure:
            if running.cancel_event.is_set():
                await self._cancelled(recorder)
            else:
                await self._fail(recorder, failure, stage=current)
        except Exception as unexpected:
            with stage_context(current):
                log.exception("job %s: stage %s raised", job.id, current)
            detail = f"Stage '{current}' failed unexpectedly ({type(unexpected).__name__})."
            await self._fail(recorder, ReelcastError(errors.STAGE_FAILED, detail), stage=current)
        finally:
            # Not at once: a watcher that read the log just before the last event and has not begun to wait
            # yet would find no sequence to wake it and sleep until its recheck.
            asyncio.get_running_loop().call_later(FORGET_AFTER_SECONDS, self.notifier.forget, job.id)
        # Reached when the attempt ended here (not when the worker stops or another writer took over).
        if durations:
            await self._record_stage_durations(bucket, durations)

    async def _stage_durations(self, bucket: str) -> dict[str, list[float]]:
        """Earlier jobs' stage durations for the ETA; without them (a store hiccup) the ETA only waits
        longer for an estimate, so the job goes on."""
        try:
            return await self.store.stage_durations(bucket)
        except Exception as error:
            log.warning("stage durations of %s could not be read: %s", bucket, error)
            return {}

    async def _record_stage_durations(self, bucket: str, durations: Mapping[str, float]) -> None:
        # One write per attempt, after its end: the job's result does not depend on it.
        try:
            await self.store.record_stage_durations(bucket, durations)
        except Exception as error:
            log.warning("stage durations of %s could not be stored: %s", bucket, error)

    async def _check_free_disk(self) -> None:
        """Raises E601 when the data dir has less than ``min_free_disk_bytes`` free (before a stage starts,
        and every DISK_CHECK_SECONDS while it runs, see _watch_free_disk)."""
        # One reading serves every stage that starts within DISK_CHECK_SECONDS (hundreds of short jobs a
        # second would otherwise each pay a thread hop for it); a low reading is never reused.
        now = time.monotonic()
        if now - self._disk_checked_at >= DISK_CHECK_SECONDS:
            usage = await asyncio.to_thread(shutil.disk_usage, self.settings.data_dir)
            self._disk_free, self._disk_checked_at = usage.free, now
        free = self._disk_free
        if free < self.settings.min_free_disk_bytes:
            self._disk_checked_at = float("-inf")
            needed = self.settings.min_free_disk_bytes // (1024 * 1024)
            raise ReelcastError(
                errors.LOW_DISK_SPACE,
                f"Only {free // (1024 * 1024)} MiB free in the data directory; at least {needed} MiB needed.",
            )

    def _watch_free_disk(self, running: _RunningJob, task: asyncio.Task[Any]) -> None:
        """Stops ``task`` with E601 when free space drops below the threshold while its stage writes (a
        render can fill the disk by itself). A timer that re-arms itself, like the stall watchdog: a stage
        shorter than DISK_CHECK_SECONDS costs no reading."""
        running.disk_timer = None
        if task.done():
            return

        async def check() -> None:
            try:
                await self._check_free_disk()
            except ReelcastError as low:
                if not task.done():
                    running.disk_full = low
                    running.stop_stage()
                return
            except OSError as error:  # the next reading may work; a stage is not failed for this
                log.warning("free disk space could not be read: %s", error)
            if not task.done():
                running.disk_timer = asyncio.get_running_loop().call_later(
                    DISK_CHECK_SECONDS, self._watch_free_disk, running, task
                )

        running.disk_check = asyncio.get_running_loop().create_task(check())

    def _watch_for_stall(self, running: _RunningJob, task: asyncio.Task[Any]) -> None:
        """Cancels ``task`` when its stage has reported nothing for ``stall_timeout_seconds``. A timer that
        re-arms itself, not a task: most stages end long before the first check."""
        if task.done():
            return
        timeout = self.settings.stall_timeout_seconds
        idle = time.monotonic() - running.recorder.last_activity
        if idle >= timeout:
            running.stalled = True
            running.stop_stage()
            return
        delay = min(timeout - idle, STALL_CHECK_SECONDS) + 0.01
        running.stall_timer = asyncio.get_running_loop().call_later(
            delay, self._watch_for_stall, running, task
        )

    def _settings_of(self, stage: Stage) -> Any:
        """A stage's own settings, built once per stage (a plugin may register after the runner starts)."""
        if id(stage) not in self._stage_settings:
            names = [installed.stage.name for installed in self.host.stages()]
            self._stage_settings[id(stage)] = (stage, self.settings.settings_of_stage(stage, names))
        return self._stage_settings[id(stage)][1]

    async def _run_stage(
        self,
        running: _RunningJob,
        installed: InstalledStage,
        artifacts: Mapping[str, Any],
        work_dir: Path,
    ) -> Mapping[str, Any]:
        recorder = running.recorder
        job = recorder.job
        stage = installed.stage
        # Set by a cancel of the job, or by the runner stopping this stage alone (stall, disk).
        stop = asyncio.Event()
        if running.cancel_event.is_set():
            stop.set()
        running.stage_stop = stop
        invoke = run_stage(
            stage,
            job_id=job.id,
            correlation_id=job.correlation_id,
            spec=job.spec,
            work_dir=work_dir,
            log_dir=self.settings.logs_dir,
            settings=self._settings_of(stage),
            artifacts=artifacts,
            cancel_event=stop,
            report=lambda fraction, message: recorder.tick(stage.name, fraction, message),
        )

        task = asyncio.create_task(invoke, name=f"stage-{job.id}-{stage.name}")
        running.stage_task = task
        running.disk_full = None
        self._watch_for_stall(running, task)
        running.disk_timer = asyncio.get_running_loop().call_later(
            DISK_CHECK_SECONDS, self._watch_free_disk, running, task
        )
        started = time.monotonic()
        outcome = "failed"
        try:
            produced = await task
            outcome = "succeeded"
            return produced
        except asyncio.CancelledError:
            if running.cancel_event.is_set():
                outcome = "cancelled"
                raise ReelcastError(errors.CANCELLED) from None
            if running.disk_full is not None:
                raise running.disk_full from None
            if running.stalled:
                seconds = self.settings.stall_timeout_seconds
                raise ReelcastError(
                    errors.JOB_STALLED, f"Stage '{stage.name}' reported no progress for {seconds:g} s."
                ) from None
            # The worker itself is being stopped (shutdown): stop the stage too, so that its subprocesses
            # die with it; the job stays Running in the store and resumes from its checkpoint on restart.
            outcome = "interrupted"
            task = running.stage_task
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            raise
        except Exception:
            if running.cancel_event.is_set():  # the stage noticed the cancel itself
                outcome = "cancelled"
            raise
        finally:
            if running.stall_timer is not None:
                running.stall_timer.cancel()
                running.stall_timer = None
            if running.disk_timer is not None:
                running.disk_timer.cancel()
                running.disk_timer = None
            running.stage_task = None
            running.stage_stop = None
            elapsed = time.monotonic() - started
            STAGE_DURATION.labels(stage=stage.name, outcome=outcome).observe(elapsed)
            log.info("stage %s %s after %.3f s", stage.name, outcome, elapsed)

    @staticmethod
    def _output(artifacts: Mapping[str, Any]) -> job_pb2.JobOutput:
        output = job_pb2.JobOutput()
        published = artifacts.get(OUTPUT_ARTIFACT)
        if isinstance(published, Mapping):
            json_format.ParseDict(dict(published), output, ignore_unknown_fields=True)
        return output

    async def _cancelled(self, recorder: JobRecorder) -> None:
        # Partial outputs go first, so that whoever sees the terminal event finds nothing half-written.
        await asyncio.to_thread(self._remove_partial_outputs, recorder.job.id)
        await self.files.delete(recorder.job.id)
        cancelled = ReelcastError(errors.CANCELLED)
        await recorder.failed(job_pb2.JOB_STATUS_CANCELLED, [job_error(cancelled)], None, "Cancelled")

    def _remove_partial_outputs(self, job_id: str) -> None:
        shutil.rmtree(self.settings.work_dir(job_id), ignore_errors=True)

    async def _fail(self, recorder: JobRecorder, error: ReelcastError, stage: str) -> None:
        failure = job_pb2.FailureDetails(
            stage=stage,
            message=error.message,
            stderr_snippet=error.stderr_snippet,
            log_path=error.log_path,
            suggested_actions=list(error.actions),
            error_code=error.code,
            failed_at=now_timestamp(),
        )
        await recorder.failed(job_pb2.JOB_STATUS_FAILED, [job_error(error)], failure, error.message)
