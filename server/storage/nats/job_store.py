"""The job store on NATS JetStream: the event log is the truth, the KV snapshot an index of it.

Each event is published on its job's subject (``reelcast.events.<id>``) with

- ``Nats-Expected-Last-Subject-Sequence``: the stream sequence of the job's previous event, so an append
  succeeds only if nobody appended since the writer's last one (a redelivered job and a slow old worker can
  never interleave their writes: the loser gets ``ConcurrentWriteError``);
- ``Nats-Msg-Id`` ``<id>:<sequence>``: a retry after a lost ack is stored once.

Intentional divergence from SQLite's single transaction: an event and the job snapshot cannot be written
atomically here. Each event message therefore carries the snapshot after it (``_pack``), and the KV snapshot
is written after the event, only ever forwards (compare-and-set on its revision, never replacing a snapshot
with an older one). A writer that died in between leaves a snapshot one event behind; ``latest_job``, which
every new writer calls, repairs it from the log.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import struct
import time
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

from nats.js.api import RawStreamMsg
from nats.js.errors import APIError, KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError

from reelcast.jobs.labels import matches_labels
from reelcast.jobs.terminal import TERMINAL_STATUSES
from reelcast.jobs.v1 import job_pb2
from reelcast.server.storage.job_store import (
    DURATIONS_KEPT,
    UNFINISHED_STATUSES,
    ConcurrentWriteError,
    DuplicateRequestError,
    FeedEntry,
    JobUsage,
    PageCursor,
    deletion_event,
    queued_render_seconds,
)
from reelcast.server.storage.nats.layout import (
    DELETED_PREFIX,
    EVENTS_PREFIX,
    EVENTS_STREAM,
    JOBS_BUCKET,
    SEQUENCE_HEADER,
    Layout,
    NatsConnection,
    deletion_subject,
    event_subject,
    read_json_entry,
    retrying,
    stream_messages,
    update_json_entry,
)

K = TypeVar("K")
V = TypeVar("V")
WRONG_LAST_SEQUENCE = (10071, 10164)
SCAN_TIMEOUT = 10.0
FEED_FLOOR_KEY = "feed.floor"


class _Bounded(Generic[K, V]):
    """A dict that forgets its oldest entries (positions and revisions are caches, never the truth)."""

    def __init__(self, limit: int = 10_000) -> None:
        self._items: OrderedDict[K, V] = OrderedDict()
        self._limit = limit

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def set(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._limit:
            self._items.popitem(last=False)

    def pop(self, key: K) -> None:
        self._items.pop(key, None)


def _pack(event: job_pb2.JobProgress, job: job_pb2.Job) -> bytes:
    data = event.SerializeToString()
    return struct.pack(">I", len(data)) + data + job.SerializeToString()


def _unpack(payload: bytes) -> tuple[job_pb2.JobProgress, job_pb2.Job]:
    (length,) = struct.unpack_from(">I", payload)
    event = job_pb2.JobProgress.FromString(payload[4 : 4 + length])
    return event, job_pb2.Job.FromString(payload[4 + length :])


def _sequence_of(message: RawStreamMsg) -> int:
    value = (message.headers or {}).get(SEQUENCE_HEADER)
    if value is not None:
        return int(value)
    return _unpack(message.data or b"")[0].sequence


def feed_entry_of(subject: str, position: int, data: bytes) -> FeedEntry | None:
    """The feed entry of one events-stream message read by someone else (a webhook endpoint's consumer,
    nats_outbox.py); None for a subject that holds no event."""
    if not subject.startswith((EVENTS_PREFIX, DELETED_PREFIX)):
        return None
    event, job = _unpack(data)
    return FeedEntry(position, job.owner, dict(job.spec.labels), event)


def _key_part(text: str) -> str:
    """Any text as a KV key token (keys allow only ``[-/_=.a-zA-Z0-9]``)."""
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=") or "_"


def _time_us(stamp: Any) -> int:
    return int(stamp.seconds) * 1_000_000 + int(stamp.nanos) // 1000


class NatsJobStore:
    """``JobStore`` on a JetStream layout (see layout.py). Safe to use from many processes at once."""

    def __init__(self, connection: NatsConnection) -> None:
        self._connection = connection
        # job id -> (per-job sequence, stream sequence) of the job's last event this process saw.
        self._positions: _Bounded[str, tuple[int, int]] = _Bounded()
        # job id -> KV revision of the snapshot this process last wrote or read.
        self._revisions: _Bounded[str, int] = _Bounded()

    @property
    def _layout(self) -> Layout:
        return self._connection.layout

    @property
    def _js(self) -> Any:
        return self._connection.layout.js

    # -- the event log -----------------------------------------------------------------------------------

    async def _get(self, subject: str, seq: int | None = None, next_: bool = False) -> RawStreamMsg | None:
        js = self._js
        try:
            if seq is None:
                return await retrying(lambda: js.get_last_msg(EVENTS_STREAM, subject))
            return await retrying(lambda: js.get_msg(EVENTS_STREAM, seq=seq, subject=subject, next=next_))
        except NotFoundError:
            return None

    async def _last_position(self, job_id: str) -> tuple[int, int]:
        message = await self._get(event_subject(job_id))
        if message is None or message.seq is None:
            return (0, 0)
        position = (_sequence_of(message), message.seq)
        self._positions.set(job_id, position)
        return position

    async def last_sequence(self, job_id: str) -> int:
        """The per-job sequence of the job's last event (0 if none), read from the stream's leader."""
        return (await self._last_position(job_id))[0]

    async def _publish(self, job: job_pb2.Job, event: job_pb2.JobProgress, expected: int) -> None:
        position = self._positions.get(job.id)
        if position is None or position[0] != expected:
            position = await self._last_position(job.id)
        if position[0] != expected:
            raise ConcurrentWriteError(f"job {job.id}: expected last sequence {expected}, not {position[0]}")
        payload = _pack(event, job)
        headers = {
            "Nats-Msg-Id": f"{job.id}:{event.sequence}",
            "Nats-Expected-Last-Subject-Sequence": str(position[1]),
            SEQUENCE_HEADER: str(event.sequence),
        }
        try:
            js, subject = self._js, event_subject(job.id)
            ack = await retrying(
                lambda: js.publish(subject, payload, headers=dict(headers), stream=EVENTS_STREAM)
            )
        except APIError as error:
            if error.err_code in WRONG_LAST_SEQUENCE:
                self._positions.pop(job.id)
                raise ConcurrentWriteError(f"job {job.id}: another writer appended first") from None
            raise
        if ack.duplicate:
            # The same id was stored within the dedup window: our own retry, or another writer's event.
            stored = await self._get(event_subject(job.id), seq=ack.seq)
            if stored is None or stored.data != payload:
                self._positions.pop(job.id)
                raise ConcurrentWriteError(f"job {job.id}: sequence {event.sequence} was written by another")
        self._positions.set(job.id, (event.sequence, ack.seq))

    async def _save_snapshot(self, job: job_pb2.Job) -> None:
        """Writes the KV snapshot forwards only: never over a snapshot of a later sequence."""
        key = f"job.{job.id}"
        data = job.SerializeToString()
        revision = self._revisions.get(job.id)
        for _ in range(10):
            try:
                jobs, last = self._layout.jobs, revision or 0
                written = await retrying(lambda jobs=jobs, last=last: jobs.update(key, data, last=last))  # type: ignore[misc]
                self._revisions.set(job.id, written)
                return
            except KeyWrongLastSequenceError:
                try:
                    entry = await retrying(lambda: self._layout.jobs.get(key))
                except KeyNotFoundError:
                    revision = None
                    continue
                current = job_pb2.Job.FromString(entry.value or b"")
                revision = entry.revision
                if current.last_sequence >= job.last_sequence:
                    self._revisions.set(job.id, entry.revision or 0)
                    return
        raise ConcurrentWriteError(f"job {job.id}: snapshot kept changing")

    async def create_job(self, job: job_pb2.Job, first_event: job_pb2.JobProgress, request_id: str) -> None:
        job.last_sequence = 1
        first_event.sequence = 1
        if request_id:
            await self._claim_request(job, request_id)
        await self._publish(job, first_event, expected=0)
        await self._save_snapshot(job)

    async def _claim_request(self, job: job_pb2.Job, request_id: str) -> None:
        owner = hashlib.sha256(job.owner.encode("utf-8")).hexdigest()[:32]
        key = f"{owner}.{_key_part(request_id)}"
        requests = self._layout.requests
        try:
            await requests.create(key, job.id.encode())
        except KeyWrongLastSequenceError:
            entry = await requests.get(key)
            existing = await self.get_job((entry.value or b"").decode())
            if existing is not None:
                raise DuplicateRequestError(existing) from None
            # Its creator died before the job was stored (or retention removed the job and not yet the key):
            # take it over.
            try:
                await requests.update(key, job.id.encode(), last=entry.revision)
            except KeyWrongLastSequenceError:
                await self._claim_request(job, request_id)
                return
        # The way back from the job to its key, for retention to remove the key with the job.
        await retrying(lambda: self._layout.state.put(f"request.{job.id}", key.encode()))

    async def _release_request(self, job_id: str) -> None:
        """Removes the request key that names ``job_id``, unless another job has taken it over since."""
        state, requests = self._layout.state, self._layout.requests
        try:
            key = (await state.get(f"request.{job_id}")).value or b""
        except KeyNotFoundError:
            return
        with contextlib.suppress(KeyNotFoundError, KeyWrongLastSequenceError):
            entry = await requests.get(key.decode())
            if entry.value == job_id.encode():
                await requests.delete(key.decode(), last=entry.revision)
        await state.purge(f"request.{job_id}")

    async def append_event(self, job: job_pb2.Job, event: job_pb2.JobProgress) -> None:
        expected = job.last_sequence
        event.sequence = expected + 1
        job.last_sequence = expected + 1
        try:
            await self._publish(job, event, expected)
        except BaseException:
            job.last_sequence = expected
            raise
        await self._save_snapshot(job)

    async def _start_after(self, job_id: str, after_sequence: int) -> int:
        """The smallest stream sequence from which the next event after ``after_sequence`` can be found."""
        position = self._positions.get(job_id)
        if position is not None and position[0] == after_sequence:
            return position[1] + 1
        if after_sequence <= 0:
            return 1
        subject = event_subject(job_id)
        last = await self._get(subject)
        if last is None or last.seq is None or _sequence_of(last) <= after_sequence:
            return (last.seq or 0) + 1 if last is not None else 1
        # Binary search for the stream sequence of event ``after_sequence``: on its subject the job's events
        # are in order, and each probe finds the first of them at or after a stream sequence.
        low, high = 1, last.seq
        while low <= high:
            middle = (low + high) // 2
            probe = await self._get(subject, seq=middle, next_=True)
            if probe is None or probe.seq is None:
                break
            found = _sequence_of(probe)
            if found == after_sequence:
                return probe.seq + 1
            if found < after_sequence:
                low = probe.seq + 1
            else:
                high = middle - 1
        return low

    async def events_after(self, job_id: str, after_sequence: int, limit: int) -> list[job_pb2.JobProgress]:
        subject = event_subject(job_id)
        events: list[job_pb2.JobProgress] = []
        seq = await self._start_after(job_id, after_sequence)
        while len(events) < limit:
            message = await self._get(subject, seq=seq, next_=True)
            if message is None or message.seq is None:
                break
            event, _ = _unpack(message.data or b"")
            if event.sequence > after_sequence:
                events.append(event)
                self._positions.set(job_id, (event.sequence, message.seq))
            seq = message.seq + 1
        return events

    async def first_sequence(self, job_id: str) -> int:
        message = await self._get(event_subject(job_id), seq=1, next_=True)
        return _sequence_of(message) if message is not None else 0

    # -- snapshots -----------------------------------------------------------------------------------------

    async def get_job(self, job_id: str) -> job_pb2.Job | None:
        if not job_id or not all(c.isalnum() or c in "-_" for c in job_id):
            return None  # not a key we ever wrote (and not a valid KV key)
        jobs = self._layout.jobs
        try:
            entry = await retrying(lambda: jobs.get(f"job.{job_id}"))
        except KeyNotFoundError:
            return None
        return await self._caught_up(job_pb2.Job.FromString(entry.value or b""))

    async def _caught_up(self, stored: job_pb2.Job) -> job_pb2.Job:
        """An unfinished job's snapshot, repaired from the log if its writer died before writing it.
        A finished job's snapshot is final: nothing follows the terminal event."""
        if stored.status in TERMINAL_STATUSES:
            return stored
        message = await self._get(event_subject(stored.id))
        if message is None or message.seq is None:
            return stored
        _, logged = _unpack(message.data or b"")
        if logged.last_sequence <= stored.last_sequence:
            return stored
        await self._save_snapshot(logged)
        return logged

    async def latest_job(self, job_id: str) -> job_pb2.Job | None:
        stored = await self.get_job(job_id)
        message = await self._get(event_subject(job_id))
        if message is None or message.seq is None:
            return stored
        _, logged = _unpack(message.data or b"")
        self._positions.set(job_id, (logged.last_sequence, message.seq))
        if stored is None or stored.last_sequence < logged.last_sequence:
            await self._save_snapshot(logged)
            return logged
        return stored

    async def owner_usage(self, owner: str) -> JobUsage:
        # One pass over the bucket (the usage was a ListJobs page at a time, each page its own pass). A
        # snapshot one event behind its log (its writer died in between) is summed as it is: the next writer
        # repairs it, and until then the owner is held to the job as last stored.
        unfinished, seconds, output_bytes = 0, 0.0, 0
        for job in await self._all_jobs(caught_up=False):
            if job.owner != owner:
                continue
            held = queued_render_seconds(job)
            unfinished += job.status in UNFINISHED_STATUSES
            seconds += held
            output_bytes += job.output.size_bytes
        return JobUsage(unfinished, seconds, output_bytes)

    async def _all_jobs(self, *, caught_up: bool = True) -> list[job_pb2.Job]:
        """Every snapshot, read in one pass of an ordered consumer over the bucket's latest values.

        O(jobs) per call: fine for the thousands of jobs a retention period keeps; see docs/operations.md.
        The keys to read are listed first (the stream's subjects, one per job), and the scan ends once each
        of them has arrived (a value, or its deletion). It never ends at the pending count alone: a snapshot
        rewritten while the scan runs leaves its old place before the consumer reaches it and comes after
        the rest as a new value, so "nothing pending" could come first (a scan of 5 keys under steady
        rewrites missed one in 12 % of scans), and nats-py's "nothing pending" marker can also come before
        entries already on their way (it once made ListJobs answer an empty list on a loaded machine). A job
        created after the listing may or may not be in the result, as with any snapshot of a moving set.
        """
        prefix = f"$KV.{JOBS_BUCKET}."
        info = await retrying(
            lambda: self._js.stream_info(f"KV_{JOBS_BUCKET}", subjects_filter=f"{prefix}job.*")
        )
        expected = {subject.removeprefix(prefix) for subject in (info.state.subjects or {})}
        if not expected:
            return []
        watcher = await self._layout.jobs.watch("job.*")
        latest: dict[str, job_pb2.Job | None] = {}
        try:
            while not expected <= latest.keys():
                entry = await watcher.updates(timeout=SCAN_TIMEOUT)  # type: ignore[no-untyped-call]
                if entry is None:
                    continue  # the early marker: the entries follow
                deleted = not entry.value or entry.operation is not None
                latest[entry.key] = None if deleted else job_pb2.Job.FromString(entry.value)
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
        jobs = [job for job in latest.values() if job is not None]
        if caught_up:
            jobs = [await self._caught_up(job) for job in jobs]
        return jobs

    async def list_jobs(
        self,
        owner: str | None,
        statuses: Sequence[int],
        limit: int,
        after: PageCursor | None,
        labels: Mapping[str, str] | None = None,
    ) -> list[job_pb2.Job]:
        wanted = set(statuses)
        selected = [
            job
            for job in await self._all_jobs()
            if (owner is None or job.owner == owner)
            and (not wanted or job.status in wanted)
            and matches_labels(job.spec.labels, labels or {})
        ]
        selected.sort(key=lambda job: (_time_us(job.create_time), job.id), reverse=True)
        if after is not None:
            cursor = (after.create_time_us, after.job_id)
            selected = [job for job in selected if (_time_us(job.create_time), job.id) < cursor]
        return selected[:limit]

    async def unfinished_jobs(self) -> list[job_pb2.Job]:
        open_statuses = (job_pb2.JOB_STATUS_QUEUED, job_pb2.JOB_STATUS_RUNNING)
        jobs = [job for job in await self._all_jobs() if job.status in open_statuses]
        return sorted(jobs, key=lambda job: (_time_us(job.create_time), job.id))

    async def count_by_status(self) -> dict[int, int]:
        # O(jobs) per call, like ListJobs: the bucket has no index by status.
        return dict(Counter(job.status for job in await self._all_jobs()))

    async def finished_before(self, cutoff_us: int, limit: int) -> list[str]:
        finished = [
            (_time_us(job.finish_time), job.id)
            for job in await self._all_jobs()
            if job.HasField("finish_time") and _time_us(job.finish_time) < cutoff_us
        ]
        return [job_id for _, job_id in sorted(finished)[:limit]]

    # -- checkpoints -----------------------------------------------------------------------------------------

    async def save_checkpoint(self, job_id: str, stage: str, artifacts: dict[str, Any]) -> None:
        # One key per job, written only by the job's single writer; compare-and-set makes a retry safe.
        def with_stage(saved: dict[str, Any] | None) -> dict[str, Any] | None:
            saved = saved or {}
            if saved.get(stage) == artifacts:
                return None  # an earlier try landed
            return {**saved, stage: artifacts}

        if not await update_json_entry(self._layout.state, f"checkpoints.{job_id}", with_stage):
            raise ConcurrentWriteError(f"job {job_id}: checkpoints written concurrently")

    async def checkpoints(self, job_id: str) -> dict[str, dict[str, Any]]:
        saved, _ = await read_json_entry(self._layout.state, f"checkpoints.{job_id}")
        return saved or {}

    async def clear_checkpoints(self, job_id: str) -> None:
        # Emptied rather than purged: save_checkpoint's compare-and-set cannot follow a purge marker.
        def emptied(saved: dict[str, Any] | None) -> dict[str, Any] | None:
            return {} if saved else None

        if not await update_json_entry(self._layout.state, f"checkpoints.{job_id}", emptied):
            raise ConcurrentWriteError(f"job {job_id}: checkpoints written concurrently")

    # -- stage durations, for the ETA -----------------------------------------------------------------------

    async def record_stage_durations(self, bucket: str, durations: Mapping[str, float]) -> None:
        # One key per bucket, compare-and-set, so that workers finishing jobs of the same bucket at once do
        # not drop each other's durations.
        def with_durations(saved: dict[str, list[float]] | None) -> dict[str, list[float]]:
            saved = saved or {}
            for stage, seconds in durations.items():
                kept = saved.setdefault(stage, [])
                kept.append(float(seconds))
                del kept[:-DURATIONS_KEPT]
            return saved

        key = f"durations.{_key_part(bucket)}"
        if not await update_json_entry(self._layout.state, key, with_durations):
            raise ConcurrentWriteError(f"stage durations of {bucket}: written concurrently too often")

    async def stage_durations(self, bucket: str) -> dict[str, list[float]]:
        saved, _ = await read_json_entry(self._layout.state, f"durations.{_key_part(bucket)}")
        return saved or {}

    async def delete_job(self, job_id: str) -> None:
        # Files and state first: if this dies half-way, the snapshot is still there and the next pass retries.
        from reelcast.server.storage.nats.work import NatsJobFiles

        job = await self.latest_job(job_id)
        await NatsJobFiles(self._connection).delete(job_id)
        await self._release_request(job_id)
        for key in (f"checkpoints.{job_id}", f"cancel.{job_id}"):
            await self._layout.state.purge(key)
        await self._js.purge_stream(EVENTS_STREAM, subject=event_subject(job_id))
        if job is not None:
            # The deletion's record, after the purge: a WatchJobs resume from before it still hears of it.
            # It keeps the job's id and owner only (no labels, no spec): nothing else of the job stays.
            gone = job_pb2.Job(id=job_id, owner=job.owner)
            record = _pack(deletion_event(job_id, job.last_sequence + 1, int(time.time() * 1_000_000)), gone)
            await retrying(lambda: self._js.publish(deletion_subject(job_id), record, stream=EVENTS_STREAM))
        await self._layout.jobs.purge(f"job.{job_id}")
        self._positions.pop(job_id)
        self._revisions.pop(job_id)

    # -- the feed (WatchJobs): the events stream in stream order -------------------------------------------

    async def feed_head(self) -> int:
        info = await retrying(lambda: self._js.stream_info(EVENTS_STREAM))
        return int(info.state.last_seq or 0)

    async def feed_floor(self) -> int:
        floor, _ = await read_json_entry(self._layout.state, FEED_FLOOR_KEY)
        return int(floor or 0)

    async def feed_after(self, position: int, owner: str | None, limit: int) -> list[FeedEntry]:
        # One read per message, every owner's (each carries its job's snapshot, so the owner and labels need
        # no lookup): O(events of all users) per watcher, see docs/operations.md.
        entries: list[FeedEntry] = []
        seq = position + 1
        while len(entries) < limit:
            message = await self._get("reelcast.>", seq=seq, next_=True)
            if message is None or message.seq is None:
                break
            seq = message.seq + 1
            subject = message.subject or ""
            if not subject.startswith((EVENTS_PREFIX, DELETED_PREFIX)):
                continue
            event, job = _unpack(message.data or b"")
            if owner is None or job.owner == owner:
                entries.append(FeedEntry(message.seq, job.owner, dict(job.spec.labels), event))
        return entries

    async def trim_feed(self, before_us: int) -> None:
        highest = 0
        async for message in stream_messages(self._js, EVENTS_STREAM, f"{DELETED_PREFIX}*"):
            event, _ = _unpack(message.data or b"")
            if _time_us(event.time) < before_us and message.subject:
                subject = message.subject
                js = self._js
                await retrying(lambda js=js, subject=subject: js.purge_stream(EVENTS_STREAM, subject=subject))  # type: ignore[misc]
                highest = max(highest, message.seq or 0)
        if highest:

            def raised(floor: int | None) -> int | None:
                return highest if highest > (floor or 0) else None

            await update_json_entry(self._layout.state, FEED_FLOOR_KEY, raised)

    async def close(self) -> None:
        return None  # the connection belongs to the backend
