"""Client (blocking grpc, no event loop) against a real server. The server runs on this test's event loop,
so each blocking block runs in a worker thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import grpc
import pytest

from reelcast.client import Client, FailedPreconditionError, NotFoundError, is_terminal
from reelcast.jobs.v1 import job_pb2
from reelcast.server.app import ReelcastServer
from tests.client.conftest import HANG_TIMEOUT

T = TypeVar("T")


async def blocking(function: Callable[[], T]) -> T:
    return await asyncio.wait_for(asyncio.to_thread(function), HANG_TIMEOUT)


async def test_create_get_list_watch_and_stages(open_server: ReelcastServer) -> None:
    def scenario() -> None:
        with Client(open_server.target) as client:
            created = [client.create_job(topic=f"sync {index}").id for index in range(3)]
            assert client.get_job(created[0]).spec.brief.topic == "sync 0"
            assert [job.id for job in client.list_jobs(page_size=1)] == list(reversed(created))
            events = list(client.watch_job(created[-1]))
            assert [event.sequence for event in events] == list(range(1, len(events) + 1))
            assert is_terminal(events[-1])
            assert list(client.watch_job(created[-1], after_sequence=3)) == events[3:]
            assert client.list_stages()[0].name == "script"

    await blocking(scenario)


async def test_cancel_and_typed_errors(open_server: ReelcastServer) -> None:
    def scenario() -> None:
        with Client(open_server.target, correlation_id="sync-client") as client:
            job = client.create_job(topic="Cancel me", correlation_id="sync-create")
            assert job.correlation_id == "sync-create"
            client.cancel_job(job.id)
            assert list(client.watch_job(job.id))[-1].kind == job_pb2.EVENT_KIND_JOB_FAILED
            with pytest.raises(FailedPreconditionError) as finished:
                client.cancel_job(job.id)
            assert finished.value.code == "E004-JOB_ALREADY_FINISHED"
            assert finished.value.correlation_id == "sync-client"
            with pytest.raises(NotFoundError) as missing:
                client.get_job("nope", correlation_id="sync-get")
            assert missing.value.status == grpc.StatusCode.NOT_FOUND
            assert missing.value.correlation_id == "sync-get"
            assert missing.value.remediation

    await blocking(scenario)


async def test_breaking_out_of_a_watch_cancels_its_stream(open_server: ReelcastServer) -> None:
    def scenario() -> int:
        with Client(open_server.target) as client:
            job = client.create_job(topic="Left early")
            watch = client.watch_job(job.id)
            first = next(watch)
            watch.close()
            return first.sequence

    assert await blocking(scenario) == 1
