"""The embedded store's per-owner usage (JobStore.owner_usage, read by the quotas on every CreateJob):
summed from an index, never from the snapshots, and filled in for a database made before its columns.
Both backends' sums are checked against their jobs in tests/nats/test_quota_backends.py."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from reelcast.jobs.v1 import job_pb2
from reelcast.server.storage.embedded.job_store import OWNER_USAGE_QUERY, SqliteJobStore

# The jobs table as databases made before the usage columns have it.
_OLD_JOBS_TABLE = """
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    status INTEGER NOT NULL,
    create_time_us INTEGER NOT NULL,
    request_id TEXT,
    last_sequence INTEGER NOT NULL,
    finish_time_us INTEGER,
    snapshot BLOB NOT NULL
);
"""


def _job(job_id: str, status: job_pb2.JobStatus.ValueType, seconds: float, size_bytes: int) -> job_pb2.Job:
    spec = job_pb2.JobSpec(
        brief=job_pb2.Brief(topic="Otters"), plan=job_pb2.Plan(target_duration_seconds=seconds)
    )
    job = job_pb2.Job(id=job_id, owner="ann", status=status, spec=spec, last_sequence=1)
    job.output.size_bytes = size_bytes
    return job


async def test_a_database_made_before_the_usage_columns_gets_them_filled_from_its_snapshots(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.db"
    with sqlite3.connect(path) as old:
        old.executescript(_OLD_JOBS_TABLE)
        for time_us, job in enumerate(
            [
                _job("queued", job_pb2.JOB_STATUS_QUEUED, 25, 0),
                _job("review", job_pb2.JOB_STATUS_AWAITING_REVIEW, 10, 0),
                _job("done", job_pb2.JOB_STATUS_SUCCEEDED, 40, 5_000),
            ]
        ):
            old.execute(
                "INSERT INTO jobs (id, owner, status, create_time_us, last_sequence, snapshot)"
                " VALUES (?, ?, ?, ?, 1, ?)",
                (job.id, job.owner, job.status, time_us, job.SerializeToString()),
            )
    store = SqliteJobStore(path)
    try:
        usage = await store.owner_usage("ann")
        assert (usage.unfinished_jobs, usage.queued_render_seconds, usage.output_bytes) == (2, 35.0, 5_000)
        listed = await store.list_jobs("ann", [], 10, None)
        assert [job.id for job in listed] == ["done", "review", "queued"]  # the snapshots are untouched
    finally:
        await store.close()
    reopened = SqliteJobStore(path)  # the columns are there now: nothing is filled in again
    try:
        assert (await reopened.owner_usage("ann")).output_bytes == 5_000
    finally:
        await reopened.close()


async def test_the_usage_sum_reads_only_the_owner_index(tmp_path: Path) -> None:
    """The sum is an index-only scan of one owner's entries: a busy owner's CreateJob decodes no job."""
    store = SqliteJobStore(tmp_path / "jobs.db")
    await store.close()
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        plan = db.execute(f"EXPLAIN QUERY PLAN {OWNER_USAGE_QUERY}", ("ann",)).fetchall()
    details = " ".join(row[-1] for row in plan)
    assert "COVERING INDEX jobs_owner (owner=?)" in details, details
