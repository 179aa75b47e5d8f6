"""A stage's subtasks (``StageContext.run_subtask``: the render's segments) on the JetStream work queue, so
that one job's render spreads over every worker of the deployment.

- **Queue.** A subtask is a message on its job's own subject ``reelcast.work.<user>.<priority>.<job>`` (JSON:
  the program, the files it reads and writes). Workers claim it as they claim jobs (nats/work.py): in the
  user's fair turn, ahead of the user's new jobs, with the same heartbeats, and redelivered when its worker
  stops heartbeating (a SIGKILLed worker's segment runs again elsewhere). The worker that runs the job also
  takes its own subtasks outside the turns (its slot is already counted), so a job always finishes, even
  when its user is at the running cap or every other worker is busy.
- **Files.** The subtask's inputs are shared into the job's files in the object store before it is queued
  (NatsJobFiles.share); a worker brings them into ``<data>/subtasks/<job>/`` (kept for the job's next
  subtasks), runs the program there and puts its outputs under ``<job>/subtasks/<attempt>/<name>/``, which
  the job's worker brings into the work dir and deletes. A subtask the job's own process claims runs in the
  work dir itself, with nothing copied.
- **Progress and results.** The worker forwards the program's output lines on the core subject
  ``reelcast.subtask.<job>.<attempt>.<name>.lines`` (the job's worker feeds them to the stage's callbacks,
  as if the program ran there) and writes the result into ``subtasks.<job>`` in the state bucket
  (compare-and-set) before it acknowledges the message, then says so on ``….<name>.done``; the job's worker
  also rereads that entry every ``RESULT_POLL_SECONDS``, in case a notice was lost.
- **Stopping.** A stage run is one attempt (``subtasks.<job>`` names the current one). When a subtask's run
  is cancelled (the job's cancel, a failed sibling, the stall watchdog) or the stage ends, the job's worker
  publishes ``reelcast.subtask.<job>.<attempt>.stop``: every worker running one of the attempt's subtasks
  stops it (``q``, then a kill), and a worker that claims one later finds the attempt over and acknowledges
  it without running it. A job's cancel also reaches those workers directly, through the cancel bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import NotFoundError

from reelcast.jobs.v1 import job_pb2
from reelcast.plugins.process import ProcessResult, run_process
from reelcast.plugins.stage import Subtask
from reelcast.server.storage.fairness import PRIORITY_NAMES, priority_rank
from reelcast.server.storage.nats.layout import (
    NatsConnection,
    read_json_entry,
    retrying,
    update_json_entry,
    work_subject,
)
from reelcast.server.storage.nats.work import NatsJobFiles, NatsWorkQueue
from reelcast.server.storage.work import Claim

log = logging.getLogger(__name__)

SUBTASK_PREFIX = "reelcast.subtask."
# What every subtask order holds (NatsSubtaskSession.run writes them); the rest have defaults.
ORDER_FIELDS = ("job", "attempt", "name", "argv", "inputs", "outputs")
# How often the job's worker rereads the results (a lost done notice costs at most this).
RESULT_POLL_SECONDS = 2.0
# How long forwarded output lines are gathered before they go out in one message.
LINES_FLUSH_SECONDS = 0.2
LINES_PER_MESSAGE = 400
# After a stop, how long the job's worker waits for the subtask's result beyond its ``kill_after``.
STOP_GRACE_SECONDS = 3.0
# How long closing waits for the helper that runs the job's own subtasks here (it stops a running one).
CLOSE_SECONDS = 10.0
# A worker's copies of a job's inputs that no subtask used for this long are removed.
STAGED_IDLE_SECONDS = 3600.0


def subtasks_key(job_id: str) -> str:
    return f"subtasks.{job_id}"


def worker_name() -> str:
    """Who ran a subtask, as its result records it."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class _Waiting:
    """A subtask the job's worker waits for: its callbacks and its result once known."""

    subtask: Subtask
    on_stdout_line: Callable[[str], None] | None
    on_stderr_line: Callable[[str], None] | None
    result: asyncio.Future[dict[str, Any]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def lines(self, out: list[str], err: list[str]) -> None:
        for line in out:
            if self.on_stdout_line is not None:
                self.on_stdout_line(line)
        for line in err:
            if self.on_stderr_line is not None:
                self.on_stderr_line(line)

    def resolve(self, result: dict[str, Any]) -> None:
        if not self.result.done():
            self.result.set_result(result)


class NatsSubtaskSession:
    """The subtasks of one stage run (one attempt), on the worker that runs the job."""

    def __init__(self, pool: NatsSubtasks, job: job_pb2.Job, work_dir: Path) -> None:
        self._pool = pool
        self.job_id = job.id
        self.correlation_id = job.correlation_id
        self.work_dir = work_dir
        self.attempt = uuid.uuid4().hex[:12]
        self.subject = f"{work_subject(job.owner, PRIORITY_NAMES[priority_rank(job.spec.priority)])}.{job.id}"
        self._waiting: dict[str, _Waiting] = {}
        self._opened = False
        self._opening = asyncio.Lock()
        self._sharing = asyncio.Lock()
        self._subscription: Subscription | None = None
        self._helper: asyncio.Task[None] | None = None
        self._poller: asyncio.Task[None] | None = None
        self.closed = False
        # Per finished subtask, where its time went on this side (the bench reads it): sharing its inputs,
        # from its publish to its start (time.time(), as its worker records it), bringing its outputs.
        self.timings: dict[str, dict[str, float]] = {}

    @property
    def prefix(self) -> str:
        return f"{SUBTASK_PREFIX}{self.job_id}.{self.attempt}"

    async def _open(self) -> None:
        async with self._opening:
            if self._opened:
                return
            state = self._pool.connection.layout.state

            def begin(document: Any) -> Any:
                return {"attempt": self.attempt, "results": {}}

            await update_json_entry(state, subtasks_key(self.job_id), begin)
            # What an earlier attempt of this stage left waiting (its worker died) is not wanted now.
            await self._pool.queue.drop_subject(self.subject)
            client = self._pool.connection.client
            self._subscription = await client.subscribe(f"{self.prefix}.>", cb=self._received)
            await client.flush()
            self._pool.sessions[self.job_id] = self
            self._helper = asyncio.create_task(self._help(), name=f"subtasks-{self.job_id}")
            self._poller = asyncio.create_task(self._poll_results(), name=f"subtask-results-{self.job_id}")
            self._opened = True

    async def _received(self, message: Msg) -> None:
        name, _, what = message.subject.removeprefix(self.prefix + ".").rpartition(".")
        waiting = self._waiting.get(name)
        if waiting is None:
            return
        try:
            body = json.loads(message.data or b"{}")
        except ValueError:
            return
        if what == "lines":
            waiting.lines(list(body.get("out", [])), list(body.get("err", [])))
        elif what == "done":
            waiting.resolve(body)

    async def _poll_results(self) -> None:
        state = self._pool.connection.layout.state
        while True:
            await asyncio.sleep(RESULT_POLL_SECONDS)
            with contextlib.suppress(nats.errors.Error, ValueError):
                document, _ = await read_json_entry(state, subtasks_key(self.job_id))
                results = (
                    (document or {}).get("results", {})
                    if (document or {}).get("attempt") == self.attempt
                    else {}
                )
                for name, result in results.items():
                    if name in self._waiting:
                        self._waiting[name].resolve(result)

    async def _help(self) -> None:
        """Runs this job's own subtasks here while they wait, one at a time (this worker's slot)."""
        queue = self._pool.queue
        this_task = asyncio.current_task()
        while this_task is None or not this_task.cancelling():
            claim = None
            with contextlib.suppress(nats.errors.Error, nats.js.errors.APIError):
                claim = await queue.take_subtask(self.subject)
            if claim is None:
                await queue.wait_published(0.5)
                continue
            await self._pool.execute(claim, asyncio.Event())

    async def run(
        self,
        subtask: Subtask,
        *,
        cancel_event: asyncio.Event,
        on_stdout_line: Callable[[str], None] | None,
        on_stderr_line: Callable[[str], None] | None,
        graceful_stop: bytes | None,
        kill_after: float,
        timeout: float | None,
    ) -> ProcessResult:
        if self.closed:
            raise RuntimeError("the stage's subtasks are closed")
        if cancel_event.is_set():
            return ProcessResult(returncode=-9, pid=0, cancelled=True, timed_out=False)
        await self._open()
        waiting = _Waiting(subtask, on_stdout_line, on_stderr_line)
        self._waiting[subtask.name] = waiting
        try:
            sharing = time.perf_counter()
            links = _install_links(self.work_dir, subtask.inputs)
            copied = [relative for relative in subtask.inputs if relative not in links]
            async with self._sharing:  # one writer of the job's manifest at a time
                await self._pool.files.share(self.job_id, self.work_dir, copied)
            shared = time.perf_counter() - sharing
            order = {
                "job": self.job_id,
                "correlation_id": self.correlation_id,
                "attempt": self.attempt,
                "name": subtask.name,
                "argv": list(subtask.argv),
                "inputs": copied,
                "links": links,
                "outputs": list(subtask.outputs),
                "graceful_stop": (graceful_stop or b"").decode("latin-1"),
                "kill_after": kill_after,
                "timeout": timeout,
            }
            js = self._pool.connection.layout.js
            headers = {"Nats-Msg-Id": f"subtask:{self.job_id}:{self.attempt}:{subtask.name}"}
            data = json.dumps(order).encode()
            await retrying(lambda: js.publish(self.subject, data, headers=dict(headers)))
            published = time.time()
            stopped: asyncio.Future[Any] = asyncio.ensure_future(cancel_event.wait())
            either: set[asyncio.Future[Any]] = {waiting.result, stopped}
            try:
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
            if not waiting.result.done():
                await self._stop_one(subtask.name)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(kill_after + STOP_GRACE_SECONDS):
                        await asyncio.shield(waiting.result)
                return ProcessResult(returncode=-9, pid=0, cancelled=True, timed_out=False)
            result = waiting.result.result()
            bringing = time.perf_counter()
            if result.get("returncode") == 0 and not result.get("here"):
                await self._pool.bring_outputs(self.job_id, self.attempt, subtask, self.work_dir)
            self.timings[subtask.name] = {
                "shared_seconds": shared,
                "claimed_after_seconds": float(result.get("started", published)) - published,
                "brought_seconds": time.perf_counter() - bringing,
            }
            return ProcessResult(
                returncode=int(result.get("returncode", -9)),
                pid=0,
                cancelled=bool(result.get("cancelled")),
                timed_out=bool(result.get("timed_out")),
            )
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._stop_one(subtask.name))
            raise
        finally:
            self._waiting.pop(subtask.name, None)

    async def _stop_one(self, name: str) -> None:
        """Stops the subtask ``name`` wherever it runs, and marks it done (stopped) so that a worker that
        claims it later acknowledges it without running it."""
        client = self._pool.connection.client
        with contextlib.suppress(nats.errors.Error):
            await client.publish(f"{self.prefix}.{name}.stop", b"")
            await client.flush(timeout=2)
        stopped = {"returncode": -9, "cancelled": True, "timed_out": False, "worker": "", "stopped": True}

        def mark(document: Any) -> Any:
            if (document or {}).get("attempt") != self.attempt or name in document.get("results", {}):
                return None
            return {**document, "results": {**document.get("results", {}), name: stopped}}

        with contextlib.suppress(nats.errors.Error):
            await update_json_entry(self._pool.connection.layout.state, subtasks_key(self.job_id), mark)

    async def stop(self) -> None:
        """Every worker running one of this attempt's subtasks stops it."""
        client = self._pool.connection.client
        with contextlib.suppress(nats.errors.Error):
            await client.publish(f"{self.prefix}.stop", b"")
            await client.flush(timeout=2)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if not self._opened:
            return
        for task in (self._helper, self._poller):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, CLOSE_SECONDS)
        await self.stop()
        state = self._pool.connection.layout.state

        def over(document: Any) -> Any:
            if (document or {}).get("attempt") != self.attempt:
                return None
            return {**document, "attempt": ""}

        with contextlib.suppress(nats.errors.Error):
            await update_json_entry(state, subtasks_key(self.job_id), over)
            await self._pool.queue.drop_subject(self.subject)
        if self._subscription is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._subscription.unsubscribe()
        if self._pool.sessions.get(self.job_id) is self:
            del self._pool.sessions[self.job_id]


