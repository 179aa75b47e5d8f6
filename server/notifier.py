"""Wakes watchers when a job's log grows.

Watchers never receive events through here, only the news that the log passed a sequence; they then read
the events from the store. A slow watcher therefore cannot make the server buffer anything, and replay and
live delivery are one code path, so there is nothing to deduplicate and no gap to fall into.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

# Jobs whose latest sequence is remembered while nobody waits on them (a distributed notifier hears of every
# job in the cluster); older entries are forgotten, which costs a waiter nothing: it reads the store first.
REMEMBERED_JOBS = 10_000


class EventNotifier:
    """Per-job latest sequence, with waiting."""

    def __init__(self) -> None:
        self._latest: OrderedDict[str, int] = OrderedDict()
        self._conditions: dict[str, asyncio.Condition] = {}
        self._waiters: dict[str, int] = {}

    def published(self, job_id: str, sequence: int) -> None:
        """Called by the writer after an event is durably stored."""
        if sequence <= self._latest.get(job_id, 0):
            return
        self._latest[job_id] = sequence
        self._latest.move_to_end(job_id)
        if len(self._latest) > REMEMBERED_JOBS:
            self._forget_oldest()
        condition = self._conditions.get(job_id)
        if condition is not None:
            asyncio.get_running_loop().create_task(self._notify(condition))

    def _forget_oldest(self) -> None:
        for job_id in list(self._latest)[: len(self._latest) - REMEMBERED_JOBS]:
            if job_id not in self._waiters:
                del self._latest[job_id]

    async def start(self) -> None:
        """Starts listening for other processes' writes (nothing to do in one process)."""

    @staticmethod
    async def _notify(condition: asyncio.Condition) -> None:
        async with condition:
            condition.notify_all()

    async def wait_beyond(self, job_id: str, sequence: int, timeout: float | None = None) -> bool:
        """Waits until an event after ``sequence`` was published; False on timeout."""
        condition = self._conditions.setdefault(job_id, asyncio.Condition())
        self._waiters[job_id] = self._waiters.get(job_id, 0) + 1
        try:
            async with condition:
                return await asyncio.wait_for(
                    condition.wait_for(lambda: self._latest.get(job_id, 0) > sequence), timeout
                )
        except TimeoutError:
            return False
        finally:
            self._waiters[job_id] -= 1
            if self._waiters[job_id] == 0:
                del self._waiters[job_id]
                del self._conditions[job_id]

    def forget(self, job_id: str) -> None:
        """Drops the bookkeeping of a finished job once nobody waits on it."""
        if job_id not in self._waiters:
            self._latest.pop(job_id, None)
