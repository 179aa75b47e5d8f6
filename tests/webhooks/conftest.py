"""Webhook fixtures: the embedded store and webhook registry in a temp dir, and settings with short
timeouts and retries. Loopback is allowed (the operator's allow-list), as the receiver lives there."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from reelcast.jobs.v1 import job_pb2
from reelcast.server.storage.embedded.job_store import SqliteJobStore
from reelcast.server.webhooks.outbox import WebhookOutbox
from reelcast.server.webhooks.registry import WebhookRegistry
from reelcast.server.webhooks.settings import WebhookSettings

# A hang guard, generous because the machine is shared: never a timing assertion.
WAIT_SECONDS = 30.0


@pytest.fixture
def webhook_settings() -> WebhookSettings:
    return WebhookSettings(
        allowed_cidrs=(ipaddress.ip_network("127.0.0.0/8"),),
        connect_timeout_seconds=2.0,
        read_timeout_seconds=1.0,
        total_timeout_seconds=2.0,
        max_response_bytes=4096,
        retry_base_seconds=0.05,
        retry_max_seconds=0.2,
        max_attempts=5,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteJobStore]:
    opened = SqliteJobStore(tmp_path / "jobs.db")
    yield opened
    await opened.close()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[WebhookRegistry]:
    opened = WebhookRegistry(tmp_path / "webhooks.db")
    yield opened
    opened.close()


@contextlib.asynccontextmanager
async def running_outbox(outbox: WebhookOutbox) -> AsyncIterator[WebhookOutbox]:
    task = asyncio.create_task(outbox.run())
    try:
        yield outbox
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def wait_until(condition: Callable[[], bool | Awaitable[bool]]) -> None:
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            result = condition()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await asyncio.sleep(0.02)


async def create_job(store: SqliteJobStore, job_id: str, owner: str = "alice") -> job_pb2.Job:
    job = job_pb2.Job(id=job_id, owner=owner, status=job_pb2.JOB_STATUS_QUEUED)
    job.create_time.GetCurrentTime()
    first = job_pb2.JobProgress(
        job_id=job_id, kind=job_pb2.EVENT_KIND_JOB_STATUS, job_status=job_pb2.JOB_STATUS_QUEUED
    )
    await store.create_job(job, first, f"request-{job_id}")
    return job


async def run_job(store: SqliteJobStore, job: job_pb2.Job, progress_steps: int) -> None:
    """Appends Running, ``progress_steps`` step-progress events, then the completion."""
    job.status = job_pb2.JOB_STATUS_RUNNING
    await store.append_event(
        job,
        job_pb2.JobProgress(
            job_id=job.id, kind=job_pb2.EVENT_KIND_JOB_STATUS, job_status=job_pb2.JOB_STATUS_RUNNING
        ),
    )
    for step in range(progress_steps):
        await store.append_event(
            job,
            job_pb2.JobProgress(
                job_id=job.id,
                kind=job_pb2.EVENT_KIND_STEP_PROGRESS,
                stage="render",
                stage_title="Render",
                stage_percent=100.0 * (step + 1) / progress_steps,
            ),
        )
    job.status = job_pb2.JOB_STATUS_SUCCEEDED
    await store.append_event(job, job_pb2.JobProgress(job_id=job.id, kind=job_pb2.EVENT_KIND_JOB_COMPLETED))
