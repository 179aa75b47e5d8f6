"""The pieces of the runner that differ between one process and many machines.

- ``WorkQueue`` hands job ids to workers, fairly between users (storage/fairness.py). A ``Claim`` is one
  worker's hold on one job: it is kept alive while the job runs, finished when the job ends, and released
  when the worker stops before it ends.
- ``CancelBus`` carries a cancel request to the worker that runs the job, wherever it is.
- ``JobFiles`` keeps a job's work dir where any worker can resume it and any server can serve its outputs.
- ``SubtaskPool`` runs a stage's subtasks (``StageContext.run_subtask``, render segments) on any worker:
  None on the embedded backend, where a subtask is a program run in the work dir.

embedded/work.py holds the in-process forms and nats/work.py the JetStream ones.
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from reelcast.jobs.v1 import job_pb2
from reelcast.plugins.stage import SubtaskRunner
from reelcast.server.storage.job_store import JobStore

CHUNK_BYTES = 64 * 1024


class Claim(Protocol):
    job_id: str
    # True when an earlier worker got this job and did not finish it (it died or stopped heartbeating).
    redelivered: bool

    @property
    def subtask(self) -> Mapping[str, Any] | None:
        """Set when the claim is a subtask of ``job_id`` (SubtaskPool.execute runs it), not the job."""

    async def keep_alive(self) -> None:
        """Tells the queue that the job still runs; called every ``WorkQueue.heartbeat_seconds``."""

    async def finish(self) -> None:
        """The job ended (whatever its outcome): it leaves the queue."""

    async def release(self) -> None:
        """The worker stops before the job ended: another worker may take it now."""


class WorkQueue(Protocol):
    @property
    def heartbeat_seconds(self) -> float | None:
        """How often a running job's claim must be kept alive; None when claims never expire."""

    async def recover(self, store: JobStore) -> None:
        """Called once when the runner starts, before any ``take``."""

    async def put(self, job_id: str, queued_at: int = 1, *, owner: str = "", priority: int = 0) -> None:
        """Queues the job. ``queued_at`` is the sequence of the event that made it Queued (1 when it was
        created, later when its review was approved): a queue that drops repeats keeps one per queueing.
        ``owner`` and ``priority`` (``JobSpec.priority``) place it in the fair schedule (fairness.py)."""

    async def queue_orphans(self, store: JobStore) -> None:
        """Queues the jobs stored as Queued that the queue does not hold (their server stopped between
        storing and queueing them). Run on a schedule; ``recover`` does the same once at start."""

    async def take(self) -> Claim:
        """Waits for the next job."""

    async def depth(self) -> int:
        """How many jobs wait for a worker (the ``reelcast_queue_depth`` metric)."""

    async def waiting_order(self, unfinished: Iterable[job_pb2.Job]) -> list[str]:
        """The ids of the jobs that wait for a worker, in the order the scheduler would start them
        (simulating the fair policy from the current served counts, running counts and caps), among
        ``unfinished`` (the store's unfinished jobs, read once by the caller, who needs them too): a job
        that ended while it waited (cancelled) is skipped by the worker that takes it, so it has no place."""


CancelHandler = Callable[[str], None]


class CancelBus(Protocol):
    # True when jobs may run in other processes (a Running job not in this runner is owned elsewhere).
    remote: bool

    async def listen(self, handler: CancelHandler) -> None:
        """Calls ``handler(job_id)`` for every cancel request, from any process."""

    async def request(self, job_id: str) -> None:
        """Records a cancel request durably and tells every worker."""

    async def requested(self, job_id: str) -> bool:
        """Whether a cancel request was recorded (a worker checks it when it claims a job)."""

    async def withdraw(self, job_id: str) -> None:
        """Forgets the job's cancel request (a cancelled job retried must not be cancelled again)."""


@dataclass(frozen=True)
class OutputFile:
    """One output of a finished job, readable by range."""

    name: str
    size: int
    read_range: Callable[[int, int], AsyncIterator[bytes]]

    @property
    def content_type(self) -> str:
        return mimetypes.guess_type(self.name)[0] or "application/octet-stream"


class JobFiles(Protocol):
    async def save(self, job_id: str, work_dir: Path) -> None:
        """After a stage completed: keep what it wrote where another worker can find it."""

    async def publish(self, job_id: str, work_dir: Path, relative: str) -> None:
        """While a stage runs: keep the one file ``relative`` (a preview) where any server can serve it."""

    async def restore(self, job_id: str, work_dir: Path) -> None:
        """Before a job resumes: bring back the files of its completed stages."""

    async def finished(self, job_id: str, work_dir: Path) -> None:
        """The job ended and its files are saved: local copies may go."""

    async def delete(self, job_id: str) -> None:
        """Removes every file of the job (cancel, retention)."""

    async def open_output(self, job_id: str, path: str) -> OutputFile | None:
        """An output a stage published as ``path``; None if it does not exist."""


class SubtaskSession(Protocol):
    """The subtasks of one stage run of one job, on the worker that runs the job."""

    @property
    def run(self) -> SubtaskRunner:
        """What ``StageContext.run_subtask`` calls."""

    async def close(self) -> None:
        """The stage ended: its subtasks that have not run never will, and those running stop."""


class SubtaskPool(Protocol):
    def session(self, job: job_pb2.Job, work_dir: Path) -> SubtaskSession:
        """The subtasks a stage of ``job`` (running here, in ``work_dir``) will hand out."""

    async def execute(self, claim: Claim, cancel_event: asyncio.Event) -> None:
        """Runs the subtask ``claim`` holds (from ``WorkQueue.take``) and finishes or releases the claim;
        ``cancel_event`` is set when its job is cancelled."""
