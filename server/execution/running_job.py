"""What the runner, the pipeline and the watchdogs share about one job while it runs here: its recorder,
its cancel signal, its running stage and the watchdogs' timers."""

from __future__ import annotations

import asyncio
from typing import Any

from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.server.execution.recorder import JobRecorder


class RunningJob:
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
