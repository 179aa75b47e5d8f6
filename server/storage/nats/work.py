"""The runner's distributed pieces on JetStream: work queue, cancel bus, job files and the event notifier.

See storage/work.py for the interfaces and layout.py for the streams and buckets behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats.errors
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import api
from nats.js.errors import KeyNotFoundError, NotFoundError

from reelcast.jobs.v1 import job_pb2
from reelcast.server.storage.fairness import (
    PRIORITY_NAMES,
    FairPolicy,
    FairShares,
    priority_rank,
    start_order,
)
from reelcast.server.storage.job_store import JobStore
from reelcast.server.storage.nats.layout import (
    CANCEL_PREFIX,
    DELETED_PREFIX,
    DELETING_PREFIX,
    EVENTS_PREFIX,
    FAIRNESS_KEY,
    SEQUENCE_HEADER,
    WORK_CONSUMER,
    WORK_STREAM,
    WORK_SUBJECT,
    WORK_USERS_PREFIX,
    NatsConnection,
    owner_of_token,
    read_json_entry,
    retrying,
    stream_messages,
    update_json_entry,
    work_consumer,
    work_consumer_config,
    work_subject,
)
from reelcast.server.storage.notifier import EventNotifier
from reelcast.server.storage.work import CHUNK_BYTES, CancelHandler, Claim, OutputFile

log = logging.getLogger(__name__)
FETCH_SECONDS = 2.0
# How often a take with nothing it may start looks again (a publish wakes it sooner).
POLL_SECONDS = 0.5


class NatsClaim:
    def __init__(self, message: Msg) -> None:
        self._message = message
        self.redelivered = message.metadata.num_delivered > 1
        self.subtask: dict[str, Any] | None = None
        data = message.data or b""
        if data.startswith(b"{"):  # a subtask of a running job (nats/subtasks.py), not a job id
            try:
                order = json.loads(data)
            except ValueError:
                order = None
            # A malformed order stays a subtask claim: SubtaskPool.execute drops it with a log line.
            self.subtask = order if isinstance(order, dict) else {}
            self.job_id = str(self.subtask.get("job", ""))
        else:
            self.job_id = data.decode()

    async def keep_alive(self) -> None:
        await self._message.in_progress()

    async def finish(self) -> None:
        # Synchronous ack: the job must not come back because an ack was lost on the way.
        with contextlib.suppress(nats.errors.Error):
            await retrying(lambda: self._message.ack_sync(timeout=5.0), seconds=15.0)

    async def release(self) -> None:
        with contextlib.suppress(nats.errors.Error):
            await self._message.nak()


@dataclass
class _UserQueue:
    """One (user, priority) subject of the work stream and its consumer's counts."""

    subject: str
    consumer: str
    owner: str
    rank: int
    waiting: int  # not yet delivered
    running: int  # delivered and not acknowledged: claimed, or lapsing after its worker died
    delivered_up_to: int  # the stream sequence the consumer delivered last
    # The job whose subtasks this subject holds (``<user>.<priority>.<job>``); "" for the user's jobs.
    subtasks_of: str = ""


