"""Reading every job on NATS (``ListJobs``, the quotas, recovery: ``NatsJobStore._all_jobs``) while other
writers rewrite snapshots. A snapshot rewritten during the scan leaves its old place in the bucket's stream
before the scan reaches it and comes after the rest; a scan that stopped at "nothing pending" missed such a
job in about one scan in eight (CI once let a retry past the render-time quota that way)."""

from __future__ import annotations

import asyncio
import uuid

from reelcast.jobs.v1 import job_pb2
from reelcast.server.storage.nats.job_store import NatsJobStore
from reelcast.server.storage.nats.layout import NatsConnection
from tests.nats.natsproc import NatsServer

JOBS = 5
SCANS = 150


async def test_a_scan_while_snapshots_are_rewritten_sees_every_job(nats_server: NatsServer) -> None:
    connection = NatsConnection([nats_server.url], replicas=1, ack_wait_seconds=30)
    await connection.open()
    store = NatsJobStore(connection)
    try:
        jobs = []
        for index in range(JOBS):
            job = job_pb2.Job(id=uuid.uuid4().hex, owner="alice", status=job_pb2.JOB_STATUS_RUNNING)
            job.spec.brief.topic = f"scan {index}"
            first = job_pb2.JobProgress(job_id=job.id, kind=job_pb2.EVENT_KIND_JOB_STATUS, message="Queued")
            await store.create_job(job, first, request_id="")
            jobs.append(job)
        ids = {job.id for job in jobs}
        stop = asyncio.Event()

        async def rewrite() -> None:
            """Another writer: each job's snapshot put again, round and round, as progress rewrites it."""
            bucket = connection.layout.jobs
            turn = 0
            while not stop.is_set():
                job = jobs[turn % JOBS]
                await bucket.put(f"job.{job.id}", job.SerializeToString())
                turn += 1

        writer = asyncio.create_task(rewrite())
        missed = 0
        try:
            for _ in range(SCANS):
                listed = await store.list_jobs(None, [], 100, None)
                missed += {job.id for job in listed} != ids
                usage = await store.owner_usage("alice")
                missed += usage.unfinished_jobs != JOBS
        finally:
            stop.set()
            await writer
        assert missed == 0, f"{missed} of {2 * SCANS} scans missed a job"
    finally:
        await connection.close()
