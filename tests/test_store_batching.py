"""The SQLite store's group commit (docs/operations.md): writes that wait together share one transaction,
yet each caller gets the outcome its write would have had alone, and a write is committed when its await
returns."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from reelcast.jobs.v1 import job_pb2
from reelcast.server.storage.embedded.job_store import SqliteJobStore
from reelcast.server.storage.job_store import ConcurrentWriteError, DuplicateRequestError


def _job(job_id: str) -> tuple[job_pb2.Job, job_pb2.JobProgress]:
    job = job_pb2.Job(id=job_id, owner="alice", status=job_pb2.JOB_STATUS_QUEUED)
    job.create_time.GetCurrentTime()
    first = job_pb2.JobProgress(job_id=job_id, kind=job_pb2.EVENT_KIND_JOB_STATUS, message="Queued")
    return job, first


def _running(job: job_pb2.Job) -> job_pb2.JobProgress:
    job.status = job_pb2.JOB_STATUS_RUNNING
    return job_pb2.JobProgress(job_id=job.id, kind=job_pb2.EVENT_KIND_JOB_STATUS, message="Running")


def _committed_sequences(path: Path, job_id: str) -> list[int]:
    """What another connection sees: only committed rows."""
    with sqlite3.connect(path) as other:
        rows = other.execute("SELECT sequence FROM events WHERE job_id = ? ORDER BY sequence", (job_id,))
        return [row[0] for row in rows]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteJobStore]:
    opened = SqliteJobStore(tmp_path / "jobs.db")
    yield opened
    await opened.close()


async def test_failing_writes_in_a_batch_leave_the_others_committed(
    store: SqliteJobStore, tmp_path: Path
) -> None:
    jobs = [_job(f"job-{index}") for index in range(20)]
    await asyncio.gather(*(store.create_job(job, first, f"request-{job.id}") for job, first in jobs))
    stale = job_pb2.Job()
    stale.CopyFrom(jobs[0][0])
    stale.last_sequence = 7  # not the stored last sequence (1): a writer that lost the job
    repeated, repeated_first = _job("job-repeat")

    # All issued in one go, so that they wait for the SQLite thread together.
    outcomes = await asyncio.gather(
        *(store.append_event(job, _running(job)) for job, _ in jobs[1:]),
        store.append_event(stale, _running(stale)),
        store.create_job(repeated, repeated_first, "request-job-3"),  # request id of job-3
        return_exceptions=True,
    )

    assert outcomes[:19] == [None] * 19
    assert isinstance(outcomes[19], ConcurrentWriteError)
    assert isinstance(outcomes[20], DuplicateRequestError)
    assert outcomes[20].existing.id == "job-3"
    path = tmp_path / "jobs.db"
    for job, _ in jobs[1:]:
        assert job.last_sequence == 2
        assert _committed_sequences(path, job.id) == [1, 2]
        stored = await store.get_job(job.id)
        assert stored is not None and stored.status == job_pb2.JOB_STATUS_RUNNING
    assert stale.last_sequence == 7  # a refused append leaves the caller's job as it was
    assert _committed_sequences(path, "job-0") == [1]
    assert await store.get_job("job-repeat") is None


async def test_a_write_is_committed_when_its_await_returns(store: SqliteJobStore, tmp_path: Path) -> None:
    job, first = _job("durable")
    await store.create_job(job, first, "")
    assert _committed_sequences(tmp_path / "jobs.db", "durable") == [1]
    for expected in range(2, 6):
        await store.append_event(job, _running(job))
        assert _committed_sequences(tmp_path / "jobs.db", "durable") == list(range(1, expected + 1))


async def test_writes_queued_before_close_are_committed(tmp_path: Path) -> None:
    store = SqliteJobStore(tmp_path / "jobs.db")
    jobs = [_job(f"late-{index}") for index in range(10)]
    writes = [asyncio.ensure_future(store.create_job(job, first, "")) for job, first in jobs]
    await asyncio.sleep(0)  # the writes are queued
    await store.close()
    await asyncio.gather(*writes)
    for job, _ in jobs:
        assert _committed_sequences(tmp_path / "jobs.db", job.id) == [1]
