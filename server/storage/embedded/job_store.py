"""The embedded backend's job store: SQLite in one file, written by one thread (storage/job_store.py
holds the interface it implements)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from reelcast.jobs.v1 import job_pb2
from reelcast.server.config import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE
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

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    status INTEGER NOT NULL,
    create_time_us INTEGER NOT NULL,
    request_id TEXT,
    last_sequence INTEGER NOT NULL,
    finish_time_us INTEGER,
    snapshot BLOB NOT NULL,
    -- What the job holds of its owner's quotas (job_store.queued_render_seconds, JobOutput.size_bytes),
    -- kept beside the snapshot so that owner_usage sums an index instead of decoding every job.
    render_seconds REAL NOT NULL DEFAULT 0,
    output_bytes INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_request ON jobs(owner, request_id) WHERE request_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_listing ON jobs(create_time_us DESC, id DESC);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs(finish_time_us) WHERE finish_time_us IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (job_id, sequence)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stage_durations (
    bucket TEXT NOT NULL,
    stage TEXT NOT NULL,
    recorded INTEGER PRIMARY KEY AUTOINCREMENT,
    seconds REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS stage_durations_bucket ON stage_durations(bucket, stage, recorded);
-- A job's labels (spec.labels, fixed at creation), for ListJobs' label selector.
CREATE TABLE IF NOT EXISTS job_labels (
    job_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (job_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS job_labels_pair ON job_labels(key, value);
-- The feed (WatchJobs): every event's place in one order across jobs. A deleted job's rows give way to one
-- deletion record (payload: the EVENT_KIND_JOB_DELETED event, deleted_us: when), trimmed by retention.
CREATE TABLE IF NOT EXISTS feed (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    owner TEXT NOT NULL,
    labels TEXT NOT NULL,
    payload BLOB,
    deleted_us INTEGER
);
CREATE INDEX IF NOT EXISTS feed_owner ON feed(owner, position);
CREATE INDEX IF NOT EXISTS feed_job ON feed(job_id);
CREATE INDEX IF NOT EXISTS feed_deleted ON feed(deleted_us) WHERE deleted_us IS NOT NULL;
-- One row: the highest position trim_feed forgot.
CREATE TABLE IF NOT EXISTS feed_floor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    position INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    job_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    artifacts TEXT NOT NULL,
    PRIMARY KEY (job_id, stage)
) WITHOUT ROWID;
"""

# After _add_usage_columns, which a database made before those columns needs first. One owner's jobs newest
# first (ListJobs of one user), carrying what owner_usage sums, so that the sum never reads the table.
_OWNER_INDEX = """
CREATE INDEX IF NOT EXISTS jobs_owner
    ON jobs(owner, create_time_us DESC, id DESC, status, render_seconds, output_bytes);
"""
# One owner's usage, an index-only scan of jobs_owner.
OWNER_USAGE_QUERY = (
    f"SELECT total(status IN ({','.join(str(status) for status in sorted(UNFINISHED_STATUSES))})),"
    " total(render_seconds), total(output_bytes) FROM jobs INDEXED BY jobs_owner WHERE owner = ?"
)
_USAGE_COLUMNS = {"render_seconds": "REAL NOT NULL DEFAULT 0", "output_bytes": "INTEGER NOT NULL DEFAULT 0"}


# Most reads and writes the SQLite thread takes from its queue at once (SqliteJobStore._drain); the writes
# among them share one transaction.
QUEUE_BATCH_MAX = 256

# A call's result, or the exception it raised.
_Outcome = tuple[bool, Any]


@dataclass
class _Pending:
    """A read or write waiting for the SQLite thread."""

    apply: Callable[[sqlite3.Connection], Any]
    write: bool
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


def _settle(answers: list[tuple[_Pending, _Outcome]]) -> None:
    for pending, (ok, value) in answers:
        if pending.future.done():  # its caller was cancelled; a write itself stands
            continue
        if ok:
            pending.future.set_result(value)
        else:
            pending.future.set_exception(value)


def _time_us(job: job_pb2.Job) -> int:
    return job.create_time.seconds * 1_000_000 + job.create_time.nanos // 1000


def _labels_json(job: job_pb2.Job) -> str:
    return json.dumps(dict(job.spec.labels), sort_keys=True) if job.spec.labels else ""