class NatsWorkQueue:
    """Jobs on the ``REELCAST_WORK`` work-queue stream, one subject and one durable pull consumer per user and
    priority (layout.py), claimed fairly without a dispatcher: a worker with a free slot reads the shares
    (``fairness`` in the state bucket), picks the user by the policy (storage/fairness.py), takes that turn
    with compare-and-swap, then pulls (no wait) from the user's consumers, high to low priority; when another
    worker was faster and nothing is there, it gives the turn back and picks again. Running counts are the
    consumers' unacknowledged messages, so a SIGKILLed worker's job counts until its claim lapses and
    JetStream redelivers it; nothing of the shares lives in a worker.

    A claim stays with its worker as long as ``keep_alive`` (``in_progress()``) reaches the server at least
    once per ack wait; ``heartbeat_seconds`` is a third of it. A job is redelivered when those stop, never
    because it runs long."""

    def __init__(self, connection: NatsConnection, policy: FairPolicy | None = None) -> None:
        self._connection = connection
        self.policy = policy if policy is not None else FairPolicy()
        # One claim at a time per process: the runner's worker tasks take turns.
        self._fetching = asyncio.Lock()
        # Set by any publish on the work subjects (core NATS sees JetStream publishes): a waiting take looks
        # again at once rather than at its next poll.
        self._published = asyncio.Event()
        self._subscription: Subscription | None = None
        self._inbox: Subscription | None = None
        self._pulled: asyncio.Queue[Msg] = asyncio.Queue()

    @property
    def heartbeat_seconds(self) -> float | None:
        return self._connection.layout.ack_wait_seconds / 3

    async def recover(self, store: JobStore) -> None:
        # Unfinished jobs were never acknowledged, so the stream still holds them; only a job whose server
        # stopped between storing it and queueing it is missing there.
        async def published(_: Msg) -> None:
            self._published.set()

        client = self._connection.client
        self._subscription = await client.subscribe(f"{WORK_USERS_PREFIX}>", cb=published)
        self._inbox = await client.subscribe(client.new_inbox(), cb=self._pulled.put)
        await client.flush()
        await self.queue_orphans(store)

    async def queue_orphans(self, store: JobStore) -> None:
        """Queues the jobs stored as Queued that have no message in the work stream. Every process does this
        when it starts, and API servers on their retention schedule, so a crashed API server's orphans run
        once any reelcast process starts or within ``REELCAST_GC_INTERVAL``. A job whose
        server is alive and about to queue it is queued twice under one ``Nats-Msg-Id``, which the stream's
        duplicate window stores once; a job that ended between the two reads gets a message its worker
        acknowledges without running it (``_work_on`` sees it finished)."""
        queued = [job for job in await store.unfinished_jobs() if job.status == job_pb2.JOB_STATUS_QUEUED]
        if not queued:
            return
        waiting = await self._ids_in_stream()
        for job in queued:
            if job.id not in waiting:
                log.warning("job %s was stored but never queued (its server stopped in between)", job.id)
                await self.put(job.id, job.last_sequence, owner=job.owner, priority=job.spec.priority)

    async def _ids_in_stream(self) -> set[str]:
        """The job ids of every message in the work stream: waiting, or claimed and not yet acknowledged."""
        js = self._connection.layout.js
        ids: set[str] = set()
        for subject in (WORK_SUBJECT, f"{WORK_USERS_PREFIX}>"):
            ids |= {
                (message.data or b"").decode() async for message in stream_messages(js, WORK_STREAM, subject)
            }
        return ids

    async def put(self, job_id: str, queued_at: int = 1, *, owner: str = "", priority: int = 0) -> None:
        js = self._connection.layout.js
        subject = work_subject(owner, PRIORITY_NAMES[priority_rank(priority)])
        await self._consumer_of(subject)  # before the message, so that no worker misses its subject
        # One id per queueing: an approved review queues the job again within the duplicate window.
        message_id = f"work:{job_id}" if queued_at <= 1 else f"work:{job_id}:{queued_at}"
        headers = {"Nats-Msg-Id": message_id}
        await retrying(lambda: js.publish(subject, job_id.encode(), headers=dict(headers)))

    async def _consumer_of(self, subject: str) -> api.ConsumerInfo:
        """Creates the subject's consumer if it is missing (idempotent: every process asks with one config)
        and returns its counts."""
        js = self._connection.layout.js
        name = work_consumer(subject) if subject != WORK_SUBJECT else WORK_CONSUMER
        config = work_consumer_config(name, subject, self._connection.layout.ack_wait_seconds)
        try:
            info = await retrying(lambda: js.add_consumer(WORK_STREAM, config))
        except nats.js.errors.BadRequestError:
            # Made by a process with another ack wait (layout.py keeps the first one's): use it as it is.
            info = await retrying(lambda: js.consumer_info(WORK_STREAM, name))
        return info

    async def _user_queues(self) -> list[_UserQueue]:
        """Every (user, priority) subject that holds messages, with its consumer's counts."""
        js = self._connection.layout.js
        info = await retrying(lambda: js.stream_info(WORK_STREAM, subjects_filter=f"{WORK_USERS_PREFIX}>"))
        queues = []
        for subject in sorted(info.state.subjects or {}):
            token, priority_name, *job = subject.removeprefix(WORK_USERS_PREFIX).split(".")
            if priority_name not in PRIORITY_NAMES or len(job) > 1:
                continue
            consumer = await self._consumer_of(subject)
            queues.append(
                _UserQueue(
                    subject=subject,
                    consumer=consumer.name,
                    owner=owner_of_token(token),
                    # A running job's subtasks come before the user's new jobs: they finish a started job.
                    rank=PRIORITY_NAMES.index(priority_name) - (len(PRIORITY_NAMES) if job else 0),
                    waiting=int(consumer.num_pending or 0),
                    running=int(consumer.num_ack_pending or 0),
                    delivered_up_to=int(consumer.delivered.stream_seq or 0) if consumer.delivered else 0,
                    subtasks_of=job[0] if job else "",
                )
            )
        return queues

    async def take_subtask(self, subject: str) -> NatsClaim | None:
        """One subtask of ``subject`` (a job's subtask subject) if one waits, for the worker that runs the job
        (nats/subtasks.py): outside the fair turns, since the job's slot is already counted. None also when
        this process's own take is pulling now: that take may claim the subtask itself."""
        if self._inbox is None or self._fetching.locked():
            return None
        async with self._fetching:
            message = await self._pull_now((await self._consumer_of(subject)).name)
        return NatsClaim(message) if message is not None else None

    async def wait_published(self, seconds: float) -> None:
        """Returns after the next publish on the work subjects, or after ``seconds``."""
        self._published.clear()
        # asyncio.wait, not asyncio.timeout: on 3.11 a cancel that lands as the timeout expires is turned
        # into the TimeoutError and lost, and the caller's loop would never stop.
        published = asyncio.ensure_future(self._published.wait())
        try:
            await asyncio.wait({published}, timeout=seconds)
        finally:
            published.cancel()

    async def drop_subject(self, subject: str) -> None:
        """Removes a job's subtask subject: its waiting messages and its consumer."""
        js = self._connection.layout.js
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await retrying(lambda: js.purge_stream(WORK_STREAM, subject=subject))
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await retrying(lambda: js.delete_consumer(WORK_STREAM, work_consumer(subject)))

    async def _pull_now(self, consumer: str) -> Msg | None:
        """One message of ``consumer`` if it has one now (a no-wait pull: nothing lingers on the server).
        JetStream delivers it on its own subject, to the reply inbox: the inbox is this queue's own
        subscription, since the client's request mux routes replies by subject."""
        if self._inbox is None:
            raise RuntimeError("recover() subscribes to the pull inbox first")
        request = json.dumps({"batch": 1, "no_wait": True}).encode()
        subject = f"{api.DEFAULT_PREFIX}.CONSUMER.MSG.NEXT.{WORK_STREAM}.{consumer}"
        await self._connection.client.publish(subject, request, reply=self._inbox.subject)
        try:
            async with asyncio.timeout(FETCH_SECONDS):
                message = await self._pulled.get()
        except TimeoutError:
            return None
        if message.headers and message.headers.get(api.Header.STATUS):
            return None  # 404 no messages, 408, 409: nothing for us now
        return message

    async def _take_turn(self, queues: list[_UserQueue]) -> tuple[str, int | None] | None:
        """Picks the next user by the policy and records their start in the shares with compare-and-swap;
        the user and their previous last start (to give the turn back), or None when nobody may start."""
        waiting = {queue.owner for queue in queues if queue.waiting > 0}
        running: dict[str, int] = {}
        for queue in queues:
            running[queue.owner] = running.get(queue.owner, 0) + queue.running
        chosen: list[tuple[str, int | None]] = []

        def take(document: Any) -> Any:
            chosen.clear()
            shares = FairShares.from_json(document)
            shares.admit(waiting)
            user = shares.next_user(waiting, running, self.policy)
            if user is None:
                return (
                    shares.to_json() if shares.waiting != set((document or {}).get("waiting", [])) else None
                )
            chosen.append((user, shares.last_start.get(user)))
            shares.started(user, self.policy)
            return shares.to_json()

        state = self._connection.layout.state
        if not await update_json_entry(state, FAIRNESS_KEY, take) or not chosen:
            return None
        return chosen[0]

    async def _record_start(self, user: str) -> None:
        def start(document: Any) -> Any:
            shares = FairShares.from_json(document)
            shares.started(user, self.policy)
            return shares.to_json()

        await update_json_entry(self._connection.layout.state, FAIRNESS_KEY, start)

    async def _give_back(self, user: str, previous_last_start: int | None) -> None:
        def give_back(document: Any) -> Any:
            shares = FairShares.from_json(document)
            shares.unstarted(user, self.policy, previous_last_start)
            return shares.to_json()

        await update_json_entry(self._connection.layout.state, FAIRNESS_KEY, give_back)

    async def _claim_fairly(self) -> NatsClaim | None:
        legacy = await self._pull_now(WORK_CONSUMER)  # the layout before fair scheduling drains first
        if legacy is not None:
            return NatsClaim(legacy)
        queues = await self._user_queues()
        for queue in queues:
            # A lapsed claim (its worker died) is redelivered, not pending: it continues a start that
            # already had its turn. Nothing new waits there, so this pull can only return such a job, or
            # one queued since the counts were read, which then takes its turn.
            if queue.running > 0 and queue.waiting == 0:
                message = await self._pull_now(queue.consumer)
                if message is not None:
                    if message.metadata.num_delivered <= 1:
                        await self._record_start(queue.owner)
                    return NatsClaim(message)
        turn = await self._take_turn(queues)
        if turn is None:
            return None
        user, previous_last_start = turn
        for queue in sorted((each for each in queues if each.owner == user), key=lambda each: each.rank):
            message = await self._pull_now(queue.consumer)
            if message is not None:
                if message.metadata.num_delivered > 1:
                    # A lapsed claim comes before new jobs: it continues a start that had its turn.
                    await self._give_back(user, previous_last_start)
                return NatsClaim(message)
        await self._give_back(user, previous_last_start)  # another worker was faster: pick again
        return None

    async def take(self) -> Claim:
        if self._subscription is None:
            raise RuntimeError("recover() subscribes to the work subjects first")
        this_task = asyncio.current_task()
        async with self._fetching:
            while True:
                self._published.clear()
                try:
                    claim = await self._claim_fairly()
                except (nats.errors.Error, nats.js.errors.APIError) as error:
                    log.warning("work queue claim failed (%s); retrying", error)
                    claim = None
                # On 3.11 asyncio.wait_for (inside nats-py's requests) returns a reply that arrived as the
                # task was cancelled and drops the cancel; the request stays counted in cancelling(), so
                # honour it here, or the runner's stop would wait for this worker forever.
                if this_task is not None and this_task.cancelling():
                    if claim is not None:
                        await claim.release()
                    raise asyncio.CancelledError
                if claim is not None:
                    return claim
                # Nothing to start now: wait for a new job, or poll (a finished job frees a capped user).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(POLL_SECONDS):
                        await self._published.wait()

    async def depth(self) -> int:
        # Not yet delivered to any worker; running jobs are delivered and unacknowledged (num_ack_pending).
        legacy = await self._connection.layout.js.consumer_info(WORK_STREAM, WORK_CONSUMER)
        queues = await self._user_queues()
        return int(legacy.num_pending or 0) + sum(queue.waiting for queue in queues if not queue.subtasks_of)

    async def waiting_order(self, unfinished: Iterable[job_pb2.Job]) -> list[str]:
        """See ``WorkQueue.waiting_order``."""
        js = self._connection.layout.js
        queues = await self._user_queues()
        by_user: dict[str, list[str]] = {}
        running: dict[str, int] = {}
        for queue in sorted(queues, key=lambda each: each.rank):
            running[queue.owner] = running.get(queue.owner, 0) + queue.running
            if queue.waiting <= 0:
                continue
            jobs = by_user.setdefault(queue.owner, [])
            async for message in stream_messages(js, WORK_STREAM, queue.subject):
                if (message.seq or 0) > queue.delivered_up_to:
                    jobs.append((message.data or b"").decode())
        document, _ = await read_json_entry(self._connection.layout.state, FAIRNESS_KEY)
        order = start_order(FairShares.from_json(document), by_user, running, self.policy)
        # Only jobs still Queued: one cancelled while it waited is skipped by the worker that takes it.
        queued = {job.id for job in unfinished if job.status == job_pb2.JOB_STATUS_QUEUED}
        return [job_id for job_id in order if job_id in queued]