class _Lines:
    """A running subtask's output lines, sent to the job's worker in batches."""

    def __init__(self, connection: NatsConnection, subject: str) -> None:
        self._connection = connection
        self._subject = subject
        self._out: list[str] = []
        self._err: list[str] = []
        self._flusher: asyncio.Task[None] | None = None

    def out(self, line: str) -> None:
        self._out.append(line)
        self._soon()

    def err(self, line: str) -> None:
        self._err.append(line)
        self._soon()

    def _soon(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(LINES_FLUSH_SECONDS)
        await self.flush()

    async def flush(self) -> None:
        while self._out or self._err:
            out, self._out = self._out[:LINES_PER_MESSAGE], self._out[LINES_PER_MESSAGE:]
            err, self._err = self._err[:LINES_PER_MESSAGE], self._err[LINES_PER_MESSAGE:]
            with contextlib.suppress(nats.errors.Error):
                await self._connection.client.publish(
                    self._subject, json.dumps({"out": out, "err": err}).encode()
                )


class NatsSubtasks:
    """The subtask pool of a NATS deployment: sessions for the jobs running here, and the worker side that
    runs any job's subtasks this process claims."""

    def __init__(
        self, connection: NatsConnection, queue: NatsWorkQueue, files: NatsJobFiles, root: Path
    ) -> None:
        self.connection = connection
        self.queue = queue
        self.files = files
        # Where this worker keeps the inputs of other workers' jobs (``<data>/subtasks``).
        self.root = root
        self.sessions: dict[str, NatsSubtaskSession] = {}

    def session(self, job: job_pb2.Job, work_dir: Path) -> NatsSubtaskSession:
        return NatsSubtaskSession(self, job, work_dir)

    async def execute(self, claim: Claim, cancel_event: asyncio.Event) -> None:
        order = claim.subtask
        if order is None:
            raise ValueError("not a subtask claim")
        if any(key not in order for key in ORDER_FIELDS) or not order["argv"]:
            # Not one a job's worker wrote (another version, a stray publish): taken again, it fails again.
            log.error("subtask order of job %r without %s: dropped", claim.job_id, ", ".join(ORDER_FIELDS))
            await claim.finish()
            return
        job_id, attempt, name = str(order["job"]), str(order["attempt"]), str(order["name"])
        state = self.connection.layout.state
        document, _ = await read_json_entry(state, subtasks_key(job_id))
        if (document or {}).get("attempt") != attempt or name in (document or {}).get("results", {}):
            # The stage ended (or went on in a later attempt), or it ran already and its ack was lost.
            await claim.finish()
            return
        session = self.sessions.get(job_id)
        here = session is not None and session.attempt == attempt
        work_dir = session.work_dir if session is not None and here else self.root / job_id
        prefix = f"{SUBTASK_PREFIX}{job_id}.{attempt}"
        stop = asyncio.Event()

        async def on_stop(_: Msg) -> None:
            stop.set()

        client = self.connection.client
        # The whole attempt's stop (its stage ended) and this subtask's own (its run was cancelled).
        subscriptions = [
            await client.subscribe(f"{prefix}.stop", cb=on_stop),
            await client.subscribe(f"{prefix}.{name}.stop", cb=on_stop),
        ]
        watch_cancel = asyncio.ensure_future(cancel_event.wait())
        watch_cancel.add_done_callback(lambda _: stop.set())
        heartbeat = asyncio.create_task(self._keep_alive(claim, attempt, stop))
        lines = _Lines(self.connection, f"{prefix}.{name}.lines")
        started = time.time()
        log.info(
            "subtask %s of job %s (attempt %s) started%s", name, job_id, attempt, " here" if here else ""
        )
        try:
            await client.flush()
            staging = time.perf_counter()
            unstaged = ""
            if not here:
                try:
                    await asyncio.to_thread(_prune, self.root, job_id)
                    await self.files.bring(job_id, work_dir, [str(each) for each in order["inputs"]])
                    await asyncio.to_thread(_link, work_dir, dict(order.get("links") or {}))
                    for output in order["outputs"]:
                        (work_dir / str(output)).parent.mkdir(parents=True, exist_ok=True)
                except (OSError, NotFoundError) as error:
                    # Running it again elsewhere would fail alike: the job's worker gets the failure.
                    unstaged = f"the subtask's inputs could not be brought to {worker_name()}: {error}"
                    log.error("subtask %s of job %s: %s", name, job_id, unstaged)
            staged = time.perf_counter() - staging
            waiting = session._waiting.get(name) if session is not None and here else None
            run = (
                _unstaged(unstaged)
                if unstaged
                else run_process(
                    [str(each) for each in order["argv"]],
                    cancel_event=stop,
                    on_stdout_line=waiting.on_stdout_line if waiting is not None else lines.out,
                    on_stderr_line=waiting.on_stderr_line if waiting is not None else lines.err,
                    graceful_stop=str(order.get("graceful_stop") or "").encode("latin-1") or None,
                    kill_after=float(order.get("kill_after") or 2.0),
                    timeout=order.get("timeout"),
                    log=log,
                    cwd=work_dir,
                )
            )
            if unstaged:
                lines.err(unstaged)
            result = await run
            await lines.flush()
            ok = result.returncode == 0 and not result.cancelled and not result.timed_out
            if ok and not here and not await self._current(job_id, attempt):
                ok = False  # the stage ended meanwhile (its worker died): nobody takes these outputs
            keeping = time.perf_counter()
            if ok and not here:
                await self.files.keep_outputs(
                    job_id, f"subtasks/{attempt}/{name}", work_dir, order["outputs"]
                )
            kept = time.perf_counter() - keeping
            outcome = {
                "returncode": result.returncode,
                "cancelled": result.cancelled,
                "timed_out": result.timed_out,
                "worker": worker_name(),
                "here": here,
                "started": started,
                "ended": time.time(),
                # Seconds spent bringing its inputs here and sending its outputs back.
                "staged_seconds": staged,
                "kept_seconds": kept,
            }

            def record(document: Any) -> Any:
                if (document or {}).get("attempt") != attempt:
                    return None
                return {**document, "results": {**document.get("results", {}), name: outcome}}

            await update_json_entry(state, subtasks_key(job_id), record)
            with contextlib.suppress(nats.errors.Error):
                await client.publish(f"{prefix}.{name}.done", json.dumps(outcome).encode())
            if waiting is not None:
                waiting.resolve(outcome)
            await claim.finish()
            log.info("subtask %s of job %s ended with %s", name, job_id, result.returncode)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(claim.release())
            raise
        finally:
            heartbeat.cancel()
            watch_cancel.cancel()
            for subscription in subscriptions:
                with contextlib.suppress(nats.errors.Error):
                    await subscription.unsubscribe()
            if not here:
                for output in order["outputs"]:
                    with contextlib.suppress(OSError):
                        (work_dir / str(output)).unlink()

    async def _current(self, job_id: str, attempt: str) -> bool:
        document, _ = await read_json_entry(self.connection.layout.state, subtasks_key(job_id))
        return bool((document or {}).get("attempt") == attempt)

    async def _keep_alive(self, claim: Claim, attempt: str, stop: asyncio.Event) -> None:
        """Heartbeats the claim, and stops the subtask once its attempt is over: its stage ended without the
        stop reaching this worker (the job's worker died, and the job went on in a new attempt)."""
        interval = self.queue.heartbeat_seconds or 10.0
        while True:
            await asyncio.sleep(interval)
            try:
                await claim.keep_alive()
                if not await self._current(claim.job_id, attempt):
                    log.info("subtask of job %s: its attempt %s is over; stopping it", claim.job_id, attempt)
                    stop.set()
            except Exception as error:
                log.warning("subtask of job %s: heartbeat failed (%s)", claim.job_id, error)

    async def bring_outputs(self, job_id: str, attempt: str, subtask: Subtask, work_dir: Path) -> None:
        await self.files.take_outputs(job_id, f"subtasks/{attempt}/{subtask.name}", work_dir, subtask.outputs)


async def _unstaged(_: str) -> ProcessResult:
    """The result of a subtask that could not start here (its message is the stderr line sent with it)."""
    return ProcessResult(returncode=127, pid=0, cancelled=False, timed_out=False)


def _install_links(work_dir: Path, relatives: tuple[str, ...]) -> dict[str, str]:
    """The inputs that are symlinks to files outside the work dir (the bundled fonts the caption fonts
    folder links to): every worker has those files at the same path, so they travel as links, not bytes."""
    links = {}
    for relative in relatives:
        path = work_dir / relative
        if path.is_symlink():
            target = path.resolve()
            if not target.is_relative_to(work_dir.resolve()):
                links[relative] = str(target)
    return links


def _link(folder: Path, links: dict[str, str]) -> None:
    """Makes the links of :func:`_install_links` in a worker's copy of the work dir."""
    for relative, target in links.items():
        if not Path(target).is_file():
            raise FileNotFoundError(f"{target} (linked as {relative}) is not installed on this worker")
        path = folder / relative
        if path.is_symlink() and os.readlink(path) == target:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        path.symlink_to(target)


def _prune(root: Path, keep: str) -> None:
    """Removes the staged inputs of other jobs that no subtask used for ``STAGED_IDLE_SECONDS``."""
    if not root.is_dir():
        return
    limit = time.time() - STAGED_IDLE_SECONDS
    for folder in root.iterdir():
        if folder.name != keep and folder.is_dir() and folder.stat().st_mtime < limit:
            shutil.rmtree(folder, ignore_errors=True)
    (root / keep).mkdir(parents=True, exist_ok=True)
    os.utime(root / keep)
