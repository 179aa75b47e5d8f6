"""A live terminal view of a job's events: one rich progress bar per step, plus the overall bar."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeRemainingColumn

from reelcast.jobs.v1 import job_pb2

_STEP_STATE = {
    job_pb2.STEP_STATUS_RUNNING: "[cyan]running[/]",
    job_pb2.STEP_STATUS_SUCCEEDED: "[green]done[/]",
    job_pb2.STEP_STATUS_FAILED: "[red]failed[/]",
    job_pb2.STEP_STATUS_CANCELLED: "[yellow]cancelled[/]",
    job_pb2.STEP_STATUS_SKIPPED: "[dim]skipped[/]",
}


class ProgressDisplay:
    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<16}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[state]}"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._overall: TaskID | None = None
        self._steps: dict[str, TaskID] = {}

    def __enter__(self) -> ProgressDisplay:
        self._progress.__enter__()
        self._overall = self._progress.add_task("Overall", total=100, state="queued")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._progress.__exit__(kind, value, trace)

    def update(self, event: job_pb2.JobProgress) -> None:
        assert self._overall is not None
        job_state = job_pb2.JobStatus.Name(event.job_status).removeprefix("JOB_STATUS_").lower()
        self._progress.update(self._overall, completed=event.job_percent, state=job_state)
        if not event.stage:
            return
        task = self._steps.get(event.stage)
        if task is None:
            task = self._progress.add_task(event.stage_title or event.stage, total=100, state="")
            self._steps[event.stage] = task
        state = _STEP_STATE.get(event.stage_status, "")
        if event.message and event.stage_status == job_pb2.STEP_STATUS_RUNNING:
            state = f"{state} {event.message[:40]}"
        self._progress.update(task, completed=event.stage_percent, state=state)