class NatsCancelBus:
    """A cancel request is a KV flag (``cancel.<id>``, for a worker that claims the job later) and a core NATS
    message on ``reelcast.cancel.<id>`` (for the worker running it now); both go out before any check, so
    whichever order the claim and the request happen in, the worker learns of it."""

    remote = True

    def __init__(self, connection: NatsConnection) -> None:
        self._connection = connection
        self._subscription: Subscription | None = None

    async def listen(self, handler: CancelHandler) -> None:
        async def received(message: Msg) -> None:
            handler(message.subject.removeprefix(CANCEL_PREFIX))

        client = self._connection.client
        self._subscription = await client.subscribe(f"{CANCEL_PREFIX}*", cb=received)
        await client.flush()

    async def request(self, job_id: str) -> None:
        state = self._connection.layout.state
        await retrying(lambda: state.put(f"cancel.{job_id}", b"1"))
        client = self._connection.client
        await client.publish(f"{CANCEL_PREFIX}{job_id}", b"")
        await client.flush()

    async def requested(self, job_id: str) -> bool:
        state = self._connection.layout.state
        try:
            await retrying(lambda: state.get(f"cancel.{job_id}"))
        except KeyNotFoundError:
            return False
        return True

    async def withdraw(self, job_id: str) -> None:
        state = self._connection.layout.state
        await retrying(lambda: state.purge(f"cancel.{job_id}"))