def _finish_time_us(job: job_pb2.Job) -> int | None:
    if not job.HasField("finish_time"):
        return None
    return job.finish_time.seconds * 1_000_000 + job.finish_time.nanos // 1000


def _add_usage_columns(db: sqlite3.Connection) -> None:
    """Adds the quota columns to a database made before them, filled from each job's snapshot (once)."""
    present = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    missing = [name for name in _USAGE_COLUMNS if name not in present]
    if not missing:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        for name in missing:
            db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {_USAGE_COLUMNS[name]}")
        rows = db.execute("SELECT id, snapshot FROM jobs").fetchall()
        for job_id, snapshot in rows:
            job = job_pb2.Job.FromString(snapshot)
            db.execute(
                "UPDATE jobs SET render_seconds = ?, output_bytes = ? WHERE id = ?",
                (queued_render_seconds(job), job.output.size_bytes, job_id),
            )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


class SqliteJobStore:
    """SQLite in WAL mode. Every statement runs on one dedicated thread, so the event loop never blocks on
    disk and the connection is never shared between threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        # Created owner-only before SQLite opens it: its WAL and SHM files take the database's mode.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE))
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reelcast-sqlite")
        self._queue: list[_Pending] = []
        self._queue_lock = threading.Lock()
        self._draining = False
        self._local = threading.local()
        self._path = path
        self._executor.submit(self._connect).result()

    def _connect(self) -> None:
        connection = sqlite3.connect(self._path, isolation_level=None, timeout=30)
        connection.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash (the case we design for); FULL would also survive
        # power loss at the cost of an fsync per event.
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.executescript(_SCHEMA)
        _add_usage_columns(connection)
        connection.executescript(_OWNER_INDEX)
        self._local.connection = connection

    @property
    def _db(self) -> sqlite3.Connection:
        connection: sqlite3.Connection = self._local.connection
        return connection

    async def _run(self, function: Callable[[], T]) -> T:
        """Runs ``function`` (a read) on the SQLite thread."""
        return await self._enqueue(lambda db: function(), write=False)

    # -- the SQLite thread's queue -------------------------------------------------------------------------
    # Reads and writes wait in one queue that the SQLite thread serves batch after batch until it is empty;
    # the event loop wakes that thread only when it was idle, and the thread wakes the loop once per batch.
    # The writes of a batch are committed together in one transaction (group commit). A caller's await
    # returns only after the COMMIT that holds its write, exactly as with a transaction of its own, so an
    # event is still durable before anyone is told of it. What this saves is the per-transaction work and,
    # above all, the thread wake-ups, which cost more than the SQL itself for short jobs
    # (docs/operations.md).

    async def _write(self, apply: Callable[[sqlite3.Connection], T]) -> T:
        """Runs ``apply`` inside a write transaction shared with whatever other writes are waiting."""
        return await self._enqueue(apply, write=True)

    async def _enqueue(self, apply: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._queue_lock:
            self._queue.append(_Pending(apply, write, future, loop))
            start = not self._draining
            self._draining = True
        if start:
            self._executor.submit(self._drain)
        return await future

    def _drain(self) -> None:
        """On the SQLite thread: serves the queue until it is empty. The writes of a batch go first, in one
        transaction; a read in the same batch was not ordered after them by anyone (its caller would have
        awaited the write first), so either order is correct, and this one lets a read see them."""
        while True:
            with self._queue_lock:
                batch = self._queue[:QUEUE_BATCH_MAX]
                del self._queue[:QUEUE_BATCH_MAX]
                if not batch:
                    self._draining = False
                    return
            writes = [pending for pending in batch if pending.write]
            try:
                outcomes = self._commit_batch(writes) if writes else []
            except Exception as error:  # even ROLLBACK failed: every caller must still hear of it
                outcomes = [(False, error)] * len(writes)
            settled = list(zip(writes, outcomes, strict=True))
            settled += [(pending, self._read(pending)) for pending in batch if not pending.write]
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Pending, _Outcome]]] = {}
            for pending, outcome in settled:
                by_loop.setdefault(pending.loop, []).append((pending, outcome))
            for loop, answers in by_loop.items():
                with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
                    loop.call_soon_threadsafe(_settle, answers)

    def _read(self, pending: _Pending) -> _Outcome:
        try:
            return (True, pending.apply(self._db))
        except Exception as error:
            return (False, error)

    def _commit_batch(self, batch: list[_Pending]) -> list[_Outcome]:
        db = self._db
        if len(batch) > 1:
            try:
                db.execute("BEGIN IMMEDIATE")
                results = [write.apply(db) for write in batch]
                db.execute("COMMIT")
                return [(True, result) for result in results]
            except Exception:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                # Some write failed (a concurrent append, a duplicate request id) or the commit did: nothing
                # of the batch was kept. Each write is retried alone below, so that each gets its own outcome.
        return [self._commit_one(db, write) for write in batch]

    @staticmethod
    def _commit_one(db: sqlite3.Connection, write: _Pending) -> _Outcome:
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = write.apply(db)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except Exception as error:
            return (False, error)
        return (True, result)

    async def create_job(self, job: job_pb2.Job, first_event: job_pb2.JobProgress, request_id: str) -> None:
        job.last_sequence = 1
        first_event.sequence = 1

        values = (
            job.id,
            job.owner,
            job.status,
            _time_us(job),
            request_id or None,
            job.SerializeToString(),
            queued_render_seconds(job),
            job.output.size_bytes,
        )
        payload = first_event.SerializeToString()
        labels = [(job.id, key, value) for key, value in job.spec.labels.items()]
        feed_row = (job.id, job.owner, _labels_json(job))

        def insert(db: sqlite3.Connection) -> None:
            try:
                db.execute(
                    "INSERT INTO jobs"
                    " (id, owner, status, create_time_us, request_id, last_sequence, snapshot,"
                    " render_seconds, output_bytes)"
                    " VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)",
                    values,
                )
            except sqlite3.IntegrityError:
                row = db.execute(
                    "SELECT snapshot FROM jobs WHERE owner = ? AND request_id = ?", (job.owner, request_id)
                ).fetchone()
                if row is None:
                    raise
                raise DuplicateRequestError(job_pb2.Job.FromString(row[0])) from None
            db.execute("INSERT INTO events (job_id, sequence, payload) VALUES (?, 1, ?)", (job.id, payload))
            db.executemany("INSERT INTO job_labels (job_id, key, value) VALUES (?, ?, ?)", labels)
            db.execute("INSERT INTO feed (job_id, sequence, owner, labels) VALUES (?, 1, ?, ?)", feed_row)

        await self._write(insert)

    async def get_job(self, job_id: str) -> job_pb2.Job | None:
        def select() -> job_pb2.Job | None:
            row = self._db.execute("SELECT snapshot FROM jobs WHERE id = ?", (job_id,)).fetchone()
            return job_pb2.Job.FromString(row[0]) if row else None

        return await self._run(select)

    async def latest_job(self, job_id: str) -> job_pb2.Job | None:
        # The snapshot and the event are written in one transaction: the snapshot never lags.
        return await self.get_job(job_id)

    async def list_jobs(
        self,
        owner: str | None,
        statuses: Sequence[int],
        limit: int,
        after: PageCursor | None,
        labels: Mapping[str, str] | None = None,
    ) -> list[job_pb2.Job]:
        clauses: list[str] = []
        params: list[Any] = []
        if owner is not None:
            clauses.append("owner = ?")
            params.append(owner)
        if statuses:
            clauses.append(f"status IN ({','.join('?' * len(statuses))})")
            params.extend(statuses)
        for key, value in sorted((labels or {}).items()):
            clauses.append("id IN (SELECT job_id FROM job_labels WHERE key = ? AND value = ?)")
            params.extend([key, value])
        if after is not None:
            clauses.append("(create_time_us < ? OR (create_time_us = ? AND id < ?))")
            params.extend([after.create_time_us, after.create_time_us, after.job_id])
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        query = f"SELECT snapshot FROM jobs {where} ORDER BY create_time_us DESC, id DESC LIMIT ?"
        params.append(limit)

        def select() -> list[job_pb2.Job]:
            return [job_pb2.Job.FromString(row[0]) for row in self._db.execute(query, params)]

        return await self._run(select)

    async def owner_usage(self, owner: str) -> JobUsage:
        def select() -> JobUsage:
            jobs, seconds, output_bytes = self._db.execute(OWNER_USAGE_QUERY, (owner,)).fetchone()
            return JobUsage(int(jobs), seconds, int(output_bytes))

        return await self._run(select)

    async def append_event(self, job: job_pb2.Job, event: job_pb2.JobProgress) -> None:
        expected = job.last_sequence
        sequence = expected + 1
        event.sequence = sequence
        job.last_sequence = sequence

        # Serialized here, on the event loop, while the caller still holds the job unchanged.
        update = (
            job.status,
            sequence,
            _finish_time_us(job),
            job.SerializeToString(),
            queued_render_seconds(job),
            job.output.size_bytes,
            job.id,
            expected,
        )
        insert = (job.id, sequence, event.SerializeToString())
        feed_row = (job.id, sequence, job.owner, _labels_json(job))

        def append(db: sqlite3.Connection) -> None:
            updated = db.execute(
                "UPDATE jobs SET status = ?, last_sequence = ?, finish_time_us = ?, snapshot = ?,"
                " render_seconds = ?, output_bytes = ? WHERE id = ? AND last_sequence = ?",
                update,
            ).rowcount
            if updated != 1:
                raise ConcurrentWriteError(f"job {job.id}: expected last sequence {expected}")
            db.execute("INSERT INTO events (job_id, sequence, payload) VALUES (?, ?, ?)", insert)
            db.execute("INSERT INTO feed (job_id, sequence, owner, labels) VALUES (?, ?, ?, ?)", feed_row)

        try:
            await self._write(append)
        except BaseException:
            job.last_sequence = expected
            raise

    async def events_after(self, job_id: str, after_sequence: int, limit: int) -> list[job_pb2.JobProgress]:
        def select() -> list[job_pb2.JobProgress]:
            rows = self._db.execute(
                "SELECT payload FROM events WHERE job_id = ? AND sequence > ? ORDER BY sequence LIMIT ?",
                (job_id, after_sequence, limit),
            )
            return [job_pb2.JobProgress.FromString(row[0]) for row in rows]

        return await self._run(select)

    async def first_sequence(self, job_id: str) -> int:
        def select() -> int:
            row = self._db.execute("SELECT MIN(sequence) FROM events WHERE job_id = ?", (job_id,)).fetchone()
            return int(row[0]) if row and row[0] is not None else 0

        return await self._run(select)

    async def save_checkpoint(self, job_id: str, stage: str, artifacts: dict[str, Any]) -> None:
        payload = json.dumps(artifacts, sort_keys=True)

        def upsert(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO checkpoints (job_id, stage, artifacts) VALUES (?, ?, ?)"
                " ON CONFLICT (job_id, stage) DO UPDATE SET artifacts = excluded.artifacts",
                (job_id, stage, payload),
            )

        await self._write(upsert)

    async def checkpoints(self, job_id: str) -> dict[str, dict[str, Any]]:
        def select() -> dict[str, dict[str, Any]]:
            rows = self._db.execute("SELECT stage, artifacts FROM checkpoints WHERE job_id = ?", (job_id,))
            return {stage: json.loads(artifacts) for stage, artifacts in rows}

        return await self._run(select)

    async def unfinished_jobs(self) -> list[job_pb2.Job]:
        def select() -> list[job_pb2.Job]:
            rows = self._db.execute(
                "SELECT snapshot FROM jobs WHERE status IN (?, ?) ORDER BY create_time_us, id",
                (job_pb2.JOB_STATUS_QUEUED, job_pb2.JOB_STATUS_RUNNING),
            )
            return [job_pb2.Job.FromString(row[0]) for row in rows]

        return await self._run(select)

    async def finished_before(self, cutoff_us: int, limit: int) -> list[str]:
        def select() -> list[str]:
            rows = self._db.execute(
                "SELECT id FROM jobs WHERE finish_time_us IS NOT NULL AND finish_time_us < ?"
                " ORDER BY finish_time_us LIMIT ?",
                (cutoff_us, limit),
            )
            return [row[0] for row in rows]

        return await self._run(select)

    async def count_by_status(self) -> dict[int, int]:
        def select() -> dict[int, int]:
            rows = self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status")
            return {int(status): int(count) for status, count in rows}

        return await self._run(select)

    async def clear_checkpoints(self, job_id: str) -> None:
        def delete(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM checkpoints WHERE job_id = ?", (job_id,))

        await self._write(delete)

    async def delete_job(self, job_id: str) -> None:
        deleted_us = int(time.time() * 1_000_000)

        def delete(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT owner, last_sequence FROM jobs WHERE id = ?", (job_id,)).fetchone()
            tables = (
                ("events", "job_id"),
                ("checkpoints", "job_id"),
                ("job_labels", "job_id"),
                ("jobs", "id"),
            )
            for table, column in tables:
                db.execute(f"DELETE FROM {table} WHERE {column} = ?", (job_id,))
            db.execute("DELETE FROM feed WHERE job_id = ?", (job_id,))
            if row is not None:
                # The record keeps the job's id and owner only (no labels, no spec): nothing else of it stays.
                owner, last_sequence = row
                event = deletion_event(job_id, last_sequence + 1, deleted_us)
                db.execute(
                    "INSERT INTO feed (job_id, sequence, owner, labels, payload, deleted_us)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        job_id,
                        event.sequence,
                        owner,
                        "{}",
                        event.SerializeToString(),
                        deleted_us,
                    ),
                )

        await self._write(delete)

    # -- the feed (WatchJobs) ----------------------------------------------------------------------------

    async def feed_head(self) -> int:
        def select() -> int:
            row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'feed'").fetchone()
            return int(row[0]) if row else 0

        return await self._run(select)

    async def feed_floor(self) -> int:
        def select() -> int:
            row = self._db.execute("SELECT position FROM feed_floor WHERE id = 1").fetchone()
            return int(row[0]) if row else 0

        return await self._run(select)

    async def feed_after(self, position: int, owner: str | None, limit: int) -> list[FeedEntry]:
        where = "f.position > ?" + (" AND f.owner = ?" if owner is not None else "")
        params: list[Any] = [position] + ([owner] if owner is not None else []) + [limit]
        query = (
            "SELECT f.position, f.owner, f.labels, COALESCE(f.payload, e.payload) FROM feed f"
            " LEFT JOIN events e ON e.job_id = f.job_id AND e.sequence = f.sequence"
            f" WHERE {where} ORDER BY f.position LIMIT ?"
        )

        def select() -> list[FeedEntry]:
            return [
                FeedEntry(
                    position=int(at),
                    owner=who,
                    labels=json.loads(labels) if labels else {},
                    event=job_pb2.JobProgress.FromString(payload),
                )
                for at, who, labels, payload in self._db.execute(query, params)
                if payload is not None  # an event trimmed from under its feed row (never, but not a crash)
            ]

        return await self._run(select)

    async def trim_feed(self, before_us: int) -> None:
        def trim(db: sqlite3.Connection) -> None:
            row = db.execute(
                "SELECT MAX(position) FROM feed WHERE deleted_us IS NOT NULL AND deleted_us < ?", (before_us,)
            ).fetchone()
            if row is None or row[0] is None:
                return
            db.execute("DELETE FROM feed WHERE deleted_us IS NOT NULL AND deleted_us < ?", (before_us,))
            db.execute(
                "INSERT INTO feed_floor (id, position) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET position = MAX(position, excluded.position)",
                (int(row[0]),),
            )

        await self._write(trim)

    async def record_stage_durations(self, bucket: str, durations: Mapping[str, float]) -> None:
        rows = [(bucket, stage, float(seconds)) for stage, seconds in durations.items()]

        def insert(db: sqlite3.Connection) -> None:
            db.executemany("INSERT INTO stage_durations (bucket, stage, seconds) VALUES (?, ?, ?)", rows)
            for _, stage, _ in rows:
                db.execute(
                    "DELETE FROM stage_durations WHERE bucket = ? AND stage = ? AND recorded NOT IN"
                    " (SELECT recorded FROM stage_durations WHERE bucket = ? AND stage = ?"
                    " ORDER BY recorded DESC LIMIT ?)",
                    (bucket, stage, bucket, stage, DURATIONS_KEPT),
                )

        await self._write(insert)

    async def stage_durations(self, bucket: str) -> dict[str, list[float]]:
        def select() -> dict[str, list[float]]:
            rows = self._db.execute(
                "SELECT stage, seconds FROM stage_durations WHERE bucket = ? ORDER BY recorded", (bucket,)
            )
            durations: dict[str, list[float]] = {}
            for stage, seconds in rows:
                durations.setdefault(stage, []).append(float(seconds))
            return durations

        return await self._run(select)

    async def close(self) -> None:
        def close_connection() -> None:
            # Writes queued before this call are committed first: a batch runs its writes before its reads.
            self._db.close()

        await self._run(close_connection)
        self._executor.shutdown(wait=True)
