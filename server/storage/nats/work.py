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
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import KeyNotFoundError, NotFoundError

from reelcast.jobs.v1 import job_pb2
from reelcast.server.storage.job_store import JobStore
from reelcast.server.storage.nats.layout import (
    CANCEL_PREFIX,
    DELETED_PREFIX,
    EVENTS_PREFIX,
    SEQUENCE_HEADER,
    WORK_CONSUMER,
    WORK_STREAM,
    WORK_SUBJECT,
    NatsConnection,
    read_json_entry,
    retrying,
    stream_messages,
)
from reelcast.server.storage.notifier import EventNotifier
from reelcast.server.storage.work import CHUNK_BYTES, CancelHandler, Claim, OutputFile

log = logging.getLogger(__name__)
FETCH_SECONDS = 2.0


class NatsClaim:
    def __init__(self, message: Msg) -> None:
        self._message = message
        self.job_id = message.data.decode()
        self.redelivered = message.metadata.num_delivered > 1

    async def keep_alive(self) -> None:
        await self._message.in_progress()

    async def finish(self) -> None:
        # Synchronous ack: the job must not come back because an ack was lost on the way.
        with contextlib.suppress(nats.errors.Error):
            await retrying(lambda: self._message.ack_sync(timeout=5.0), seconds=15.0)

    async def release(self) -> None:
        with contextlib.suppress(nats.errors.Error):
            await self._message.nak()


class NatsWorkQueue:
    """Jobs on the ``REELCAST_WORK`` work-queue stream, pulled one at a time per free worker slot.

    A claim stays with its worker as long as ``keep_alive`` (``in_progress()``) reaches the server at least
    once per ack wait; ``heartbeat_seconds`` is a third of it. A job is redelivered when those stop, never
    because it runs long."""

    def __init__(self, connection: NatsConnection) -> None:
        self._connection = connection
        self._subscription: Any = None
        # One fetch at a time: the runner's worker tasks share one pull subscription.
        self._fetching = asyncio.Lock()

    @property
    def heartbeat_seconds(self) -> float | None:
        return self._connection.layout.ack_wait_seconds / 3

    async def recover(self, store: JobStore) -> None:
        # Unfinished jobs were never acknowledged, so the stream still holds them; only a job whose server
        # stopped between storing it and queueing it is missing there.
        self._subscription = await self._connection.layout.js.pull_subscribe_bind(
            durable=WORK_CONSUMER, stream=WORK_STREAM
        )
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
                await self.put(job.id, job.last_sequence)

    async def _ids_in_stream(self) -> set[str]:
        """The job ids of every message in the work stream: waiting, or claimed and not yet acknowledged."""
        messages = stream_messages(self._connection.layout.js, WORK_STREAM, WORK_SUBJECT)
        return {(message.data or b"").decode() async for message in messages}

    async def put(self, job_id: str, queued_at: int = 1) -> None:
        js = self._connection.layout.js
        # One id per queueing: an approved review queues the job again within the duplicate window.
        message_id = f"work:{job_id}" if queued_at <= 1 else f"work:{job_id}:{queued_at}"
        headers = {"Nats-Msg-Id": message_id}
        await retrying(lambda: js.publish(WORK_SUBJECT, job_id.encode(), headers=dict(headers)))

    async def take(self) -> Claim:
        if self._subscription is None:
            raise RuntimeError("recover() binds the work consumer first")
        async with self._fetching:
            while True:
                try:
                    messages = await self._subscription.fetch(1, timeout=FETCH_SECONDS)
                except (nats.errors.TimeoutError, nats.errors.ConnectionReconnectingError):
                    continue
                except nats.js.errors.APIError as error:
                    log.warning("work queue fetch failed (%s); retrying", error)
                    await asyncio.sleep(0.5)
                    continue
                if messages:
                    return NatsClaim(messages[0])

    async def depth(self) -> int:
        # Not yet delivered to any worker; running jobs are delivered and unacknowledged (num_ack_pending).
        info = await self._connection.layout.js.consumer_info(WORK_STREAM, WORK_CONSUMER)
        return int(info.num_pending or 0)

    async def waiting_order(self, store: JobStore) -> list[str]:
        """FIFO: the messages not yet delivered to any worker (after the consumer's delivered stream
        sequence), in stream order, whose jobs are still Queued. The delivered sequence is read last, so a
        job taken while the stream was read is not counted. A released job (nak) waits for redelivery below
        that sequence and is not counted either: it is taken again at once."""
        queued = {job.id for job in await store.unfinished_jobs() if job.status == job_pb2.JOB_STATUS_QUEUED}
        messages = [
            (message.seq or 0, (message.data or b"").decode())
            async for message in stream_messages(self._connection.layout.js, WORK_STREAM, WORK_SUBJECT)
        ]
        info = await self._connection.layout.js.consumer_info(WORK_STREAM, WORK_CONSUMER)
        delivered = info.delivered.stream_seq or 0
        order = (job_id for seq, job_id in messages if seq > delivered and job_id in queued)
        return list(dict.fromkeys(order))


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

    async def start(self) -> None:
        async def received(message: Msg) -> None:
            value = (message.headers or {}).get(SEQUENCE_HEADER)
            if value is not None:
                self.published(message.subject.removeprefix(EVENTS_PREFIX), int(value))

        client = self._connection.client
        self._subscription = await client.subscribe(f"{EVENTS_PREFIX}*", cb=received)

        async def deleted(message: Msg) -> None:
            self.feed_moved()  # another process deleted a job: WatchJobs streams read the record now

        self._deletions = await client.subscribe(f"{DELETED_PREFIX}*", cb=deleted)
        await client.flush()