def _walk(work_dir: Path) -> dict[str, tuple[int, int]]:
    found: dict[str, tuple[int, int]] = {}
    for root, _, names in os.walk(work_dir):
        for name in names:
            path = Path(root) / name
            stat = path.stat()
            found[path.relative_to(work_dir).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return found


def relative_output(job_id: str, path: str) -> str | None:
    """A published output path (absolute on the worker that wrote it) relative to the job's work dir."""
    parts = Path(path).parts
    if job_id not in parts:
        return None
    index = len(parts) - 1 - parts[::-1].index(job_id)
    rest = parts[index + 1 :]
    return "/".join(rest) if rest and ".." not in rest else None


class NatsJobFiles:
    """Work dirs in the ``reelcast_files`` object store, as ``<id>/<relative path>``, with a manifest
    (``files.<id>`` in the state bucket: path -> [size, mtime_ns]) so that only changed files are uploaded and
    a job's files are found without listing the bucket."""

    def __init__(self, connection: NatsConnection) -> None:
        self._connection = connection

    async def _manifest(self, job_id: str) -> dict[str, list[int]]:
        manifest, _ = await read_json_entry(self._connection.layout.state, f"files.{job_id}")
        return manifest or {}

    async def save(self, job_id: str, work_dir: Path) -> None:
        manifest = await self._manifest(job_id)
        store = self._connection.layout.files
        changed = False
        for relative, (size, mtime) in (await asyncio.to_thread(_walk, work_dir)).items():
            if manifest.get(relative) == [size, mtime]:
                continue
            data = await asyncio.to_thread((work_dir / relative).read_bytes)
            await retrying(lambda name=f"{job_id}/{relative}", data=data: store.put(name, data))  # type: ignore[misc]
            manifest[relative] = [size, mtime]
            changed = True
        if changed:
            state = self._connection.layout.state
            payload = json.dumps(manifest, sort_keys=True).encode()
            await retrying(lambda: state.put(f"files.{job_id}", payload))

    async def publish(self, job_id: str, work_dir: Path, relative: str) -> None:
        path = work_dir / relative
        stat = await asyncio.to_thread(path.stat)
        data = await asyncio.to_thread(path.read_bytes)
        store = self._connection.layout.files
        await retrying(lambda: store.put(f"{job_id}/{relative}", data))
        # The manifest has one writer at a time: the worker running the job, which saves after the stage.
        manifest = await self._manifest(job_id)
        manifest[relative] = [stat.st_size, stat.st_mtime_ns]
        state = self._connection.layout.state
        payload = json.dumps(manifest, sort_keys=True).encode()
        await retrying(lambda: state.put(f"files.{job_id}", payload))

    async def share(self, job_id: str, work_dir: Path, relatives: Iterable[str]) -> None:
        """Keeps the files ``relatives`` of a running stage where a worker running one of its subtasks finds
        them (nats/subtasks.py): those the manifest has at the same size and time are not sent again."""
        manifest = await self._manifest(job_id)
        store = self._connection.layout.files
        changed = False
        for relative in relatives:
            path = work_dir / relative
            stat = await asyncio.to_thread(path.stat)
            if manifest.get(relative) == [stat.st_size, stat.st_mtime_ns]:
                continue
            data = await asyncio.to_thread(path.read_bytes)
            await retrying(lambda name=f"{job_id}/{relative}", data=data: store.put(name, data))  # type: ignore[misc]
            manifest[relative] = [stat.st_size, stat.st_mtime_ns]
            changed = True
        if changed:
            state = self._connection.layout.state
            payload = json.dumps(manifest, sort_keys=True).encode()
            await retrying(lambda: state.put(f"files.{job_id}", payload))

    async def bring(self, job_id: str, folder: Path, relatives: Iterable[str]) -> None:
        """Brings the shared files ``relatives`` of a job into ``folder`` (a subtask's worker), skipping those
        already there at the manifest's size."""
        manifest = await self._manifest(job_id)
        store = self._connection.layout.files
        for relative in relatives:
            target = folder / relative
            entry = manifest.get(relative)
            if entry is not None and target.is_file() and target.stat().st_size == entry[0]:
                continue
            try:
                result = await retrying(lambda name=f"{job_id}/{relative}": store.get(name))  # type: ignore[misc]
            except NotFoundError:
                raise FileNotFoundError(f"{relative} is not among the job's shared files") from None
            target.parent.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(target.write_bytes, result.data or b"")

    async def keep_outputs(self, job_id: str, under: str, folder: Path, relatives: Iterable[str]) -> None:
        """A subtask's outputs, from ``folder`` to ``<job>/<under>/`` in the object store (not in the
        manifest: the job's worker takes them once, with ``take_outputs``)."""
        store = self._connection.layout.files
        for relative in relatives:
            data = await asyncio.to_thread((folder / relative).read_bytes)
            await retrying(lambda name=f"{job_id}/{under}/{relative}", data=data: store.put(name, data))  # type: ignore[misc]

    async def take_outputs(self, job_id: str, under: str, work_dir: Path, relatives: Iterable[str]) -> None:
        """Moves what ``keep_outputs`` stored into the work dir."""
        store = self._connection.layout.files
        for relative in relatives:
            name = f"{job_id}/{under}/{relative}"
            result = await retrying(lambda name=name: store.get(name))  # type: ignore[misc]
            target = work_dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(target.write_bytes, result.data or b"")
            with contextlib.suppress(NotFoundError):
                await retrying(lambda name=name: store.delete(name))  # type: ignore[misc]

    async def restore(self, job_id: str, work_dir: Path) -> None:
        store = self._connection.layout.files
        for relative, (size, _) in (await self._manifest(job_id)).items():
            target = work_dir / relative
            if target.is_file() and target.stat().st_size == size:
                continue
            result = await retrying(lambda name=f"{job_id}/{relative}": store.get(name))  # type: ignore[misc]
            target.parent.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(target.write_bytes, result.data or b"")

    async def finished(self, job_id: str, work_dir: Path) -> None:
        # Outputs are served from the object store; this worker's copy is no longer needed.
        await asyncio.to_thread(shutil.rmtree, work_dir, True)

    async def delete(self, job_id: str) -> None:
        store = self._connection.layout.files
        for relative in await self._manifest(job_id):
            with contextlib.suppress(NotFoundError):
                await retrying(lambda name=f"{job_id}/{relative}": store.delete(name))  # type: ignore[misc]
        state = self._connection.layout.state
        await retrying(lambda: state.purge(f"files.{job_id}"))
        await retrying(lambda: state.purge(f"subtasks.{job_id}"))  # nats/subtasks.py

    async def open_output(self, job_id: str, path: str) -> OutputFile | None:
        relative = relative_output(job_id, path) if path else None
        if relative is None:
            return None
        entry = (await self._manifest(job_id)).get(relative)
        if entry is None:
            return None
        store = self._connection.layout.files
        name = f"{job_id}/{relative}"

        async def read_range(offset: int, end: int) -> AsyncIterator[bytes]:
            # nats-py reads an object whole; outputs are videos of a few MB (see docs/operations.md).
            data = (await retrying(lambda: store.get(name))).data or b""
            for start in range(offset, min(end, len(data)), CHUNK_BYTES):
                yield data[start : min(end, start + CHUNK_BYTES)]

        return OutputFile(Path(relative).name, entry[0], read_range)


class NatsNotifier(EventNotifier):
    """Wakes this process's watchers for events written by any process: one wildcard subscription to the
    event subjects (core NATS sees every JetStream publish), set up at start, long before any job is
    watched, so interest never has to propagate through the cluster while a watcher waits."""

    def __init__(self, connection: NatsConnection) -> None:
        super().__init__()
        self._connection = connection
        self._subscription: Subscription | None = None
        self._deletions: Subscription | None = None
        self._deleting_notices: Subscription | None = None

    async def start(self) -> None:
        async def received(message: Msg) -> None:
            value = (message.headers or {}).get(SEQUENCE_HEADER)
            if value is not None:
                self.published(message.subject.removeprefix(EVENTS_PREFIX), int(value))

        client = self._connection.client
        self._subscription = await client.subscribe(f"{EVENTS_PREFIX}*", cb=received)

        async def deleted(message: Msg) -> None:
            self.feed_moved()  # another process deleted a job: WatchJobs streams read the record now
            # And its WatchJob streams find it gone now: the record (nats/job_store.py) starts with the
            # length of its deletion event, whose sequence is one past the job's last.
            data = message.data or b""
            if len(data) >= 4:
                length = int.from_bytes(data[:4], "big")
                with contextlib.suppress(DecodeError):
                    event = job_pb2.JobProgress.FromString(data[4 : 4 + length])
                    self.published(message.subject.removeprefix(DELETED_PREFIX), event.sequence)

        self._deletions = await client.subscribe(f"{DELETED_PREFIX}*", cb=deleted)

        async def deleting(message: Msg) -> None:
            # Another API server cancels the job to delete it: this one's watches wait past the cancel too.
            job_id = message.subject.removeprefix(DELETING_PREFIX)
            self.deleting(job_id, message.data == b"1")

        self._deleting_notices = await client.subscribe(f"{DELETING_PREFIX}*", cb=deleting)
        await client.flush()

    async def announce_deleting(self, job_id: str, underway: bool) -> None:
        """Tells every process (this one through its own subscription too, and at once) before the cancel is
        requested, so that a watch anywhere reads the cancel knowing a deletion follows it."""
        self.deleting(job_id, underway)
        client = self._connection.client
        with contextlib.suppress(nats.errors.Error):
            await client.publish(f"{DELETING_PREFIX}{job_id}", b"1" if underway else b"0")
            await client.flush(timeout=2)
