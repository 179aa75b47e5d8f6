"""The watchdogs over a running stage: the stall watchdog stops a stage that reports nothing for
``Settings.stall_timeout_seconds`` (the pipeline fails it with E305), the disk watcher one that runs while
the data dir's free space drops below ``Settings.min_free_disk_bytes`` (E601). Both are timers that re-arm
themselves, not tasks: most stages end long before the first check."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from typing import Any

from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.server.config import Settings
from reelcast.server.execution.running_job import RunningJob

# The runner's logger: its lines keep one name whichever of its modules logs them (docs/observability.md).
log = logging.getLogger("reelcast.server.runner")

STALL_CHECK_SECONDS = 1.0
# How long one free-space reading of the data dir is trusted (see DiskWatcher.check).
DISK_CHECK_SECONDS = 1.0


class StallWatchdog:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def watch(self, running: RunningJob, task: asyncio.Task[Any]) -> None:
        """Cancels ``task`` when its stage has reported nothing for ``stall_timeout_seconds``."""
        if task.done():
            return
        timeout = self.settings.stall_timeout_seconds
        idle = time.monotonic() - running.recorder.last_activity
        if idle >= timeout:
            running.stalled = True
            running.stop_stage()
            return
        delay = min(timeout - idle, STALL_CHECK_SECONDS) + 0.01
        running.stall_timer = asyncio.get_running_loop().call_later(delay, self.watch, running, task)


class DiskWatcher:
    """Reads the data dir's free space, before a stage starts and every DISK_CHECK_SECONDS while it runs.
    One per runner: its last reading serves every job."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._free = 0
        self._checked_at = float("-inf")

    async def check(self) -> None:
        """Raises E601 when the data dir has less than ``min_free_disk_bytes`` free."""
        # One reading serves every stage that starts within DISK_CHECK_SECONDS (hundreds of short jobs a
        # second would otherwise each pay a thread hop for it); a low reading is never reused.
        now = time.monotonic()
        if now - self._checked_at >= DISK_CHECK_SECONDS:
            usage = await asyncio.to_thread(shutil.disk_usage, self.settings.data_dir)
            self._free, self._checked_at = usage.free, now
        free = self._free
        if free < self.settings.min_free_disk_bytes:
            self._checked_at = float("-inf")
            needed = self.settings.min_free_disk_bytes // (1024 * 1024)
            raise ReelcastError(
                errors.LOW_DISK_SPACE,
                f"Only {free // (1024 * 1024)} MiB free in the data directory; at least {needed} MiB needed.",
            )

    def arm(self, running: RunningJob, task: asyncio.Task[Any]) -> None:
        """Starts watching ``task``: the first reading comes after DISK_CHECK_SECONDS, so a stage shorter
        than that costs none."""
        running.disk_timer = asyncio.get_running_loop().call_later(
            DISK_CHECK_SECONDS, self.watch, running, task
        )

    def watch(self, running: RunningJob, task: asyncio.Task[Any]) -> None:
        """Stops ``task`` with E601 when free space drops below the threshold while its stage writes (a
        render can fill the disk by itself), then re-arms itself."""
        running.disk_timer = None
        if task.done():
            return

        async def check() -> None:
            try:
                await self.check()
            except ReelcastError as low:
                if not task.done():
                    running.disk_full = low
                    running.stop_stage()
                return
            except OSError as error:  # the next reading may work; a stage is not failed for this
                log.warning("free disk space could not be read: %s", error)
            if not task.done():
                self.arm(running, task)

        running.disk_check = asyncio.get_running_loop().create_task(check())
