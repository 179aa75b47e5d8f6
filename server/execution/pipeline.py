"""One job's run: its stages in order from the plugin host, each stage's end state, and the job's.

Stage outputs are checkpointed when a stage completes, so a job interrupted by a restart resumes from its
last completed stage. A job that was interrupted more than ``Settings.max_attempts`` times fails with E701
(E702-WORKER_LOST when the backend's claims lapsed, see runner.py). A stage that reports nothing for
``Settings.stall_timeout_seconds`` is stopped and fails with E305, one that runs while the disk fills up
with E601 (watchdog.py); any other exception a stage raises becomes E301. A job that asks for review
(``JobSpec.review_script``) stops after its script and, once approved, resumes here with the approved scenes
(review.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.jobs.tracing import span
from reelcast.jobs.v1 import job_pb2
from reelcast.plugins.artifacts import SCRIPT
from reelcast.plugins.host import InstalledStage, PluginHost
from reelcast.plugins.invocation import run_stage
from reelcast.plugins.stage import OUTPUT_ARTIFACT, Stage
from reelcast.server.config import Settings
from reelcast.server.execution.eta import duration_bucket, expected_durations
from reelcast.server.execution.progress import ProgressModel
from reelcast.server.execution.recorder import JobRecorder, find_step, now_timestamp
from reelcast.server.execution.review import open_review, read_script_scenes, write_script_scenes
from reelcast.server.execution.running_job import RunningJob
from reelcast.server.execution.watchdog import DiskWatcher, StallWatchdog
from reelcast.server.logs import stage_context
from reelcast.server.media.resolver import job_media
from reelcast.server.media.store import MediaStore
from reelcast.server.metrics import STAGE_DURATION
from reelcast.server.storage.job_store import ConcurrentWriteError, JobStore
from reelcast.server.storage.notifier import EventNotifier
from reelcast.server.storage.work import Claim, JobFiles, SubtaskPool

# The runner's logger: its lines keep one name whichever of its modules logs them (docs/observability.md).
log = logging.getLogger("reelcast.server.runner")

# How long after its end a job's latest sequence stays in the notifier for watchers still on their way.
FORGET_AFTER_SECONDS = 10.0


def job_error(error: ReelcastError) -> job_pb2.JobError:
    return job_pb2.JobError(code=error.code, message=error.message, remediation=error.error.remediation)


def failure_details(error: ReelcastError, stage: str) -> job_pb2.FailureDetails:
    return job_pb2.FailureDetails(
        stage=stage,
        message=error.message,
        stderr_snippet=error.stderr_snippet,
        log_path=error.log_path,
        suggested_actions=list(error.actions),
        error_code=error.code,
        failed_at=now_timestamp(),
    )


class JobPipeline:
    """Runs the installed stages of one job after another, for the runner's workers."""

    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        notifier: EventNotifier,
        host: PluginHost,
        files: JobFiles,
        media: MediaStore | None = None,
        subtasks: SubtaskPool | None = None,
    ) -> None:
        self.settings = settings
        # Where a stage's subtasks run (NATS: any worker); None: in the stage's process (StageContext).
        self.subtasks = subtasks
        # The uploaded files stages ask for by id (ctx.media); None: no media at all (every id is E451).
        self.media = media
        self.store = store
        self.notifier = notifier
        self.host = host
        self.files = files
        self.stall_watchdog = StallWatchdog(settings)
        self.disk_watcher = DiskWatcher(settings)
        # Each stage's own settings, built once (a bad value fails here, at start, rather than mid-job).
        # By stage object (its id; the stage is kept with it): a replacement of the same name has its own.
        self._stage_settings: dict[int, tuple[Stage, Any]] = {}
        for installed in host.stages():
            self._settings_of(installed.stage)

    def stages(self) -> list[InstalledStage]:
        return self.host.stages()

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

    async def run(self, running: RunningJob, claim: Claim) -> None:
        recorder = running.recorder
        job = recorder.job
        pipeline = self.stages()
        self._sync_steps(job, pipeline)
        recorder.progress = ProgressModel([(i.stage.name, i.stage.weight) for i in pipeline])
        if running.cancel_event.is_set():
            await self._cancelled(recorder)
            return
        # An approved review queues the job again (review.py): it goes on within its attempt, from its
        # checkpoints, and that is no interruption counted against max_attempts.
        reviewed = job.status == job_pb2.JOB_STATUS_QUEUED and job.review.approved
        # RetryJob queues an ended job again with its new attempt already counted (recorder.retried): it
        # runs from its checkpoints like a resumed job, but it is the owner's choice, not an interruption.
        retried = job.status == job_pb2.JOB_STATUS_QUEUED and job.attempt > 0 and not reviewed
        resumed = job.attempt > 0 and not reviewed and not retried
        if not reviewed and not retried:
            job.attempt += 1
        if job.attempt > self.settings.max_attempts and not retried:
            # Lapsed claims mean lost workers; otherwise restarts of this process interrupted the job.
            lost = errors.WORKER_LOST if claim.redelivered else errors.INTERRUPTED
            await self._fail(recorder, ReelcastError(lost), stage="")
            return
        bucket = duration_bucket(job.spec)
        recorder.expected_durations = expected_durations(await self._stage_durations(bucket))
        running_message = "Running"
        if resumed:
            running_message = f"Resumed (attempt {job.attempt})"
        elif reviewed:
            running_message = "Resumed after review"
        elif retried:
            running_message = f"Running (attempt {job.attempt})"
        await recorder.job_status(job_pb2.JOB_STATUS_RUNNING, running_message)
        work_dir = self.settings.work_dir(job.id)
        work_dir.mkdir(parents=True, exist_ok=True)
        # A first attempt has no checkpoints: the attempt count is stored (with the Running event above)
        # before any stage runs, so only a resumed job can have any, and a fresh one skips the read.
        checkpoints = await self.store.checkpoints(job.id) if resumed or reviewed or retried else {}
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
                    if job.review.approved and SCRIPT in checkpoints[stage.name]:
                        # The later stages speak and draw what the owner approved, not what was written.
                        language = job.spec.brief.language
                        script_path = work_dir / str(checkpoints[stage.name][SCRIPT])
                        await asyncio.to_thread(write_script_scenes, script_path, job.review.scenes, language)
                    if find_step(job, stage.name).status != job_pb2.STEP_STATUS_SUCCEEDED:
                        # The process died between the checkpoint and its step event: finish the record.
                        restored = f"{stage.title} restored from checkpoint"
                        await recorder.step_status(stage.name, job_pb2.STEP_STATUS_SUCCEEDED, restored)
                    if self._stops_for_review(job, checkpoints[stage.name]):
                        # The process died after the script's checkpoint, before the review began.
                        await self._await_review(running, work_dir / str(checkpoints[stage.name][SCRIPT]))
                        break
                    continue
                # Lines logged while the stage runs (its own included) carry its name; its span (a child of
                # the job's) is the parent of the spans of the subprocesses it runs.
                with (
                    stage_context(stage.name),
                    span(f"stage {stage.name}", attributes={"reelcast.stage": stage.name}),
                ):
                    await self.disk_watcher.check()
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
                    if self._stops_for_review(job, produced):
                        await self._await_review(running, work_dir / str(produced[SCRIPT]))
                        break
            else:
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

    @staticmethod
    def _stops_for_review(job: job_pb2.Job, produced: Mapping[str, Any]) -> bool:
        """Whether the job waits for review after the stage that produced ``produced``: its script."""
        return SCRIPT in produced and job.spec.review_script and not job.review.approved

    async def _await_review(self, running: RunningJob, script_path: Path) -> None:
        """Stops the job after its script for the owner's review (review.py); the runner finishes the claim.
        A cancel that came meanwhile ends it here: after this the runner no longer holds it."""
        running.raise_if_cancelled()
        recorder = running.recorder
        try:
            scenes = await asyncio.to_thread(read_script_scenes, script_path)
        except (OSError, ValueError, AttributeError) as unreadable:
            detail = f"The script artifact cannot be read for review ({type(unreadable).__name__})."
            raise ReelcastError(errors.ARTIFACT_MISSING, detail) from None
        open_review(recorder.job, scenes, self.settings.review_timeout_seconds)
        await recorder.job_status(job_pb2.JOB_STATUS_AWAITING_REVIEW, "Script ready for review")

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

    def _settings_of(self, stage: Stage) -> Any:
        """A stage's own settings, built once per stage (a plugin may register after the runner starts)."""
        if id(stage) not in self._stage_settings:
            names = [installed.stage.name for installed in self.host.stages()]
            self._stage_settings[id(stage)] = (stage, self.settings.settings_of_stage(stage, names))
        return self._stage_settings[id(stage)][1]

    async def _publish_preview(
        self, recorder: JobRecorder, work_dir: Path, stage: str, relative: str, seconds: float, total: float
    ) -> None:
        """StageContext.publish_preview: the file first (on NATS, into the object store every server reads),
        then the event that names it."""
        job = recorder.job
        await self.files.publish(job.id, work_dir, relative)
        revision = job.preview.revision + 1 if job.HasField("preview") else 1
        preview = job_pb2.Preview(
            path=str(work_dir / relative), duration_seconds=seconds, total_seconds=total, revision=revision
        )
        await recorder.preview(stage, preview)

    async def _run_stage(
        self,
        running: RunningJob,
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
        media = (
            await job_media(self.media, job, self.settings.media_cache_dir) if self.media is not None else {}
        )
        subtasks = self.subtasks.session(job, work_dir) if self.subtasks is not None else None
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
            media=media.get,
            preview=functools.partial(self._publish_preview, recorder, work_dir, stage.name),
            subtasks=subtasks.run if subtasks is not None else None,
        )

        task = asyncio.create_task(invoke, name=f"stage-{job.id}-{stage.name}")
        running.stage_task = task
        running.disk_full = None
        self.stall_watchdog.watch(running, task)
        self.disk_watcher.arm(running, task)
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
            if subtasks is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(subtasks.close())
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
        failure = failure_details(error, stage)
        await recorder.failed(job_pb2.JOB_STATUS_FAILED, [job_error(error)], failure, error.message)
